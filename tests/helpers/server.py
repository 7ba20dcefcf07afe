"""A real ``symbolsvc serve`` process for tests.

Nothing here mocks anything: :class:`ServerProcess` runs ``python -m symbolsvc serve`` on a
deployment directory written by the real ``symbolsvc init``, learns its port from the
``symbolsvc serving on HOST:PORT`` line, and keeps its stderr in a file the tests can grep.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from symbolsvc_client import Deployment

from .waiting import wait_until

SERVING = health_pb2.HealthCheckResponse.SERVING
READY_RE = re.compile(r"^symbolsvc serving on (\S+):(\d+)\s*$")


class ServerProcess:
    """One ``symbolsvc serve`` process on a deployment.

    ``start`` waits (with a deadline) for the readiness line, then for a health Check over
    mTLS to answer SERVING. ``stop`` is SIGTERM, ``kill`` is SIGKILL (kill -9), ``restart``
    starts again on the same deployment (and by default the same port, so clients that
    already hold a channel reconnect by themselves). The server's stderr is appended to
    ``log_path`` across restarts.
    """

    def __init__(self, config: Path, log_path: Path, *, env: Mapping[str, str] | None = None,
                 listen: str = "127.0.0.1:0", extra_args: Iterable[str] = (),
                 health_principal: str = "auditor", start_timeout: float = 30.0) -> None:
        self.config = config
        self.directory = config.parent
        self.log_path = log_path
        self.env = dict(env or {})
        self.listen = listen
        self.extra_args = list(extra_args)
        self.health_principal = health_principal
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = ""
        self.port = 0
        self.stdout_lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.returncodes: list[int] = []

    # -- lifecycle --

    def start(self, listen: str | None = None) -> ServerProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        listen = listen or self.listen
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "symbolsvc", "serve", "--config", str(self.config),
                 "--listen", listen, *self.extra_args],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
            )
        self._lines = queue.Queue()
        threading.Thread(target=self._read_stdout, args=(self.proc, self._lines),
                         daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise RuntimeError(f"server not ready after {self.start_timeout} s:\n"
                                   f"{self.log_tail()}") from None
            if line is None:  # EOF: the process died before it was ready
                rc = self.proc.wait(timeout=30)
                self.returncodes.append(rc)
                raise RuntimeError(f"server exited with {rc} before it was ready:\n"
                                   f"{self.log_tail()}")
            m = READY_RE.match(line)
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                break
        self.wait_healthy(max(1.0, deadline - time.monotonic()))
        return self

    @staticmethod
    def _read_stdout(proc: subprocess.Popen[bytes], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.decode(errors="replace"))
        lines.put(None)

    def wait_healthy(self, timeout: float = 15.0) -> None:
        with self.deployment.channel(self.health_principal, self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)

            def serving() -> bool:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n"
                                       f"{self.log_tail()}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                except grpc.RpcError:
                    return False
                return reply.status == SERVING

            wait_until(serving, timeout, f"health SERVING from {self.address}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        rc = self.proc.wait(timeout=timeout)
        self.returncodes.append(rc)
        return rc

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit code (the process is killed if it does not exit)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"server did not exit within {timeout} s of SIGTERM") from None

    def kill(self) -> int:
        """kill -9, and wait."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.kill()
        return self.wait(30)

    def restart(self, same_port: bool = True) -> ServerProcess:
        if self.running:
            self.stop()
        return self.start(f"{self.host}:{self.port}" if same_port and self.port else None)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def deployment(self) -> Deployment:
        return Deployment(self.directory)

    # -- logs --

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 4000) -> str:
        return self.log_text()[-n:]

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def wait_for_log(self, pattern: str, timeout: float = 10.0, since: int = 0) -> str:
        """The first line after byte offset ``since`` matching the regex ``pattern``."""
        rx = re.compile(pattern)

        def find() -> str | None:
            text = self.log_path.read_bytes()[since:].decode(errors="replace")
            for line in text.splitlines():
                if rx.search(line):
                    return line
            return None

        return wait_until(find, timeout, f"server log line matching {pattern!r}")

    @property
    def security_log_path(self) -> Path:
        return self.directory / "logs" / "security.jsonl"

    def security_log_text(self) -> str:
        p = self.security_log_path
        return p.read_text(errors="replace") if p.exists() else ""


StartServer = Callable[..., ServerProcess]
"""The ``start_server`` fixture's type (tests/e2e/conftest.py):
``start_server(directory, extra_config=None, env=None, **ServerProcess kwargs)``."""
