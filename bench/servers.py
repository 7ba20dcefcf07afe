"""Servers the load generator starts, and what it reads about them from ``/proc``.

The server-side view of a run: the CPU time of every server process and of
every thread by name (grpc's poller, the event loop, SQLite writers...), and
the resident memory over time, sampled from ``/proc`` (Linux; the server must
run on this machine, which ``--spawn`` and ``--baseline`` guarantee).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

READY = re.compile(r"(?:symbolsvc|baseline) serving on (\S+):(\d+)")
TICK = os.sysconf("SC_CLK_TCK")


def _stat(path: Path) -> tuple[str, float] | None:
    """(comm, user + system CPU seconds) of a /proc/.../stat file."""
    try:
        text = path.read_text()
    except OSError:
        return None
    comm = text[text.find("(") + 1:text.rfind(")")]
    fields = text.rsplit(")", 1)[1].split()
    return comm, (int(fields[11]) + int(fields[12])) / TICK


@dataclass
class Spawned:
    """A server process started by the generator; stopped with SIGTERM."""

    label: str
    proc: subprocess.Popen[str]
    address: str

    @classmethod
    def start(cls, label: str, argv: list[str], timeout: float = 120,
              log: Path | None = None) -> Spawned:
        """Start ``argv``; its stderr goes to ``log`` when given (else it is dropped)."""
        err = log.open("ab") if log is not None else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err,
                                    text=True, start_new_session=True)
        finally:
            if log is not None:
                err.close()  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            m = READY.search(line)
            if m:
                return cls(label, proc, f"{m.group(1)}:{m.group(2)}")
        proc.kill()
        raise SystemExit(f"bench.load: {label} server did not start: {' '.join(argv)}")

    def pids(self) -> list[int]:
        """The server process and its worker processes."""
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in task.read_text().split()]
        return out

    def cpu_seconds(self) -> float:
        return sum(s[1] for pid in self.pids() if (s := _stat(Path(f"/proc/{pid}/stat"))))

    def rss_mb(self) -> float:
        return round(sum(_rss_kb(pid) for pid in self.pids()) / 1024, 1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _rss_kb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class Sampler:
    """Samples a server's processes and threads from /proc on a thread, every ``every`` s."""

    server: Spawned
    t0: float  # wall-clock time of the measured window's start (sample times relative to it)
    every: float = 0.5
    samples: list[dict[str, Any]] = field(default_factory=list)
    _threads: dict[tuple[int, int], tuple[str, float]] = field(default_factory=dict)
    _first: dict[tuple[int, int], float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def sample(self) -> None:
        now = time.time()
        procs = {}
        for pid in self.server.pids():
            s = _stat(Path(f"/proc/{pid}/stat"))
            if s is None:
                continue
            procs[str(pid)] = {"cpu_s": round(s[1], 3), "rss_mb": round(_rss_kb(pid) / 1024, 1)}
            for task in Path(f"/proc/{pid}/task").glob("*"):
                t = _stat(task / "stat")
                if t is not None:
                    key = (pid, int(task.name))
                    self._threads[key] = t
                    if now >= self.t0:
                        self._first.setdefault(key, self._threads.get(key, t)[1])
        self.samples.append({"t": round(now - self.t0, 3), "procs": procs})

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()
        return self.view()

    def view(self) -> dict[str, Any]:
        """CPU % per process over time, RSS over time, CPU seconds per thread name."""
        series = []
        prev: dict[str, Any] | None = None
        for s in self.samples:
            row: dict[str, Any] = {"t": s["t"], "rss_mb": round(
                sum(p["rss_mb"] for p in s["procs"].values()), 1), "cpu_pct": {}}
            if prev is not None and s["t"] > prev["t"]:
                dt = s["t"] - prev["t"]
                for pid, p in s["procs"].items():
                    before = prev["procs"].get(pid, {}).get("cpu_s", p["cpu_s"])
                    row["cpu_pct"][pid] = round((p["cpu_s"] - before) / dt * 100, 1)
            series.append(row)
            prev = s
        threads: dict[str, float] = defaultdict(float)
        for (pid, tid), (comm, cpu) in self._threads.items():
            name = comm if pid == tid else f"{comm} {tid}"
            threads[f"{pid}/{name}"] += cpu - self._first.get((pid, tid), 0.0)
        top = sorted(threads.items(), key=lambda kv: -kv[1])
        return {"series": series,
                "threads_cpu_s": {k: round(v, 3) for k, v in top if v > 0.0},
                "processes": len(self.samples[-1]["procs"]) if self.samples else 0}


def spawn_service(deployment: Path, workers: int) -> Spawned:
    argv = [sys.executable, "-m", "symbolsvc", "serve", "--config",
            str(deployment / "config.toml"), "--listen", "127.0.0.1:0"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return Spawned.start("service", argv)


def spawn_baseline(deployment: Path, workers: int, delay_ms: float = 0.0,
                   label: str = "baseline") -> Spawned:
    argv = [sys.executable, "-m", "bench.baseline_server", "--config",
            str(deployment / "config.toml"), "--listen", "127.0.0.1:0", "--workers", str(workers)]
    if delay_ms:
        argv += ["--delay-ms", f"{delay_ms:g}"]
    return Spawned.start(label, argv)
