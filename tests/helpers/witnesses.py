"""Real witness processes for tests: ``symbolsvc witness init`` then ``witness serve``."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from symbolsvc.cli import main


class WitnessProcess:
    """One ``symbolsvc witness serve`` process on a directory made by ``witness init``."""

    def __init__(self, directory: Path, name: str, log_vkeys: list[str]) -> None:
        self.directory = directory
        self.name = name
        args = ["witness", "init", str(directory), "--name", name, "--listen", "127.0.0.1:0"]
        for vkey in log_vkeys:
            args += ["--log-vkey", vkey]
        assert main(args) == 0
        self.vkey = (directory / "witness.vkey").read_text().strip()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 60.0) -> WitnessProcess:
        log = (self.directory / "witness.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "symbolsvc", "witness", "serve", "--config",
             str(self.directory / "witness.toml")],
            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=dict(os.environ))
        log.close()
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for raw in self.proc.stdout:
                lines.put(raw.decode(errors="replace"))
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        line = lines.get(timeout=timeout)
        prefix = "symbolsvc witness serving on "
        if line is None or not line.startswith(prefix):
            raise RuntimeError(f"witness did not start: {line!r}\n{self.log_tail()}")
        self.url = "http://" + line[len(prefix):].strip()
        return self

    def log_tail(self) -> str:
        path = self.directory / "witness.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
