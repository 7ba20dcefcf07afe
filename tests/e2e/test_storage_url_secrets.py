"""A storage URL is never printed, whole or in part, when it fails to parse.

A password holding an unencoded ``#``, ``/`` or ``?`` makes ``urlsplit`` cut the URL
in the wrong places, so masking "the password" would mask the wrong part; an invalid IPv6
host used to end in a traceback. Each is now one line on stderr, naming the problem and the
fix, with no part of the URL, from ``db check``, ``db migrate``, ``db create`` and ``serve``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import copy_deployment, set_storage_url

SECRET = "Sup3rS3cr3t"
BAD_URLS = {
    "hash": f"postgresql://symbolsvc:{SECRET}#x@127.0.0.1:5432/registry",
    "slash": f"postgresql://symbolsvc:{SECRET}/x@127.0.0.1:5432/registry",
    "question": f"postgresql://symbolsvc:{SECRET}?x@127.0.0.1:5432/registry",
    "digits-then-slash": "postgresql://symbolsvc:4242/" + SECRET + "@127.0.0.1/registry",
    "ipv6": f"postgresql://symbolsvc:{SECRET}@[::1/registry",
    "ipv6-garbage": f"postgresql://symbolsvc:{SECRET}@[nothex::1]/registry",
    "port": f"postgresql://symbolsvc:{SECRET}@127.0.0.1:port{SECRET}/registry",
    "scheme": f"mysql://symbolsvc:{SECRET}@127.0.0.1/registry",
    "no-scheme": f"symbolsvc:{SECRET}@127.0.0.1/registry",
}
COMMANDS = {
    "db check": ["db", "check"],
    "db migrate": ["db", "migrate"],
    "db create": ["db", "create"],
    "serve": ["serve", "--listen", "127.0.0.1:0"],
}


@pytest.mark.parametrize("case", sorted(BAD_URLS))
def test_a_bad_storage_url_is_one_line_without_the_url(case: str, deployment_template: Path,
                                                       tmp_path: Path) -> None:
    directory = copy_deployment(deployment_template, tmp_path / "dep")
    set_storage_url(directory, BAD_URLS[case])
    for name, args in COMMANDS.items():
        proc = subprocess.run(
            [sys.executable, "-m", "symbolsvc", *args, "--config",
             str(directory / "config.toml")],
            capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        out = (proc.stdout + proc.stderr).decode(errors="replace")
        assert proc.returncode == 2, (name, out)
        assert "Traceback" not in out, (name, out)
        for fragment in (SECRET, SECRET[:6], SECRET[-6:], "x@127"):
            assert fragment not in out, (name, out)
        lines = [ln for ln in proc.stderr.decode().splitlines() if ln.strip()]
        assert len(lines) == 1 and "[storage] url" in lines[0], (name, out)
