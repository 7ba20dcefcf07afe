"""SQLite WAL checkpoints off the commit path, and the writer connection's page cache.

On by default (``SqliteRegistry(tuned_writer=False)`` turns it off, for A/B). It was
held back once because, with the checkpointer running, health left NOT_SERVING while
the disk was still full: after a checkpoint resets the WAL, a small write reuses WAL
pages already allocated and succeeds, and a succeeding write used to clear the
registry's full-disk flag. Only the health probe's 1 MiB write clears it now.

By default SQLite checkpoints inside the ``COMMIT`` that pushes the WAL past
``wal_autocheckpoint`` pages (1,000): that one commit copies the WAL's pages into
the database file and fsyncs both, and every caller in its group waits for it. The
writer here turns that off (``wal_autocheckpoint = 0``) and a :class:`Checkpointer`
thread with its own connection runs ``PRAGMA wal_checkpoint(PASSIVE)`` every
:data:`POLL_SECONDS` in which the ``-wal`` file was written. A passive checkpoint never
blocks the writer (WAL lets one writer append while pages are copied); it copies
only frames no reader still needs.

Copying is not enough to bound the WAL: SQLite writes from the start of the WAL
again only when a write transaction begins while every frame has been copied and
no reader is reading from the WAL. Under steady load neither holds for long (the
writer commits many times between two polls, and some read is always in flight),
so with passive checkpoints alone the ``-wal`` file grew without bound, reset only
by chance: 4.1 GB in the 30-minute soak (``python -m bench.soak``; about 15 MB of
pages a second). So once the WAL holds :data:`RESTART_FRAMES`
frames the checkpointer asks for a ``RESTART`` checkpoint: it takes the write
lock, copies what is left, waits for the readers still in the WAL to finish, and
the next commit starts the WAL over. The writer waits meanwhile: for the copy of
the last frames and for at most :data:`RESTART_WAIT_MS` of readers (the
checkpointer's busy timeout; if a reader is still in the WAL then, the restart is
tried again at the next poll). The writer's
``journal_size_limit`` then truncates the file to :data:`WAL_LIMIT_BYTES`.

Durability is unchanged: a commit is acknowledged after its WAL frames are fsynced
(``synchronous = FULL``), exactly as before; a checkpoint only moves committed pages
from the WAL into the main file (and fsyncs them before the WAL is reused). After
kill -9, the WAL is replayed on the next open whether or not a checkpoint ran.

The writer's page cache is raised to :data:`WRITER_CACHE_KIB` (SQLite's default is
2 MiB), so a large group's index pages stay in memory between commits.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Histogram

log = logging.getLogger("symbolsvc.registry")

POLL_SECONDS = 0.2
WRITER_CACHE_KIB = 64 * 1024
RESTART_FRAMES = 16_384  # 64 MiB of 4 KiB pages
RESTART_WAIT_MS = 100
WAL_LIMIT_BYTES = 64 * 1024 * 1024
CHECKPOINT = Histogram("symbolsvc_sqlite_checkpoint_seconds", "Duration of each WAL checkpoint "
                       "of the registry, by mode (passive; restart: the writer waits).",
                       ["mode"])
_PASSIVE, _RESTART = CHECKPOINT.labels("passive"), CHECKPOINT.labels("restart")


def tune_writer(conn: sqlite3.Connection, tuned: bool = True) -> sqlite3.Connection:
    """The writer connection: no checkpoint in COMMIT, a 64 MiB page cache, the WAL file
    truncated to :data:`WAL_LIMIT_BYTES` when it starts over (``tuned``; otherwise
    SQLite's defaults, for benchmarks' A/B)."""
    if tuned:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")
    return conn


class Checkpointer:
    """A daemon thread that checkpoints the WAL of ``path`` when it grows."""

    def __init__(self, path: Path, connect: Callable[[], sqlite3.Connection],
                 enabled: bool = True, *, restart_frames: int = RESTART_FRAMES) -> None:
        self._wal = path.with_name(path.name + "-wal")
        self._connect = connect
        self._restart_frames = restart_frames
        self._conn: sqlite3.Connection | None = None
        self._stop = threading.Event()
        self.checkpoints = 0  # read by tests and benchmarks
        self.restarts = 0
        self._thread = threading.Thread(target=self._run, name="registry-checkpoint",
                                        daemon=True)
        if enabled:
            self._thread.start()

    def step(self) -> bool:
        """One passive checkpoint, and a restart when the WAL is long; whether the WAL
        was restarted. Runs on the checkpointer's thread (or a test's, when not started)."""
        if self._conn is None:
            self._conn = self._connect()
            self._conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
        with _PASSIVE.time():
            _, frames, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.checkpoints += 1
        if frames < self._restart_frames:
            return False
        with _RESTART.time():
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        if busy:  # a reader still in the WAL after RESTART_WAIT_MS: the next poll retries
            return False
        self.restarts += 1
        return True

    def _run(self) -> None:
        failed = False
        last: tuple[int, int] | None = None
        while not self._stop.wait(POLL_SECONDS):
            try:
                st = self._wal.stat()
                mark = (st.st_mtime_ns, st.st_size)
                if mark == last:  # nothing committed since the last checkpoint
                    continue
                self.step()
                last = mark
                failed = False
            except (OSError, sqlite3.Error) as exc:
                if not failed:  # once per streak, never per poll
                    log.warning("registry WAL checkpoint failed (retried): %s", exc)
                failed = True

    def checkpoint_now(self) -> None:
        """One passive checkpoint on the caller's thread (tests, shutdown)."""
        conn = self._connect()
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._conn is not None:
            self._conn.close()


def wal_bytes(path: Path) -> int:
    """The size of ``path``'s WAL file (0 if there is none)."""
    try:
        return os.stat(path.with_name(path.name + "-wal")).st_size
    except FileNotFoundError:
        return 0
