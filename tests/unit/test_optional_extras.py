"""The base install serves: the command line and the server import none of the optional
extras' packages (portal, witness, tracing), so `scripts/dev` works without them."""

from __future__ import annotations

import subprocess
import sys

EXTRAS_ONLY = ("itsdangerous", "starlette", "uvicorn", "jinja2", "sse_starlette", "httpx",
               "psycopg", "pkcs11", "opentelemetry")


def test_cli_and_server_import_no_optional_package() -> None:
    code = ("import sys, symbolsvc.cli, symbolsvc.server\n"
            f"loaded = sorted(m for m in {EXTRAS_ONLY!r} if m in sys.modules)\n"
            "print(','.join(loaded))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    assert out == ""
