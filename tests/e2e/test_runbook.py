"""docs/OPERATIONS.md, executed (issue 12, item 8): every ``sh`` block of the runbook runs, in
order, in bash against a real deployment and a real ``symbolsvc serve`` process, exactly as
written; the only inputs are the runbook's own variables (DEP, C, ADDR, BACKUPS)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_until

RUNBOOK = Path(__file__).parents[2] / "docs" / "OPERATIONS.md"
BLOCK_RE = re.compile(r"^```(\S*)\n(.*?)^```$", re.S | re.M)
# The commands the runbook must show (and so run): the day-2 interface of issue 12.
REQUIRED = ("symbolsvc init", "symbolsvc serve", "symbolsvc agency add",
            "symbolsvc agency remove", "symbolsvc principal add", "symbolsvc cert reissue",
            "symbolsvc cert revoke", "symbolsvc backup", "symbolsvc restore",
            "symbolsvc policy check", "symbolsvc audit verify")


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK_RE.finditer(RUNBOOK.read_text())]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_command_of_the_runbook_is_in_an_executed_block() -> None:
    executed = "\n".join(text for lang, text in blocks() if lang == "sh")
    for command in REQUIRED:
        assert command in executed, f"the runbook does not run {command!r}"
    for lang, text in blocks():
        if lang != "sh":
            for line in text.splitlines():
                assert not re.match(r"\s*(symbolsvc|symbolctl|kill|sed|tar)\b", line), \
                    f"a command outside an executed block: {line!r}"


@pytest.mark.slow
def test_the_runbook_runs_against_a_real_server(tmp_path: Path) -> None:
    dep = tmp_path / "srv" / "symbolsvc"
    dep.parent.mkdir()
    env = {**os.environ, "DEP": str(dep), "C": str(dep / "config.toml"),
           "ADDR": f"127.0.0.1:{free_port()}", "BACKUPS": str(tmp_path / "backups"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("SYMBOLSVC_PASSPHRASE", None)
    pidfile = dep / "symbolsvc.pid"
    try:
        for n, (lang, text) in enumerate(blocks(), 1):
            if lang != "sh":
                continue
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", text], env=env,
                                  cwd=tmp_path, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=300, check=False)
            assert proc.returncode == 0, (
                f"runbook block {n} failed ({proc.returncode}):\n{text}\n--- stdout\n"
                f"{proc.stdout}\n--- stderr\n{proc.stderr}")
        log = (dep / "logs" / "server.log").read_text()
        assert "Traceback" not in log
        assert "principals reloaded" in log
    finally:
        if pidfile.exists():
            stop(int(pidfile.read_text()))


def stop(pid: int) -> None:
    """SIGTERM the server the runbook started (not our child: poll until it is gone)."""
    try:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not alive(pid), 60, "the runbook's server to stop")
    except ProcessLookupError:
        return
    except AssertionError:
        os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
