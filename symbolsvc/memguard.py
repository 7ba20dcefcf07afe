"""A bound on a server process's memory: past ``[server] max_rss_mib``, drain and exit 3.

grpcio exposes no memory quota, and some HTTP/2 abuse (CONTINUATION floods) makes it
buffer without limit (docs/HARDENING.md §2). This guard samples the process's resident
set every second; once it exceeds the bound, it logs it and starts the ordinary graceful
stop (in-flight calls finish, queued writes are committed), after which the process
exits with :data:`EXIT_STATUS`. Under ``--workers`` the supervisor restarts that worker
while the others serve; a single process is restarted by its service manager
(``Restart=on-failure``). The same pattern as uWSGI's ``reload-on-rss``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("symbolsvc.server")
EXIT_STATUS = 3
_STATUS = Path("/proc/self/status")


def rss_mib() -> float | None:
    """The process's resident set in MiB (Linux), or None where it cannot be read."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class MemoryGuard:
    """Calls ``stop`` once when the resident set exceeds ``limit_mib`` (0: never)."""

    def __init__(self, limit_mib: int, stop: Callable[[], None], interval: float = 1.0) -> None:
        self.limit_mib = limit_mib
        self.tripped = False
        self._stop = stop
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.limit_mib > 0 and rss_mib() is not None:
            self._task = asyncio.get_running_loop().create_task(self._watch())

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            rss = rss_mib()
            if rss is not None and rss > self.limit_mib:
                self.tripped = True
                log.error("resident memory %.0f MiB exceeds [server] max_rss_mib %d: draining "
                          "and exiting with status %d to be restarted (pid %d)",
                          rss, self.limit_mib, EXIT_STATUS, os.getpid())
                self._stop()
                return
