"""The embedded registry: one SQLite file in WAL mode, durable on every commit.

Writes go through a :class:`~.groupcommit.GroupCommitter` (one writer
thread, one fsync per group). Reads run on a small thread pool, each thread
with its own read-only connection, which WAL lets proceed while the writer
commits. ``synchronous=FULL`` makes every commit fsync the WAL, so an
acknowledged write survives kill -9 and power loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError, ResourceExhausted, Unavailable
from . import (
    Appended,
    BuildRecord,
    HoldingRow,
    Integration,
    LogStatus,
    NewHolding,
    NewRecord,
    PlanFn,
    PriorExchange,
    PublishedPolicy,
    QueueAuth,
    StoredCheckpoint,
    StoredRecord,
    ids_of,
)
from . import sqlite_sql as sql
from . import sqlite_transparency as views
from .groupcommit import GroupCommitter
from .keyversions import SqliteKeyVersions
from .migrations import Migration, sqlite_migrate, sqlite_version
from .sqlite_wal import Checkpointer, tune_writer

T = TypeVar("T")

log = logging.getLogger("symbolsvc.registry")


def _probe(path: Path) -> None:
    probe = path.with_name(path.name + ".probe")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if os.write(fd, bytes(1 << 20)) < 1 << 20:
                raise OSError(28, "No space left on device")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ResourceExhausted("STORAGE_FULL", f"probe write failed: {exc.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def _open(path: Path, *, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = FULL")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    return conn


class SqliteRegistry(SqliteKeyVersions):
    """:class:`symbolsvc.registry.Registry` on one SQLite file."""

    def __init__(self, path: Path, *, read_threads: int = 2, tuned_writer: bool = True) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._init_schema()
        # tuned_writer (the default): WAL checkpoints off the commit path and a 64 MiB
        # writer cache (.sqlite_wal); tuned_writer=False is SQLite's defaults, for A/B.
        self._writer = GroupCommitter(
            lambda: tune_writer(_open(path, readonly=False), tuned_writer))
        # WAL checkpoints in their own thread, not inside a commit (.sqlite_wal).
        self._checkpointer = Checkpointer(path, lambda: _open(path, readonly=False),
                                          enabled=tuned_writer)
        self._local = threading.local()
        self._readers = ThreadPoolExecutor(read_threads, thread_name_prefix="registry-read")
        # Why a write failed for lack of room; cleared only by probe_write, never by a
        # write that happens to fit (a small one can reuse WAL pages already allocated
        # while the disk is still full), as the PostgreSQL registry does.
        self.write_failure: str | None = None
        # Tags appended rows (set by the server); the merged units are made once so
        # the group committer merges them (it merges units by function identity).
        self.queue_auth = QueueAuth()
        self._append = partial(sql.append_merged, auth=self.queue_auth)
        self._append_for = partial(sql.append_for_merged, auth=self.queue_auth)
        self._issue = partial(sql.issue_merged, auth=self.queue_auth)

    def _append_new(self, conn: sqlite3.Connection, records: list[NewRecord]) -> None:
        """keyversions' moves append ISSUE/RELEASE records with this, tagged."""
        sql.append_new(conn, records, self.queue_auth)

    def _init_schema(self) -> None:
        conn = _open(self.path, readonly=False)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise ConfigError(f"{self.path}: cannot switch SQLite to WAL mode (got {mode})")
            # Zero set-up: the embedded registry applies its own pending migrations
            # (the same files `symbolsvc db migrate` applies); a newer schema is refused.
            sqlite_migrate(conn, str(self.path))
        finally:
            conn.close()

    # -- reads ---------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _open(self.path, readonly=True)
        return conn

    async def _read(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, lambda: fn(self._reader(), *args))
        except sqlite3.Error as exc:
            raise Unavailable("STORAGE_UNAVAILABLE", f"registry read failed: {exc}") from None

    async def lookup(self, agency: str, symbol: str) -> bytes | None:
        return (await self.lookup_many([(agency, symbol)]))[0]

    async def lookup_many(self, keys: Sequence[tuple[str, str]]) -> list[bytes | None]:
        return await self._read(sql.lookup_many, list(keys))

    async def records_for_subject(
        self, pseudonym: bytes, before_id: int | None, limit: int, *, now_us: int | None = None
    ) -> list[StoredRecord]:
        return await self._read(sql.records_for_subject, pseudonym, before_id, limit, now_us)

    async def holding_rows(self, keys: Sequence[tuple[str, str]]) -> list[HoldingRow | None]:
        return await self._read(views.holding_rows, list(keys))

    async def withheld_for_subject(self, pseudonym: bytes, now_us: int
                                   ) -> tuple[int, int | None]:
        return await self._read(views.withheld_for_subject, pseudonym, now_us)

    async def withheld_due(self, after: tuple[int, int], until_us: int, max_leaf: int, limit: int
                           ) -> list[StoredRecord]:
        return await self._read(views.withheld_due, after, until_us, max_leaf, limit)

    async def policy_version(self, version: bytes) -> PublishedPolicy | None:
        return await self._read(views.policy_version, version)

    async def publish_policy(self, version: bytes, record: NewRecord, loaded_at_us: int
                             ) -> PublishedPolicy:
        return await self._write(lambda c: views.publish_policy(c, version, record, loaded_at_us,
                                                                   self.queue_auth))

    async def records_after(self, after_id: int, limit: int) -> list[StoredRecord]:
        return await self._read(sql.records_after, after_id, limit)

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    # -- access log reads (docs/ACCESS_LOG.md) --------------------------------

    async def log_status(self) -> LogStatus:
        return await self._read(sql.log_status)

    async def follow_growth(self, on_size: Callable[[int], None]) -> None:
        """No cross-process channel: processes sharing the file (``--workers``) learn the
        size from their sequencer's read every interval."""
        return None

    async def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        return await self._read(sql.get_nodes, list(ids))

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        return await self._read(sql.checkpoint, None)

    async def checkpoint_at(self, tree_size: int) -> StoredCheckpoint | None:
        return await self._read(sql.checkpoint, tree_size)

    async def recent_checkpoints(self, limit: int) -> list[StoredCheckpoint]:
        return await self._read(sql.recent_checkpoints, limit)

    async def replace_note(self, tree_size: int, old_note: str, new_note: str) -> bool:
        return bool(await self._write(lambda c: sql.replace_note(c, tree_size, old_note,
                                                                 new_note)))

    async def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        return await self._read(sql.entries, start, end)

    async def record_by_id(self, record_id: int) -> StoredRecord | None:
        return await self._read(sql.record_by_id, record_id)

    async def integrated_after(self, after_leaf: int, limit: int) -> list[StoredRecord]:
        return await self._read(sql.integrated_after, after_leaf, limit)

    async def leaf_index_by_hash(self, leaf_hash: bytes, tree_size: int) -> int | None:
        return await self._read(sql.leaf_index_by_hash, leaf_hash, tree_size)

    # -- writes --------------------------------------------------------------

    async def _write(self, fn: Any, item: Any = None) -> Any:
        """Run ``fn(conn)`` in the next group, or ``fn(conn, items)`` merged with the
        group's other ``item``s for the same ``fn`` when an item is given."""
        try:
            if item is None:
                result = await self._writer.submit(fn)
            else:
                result = await self._writer.submit_merged(fn, item)
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                if self.write_failure is None:
                    log.error("registry write refused: the disk holding %s is full; calls "
                              "that write get RESOURCE_EXHAUSTED (STORAGE_FULL) and health "
                              "is NOT_SERVING until a write fits again", self.path)
                self.write_failure = "STORAGE_FULL"
                raise ResourceExhausted(
                    "STORAGE_FULL", "the registry's disk is full: nothing was written; "
                    "retry later (the operator has been alerted)") from None
            raise Unavailable("STORAGE_UNAVAILABLE", f"registry write failed: {exc}") from None
        return result

    async def probe_write(self) -> None:
        """Whether a write would fit now: write and remove a 1 MiB file beside the
        registry (health uses this to leave NOT_SERVING after a full disk)."""
        await asyncio.get_running_loop().run_in_executor(self._readers, _probe, self.path)
        self.write_failure = None

    async def issue(self, items: Sequence[NewHolding]) -> list[bool]:
        return await self._write(self._issue, list(items))

    async def release(self, agency: str, symbol: str, *,
                      record: NewRecord | None = None) -> bool | None:
        return await self._write(lambda c: sql.release(c, agency, symbol, record, self.queue_auth))

    async def append_records(self, records: Sequence[NewRecord]) -> list[int | None]:
        return ids_of(await self._write(self._append, list(records)))

    async def prior_exchange(self, key: bytes) -> PriorExchange | None:
        return await self._read(sql.prior_exchange, key)

    async def append_for_holdings(
        self, items: Sequence[tuple[tuple[str, str], BuildRecord[T]]]
    ) -> list[Appended[T]]:
        return await self._write(self._append_for, list(items))

    async def integrate(
        self, batch: int, holder: str, lease_ms: int, plan: PlanFn
    ) -> Integration:
        return await self._write(lambda c: sql.integrate(c, batch, holder, lease_ms, plan))

    async def release_lease(self, holder: str) -> None:
        await self._write(lambda c: sql.release_lease(c, holder))

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(groups committed, units committed) since start."""
        return self._writer.groups, self._writer.units

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._writer.close)
        await asyncio.get_running_loop().run_in_executor(None, self._checkpointer.close)
        self._readers.shutdown(wait=True)




# -- the backend (registered for sqlite: URLs in .backends) ---------------------------


class SqliteBackend:
    """:class:`~.backends.Backend` for ``sqlite:PATH`` (PATH relative to the config's
    directory unless absolute)."""

    name = "sqlite"

    def path(self, url: str, base: Path) -> Path:
        return base / url.removeprefix("sqlite:").removeprefix("//")

    def describe(self, url: str, base: Path) -> str:
        return str(self.path(url, base))

    supports_standby = False

    def open(self, url: str, base: Path, read_url: str = "",
             read_max_lag_ms: int = 1000) -> SqliteRegistry:
        return SqliteRegistry(self.path(url, base))

    def _connect(self, url: str, base: Path) -> sqlite3.Connection:
        path = self.path(url, base)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.Error as exc:
            raise ConfigError(f"{path}: cannot open the SQLite registry: {exc}") from None
        return conn

    def create(self, url: str, base: Path) -> str:
        path = self.path(url, base)
        existed = path.exists()
        self._connect(url, base).close()
        return f"{path}: {'exists' if existed else 'created'}"

    def migrate(self, url: str, base: Path) -> list[Migration]:
        conn = self._connect(url, base)
        try:
            return sqlite_migrate(conn, str(self.path(url, base)))
        finally:
            conn.close()

    def schema_version(self, url: str, base: Path) -> int:
        if not self.path(url, base).exists():
            return 0
        conn = self._connect(url, base)
        try:
            return sqlite_version(conn)
        finally:
            conn.close()

    def inspect(self, url: str, base: Path) -> SqliteInspector:
        return SqliteInspector(self.path(url, base))


class SqliteInspector:
    """:class:`~.backends.Inspector` on a live SQLite registry (the server may keep
    writing: WAL lets this read alongside)."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        self._conn.execute("PRAGMA query_only = 1")

    def execute(self, sql: str, params: tuple[Any, ...] = ()
                ) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = self._conn.execute(sql, params)
        return [d[0] for d in cur.description or ()], cur.fetchall()

    def tables(self) -> list[str]:
        _, rows = self.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        return [r[0] for r in rows]

    def close(self) -> None:
        self._conn.close()


BACKEND = SqliteBackend()
