"""The embedded registry: one SQLite file in WAL mode, durable on every commit.

Writes go through a :class:`~.groupcommit.GroupCommitter` (one writer
thread, one fsync per group). Reads run on a small thread pool, each thread
with its own read-only connection, which WAL lets proceed while the writer
commits. ``synchronous=FULL`` makes every commit fsync the WAL, so an
acknowledged write survives kill -9 and power loss.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError, Unavailable
from . import NewHolding, NewRecord, StoredRecord
from .groupcommit import GroupCommitter

SCHEMA_VERSION = 1


def _open(path: Path, *, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = FULL")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    return conn


class SqliteRegistry:
    """:class:`symbolsvc.registry.Registry` on one SQLite file."""

    def __init__(self, path: Path, *, read_threads: int = 2) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._init_schema()
        self._writer = GroupCommitter(lambda: _open(path, readonly=False))
        self._local = threading.local()
        self._readers = ThreadPoolExecutor(read_threads, thread_name_prefix="registry-read")

    def _init_schema(self) -> None:
        conn = _open(self.path, readonly=False)
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise ConfigError(f"{self.path}: cannot switch SQLite to WAL mode (got {mode})")
            conn.executescript(
                resources.files(__package__).joinpath("sqlite_schema.sql").read_text()
            )
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) != SCHEMA_VERSION:
                raise ConfigError(
                    f"{self.path}: schema version {row[0]} is not the supported "
                    f"version {SCHEMA_VERSION}"
                )
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
        return await self._read(_lookup_many, list(keys))

    async def records_for_subject(
        self, pseudonym: bytes, before_id: int | None, limit: int
    ) -> list[StoredRecord]:
        return await self._read(_records_for_subject, pseudonym, before_id, limit)

    async def records_after(self, after_id: int, limit: int) -> list[StoredRecord]:
        return await self._read(_records_after, after_id, limit)

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    # -- writes --------------------------------------------------------------

    async def _write(self, fn: Any) -> Any:
        try:
            return await self._writer.submit(fn)
        except sqlite3.Error as exc:
            raise Unavailable("STORAGE_UNAVAILABLE", f"registry write failed: {exc}") from None

    async def issue(self, items: Sequence[NewHolding]) -> list[bool]:
        rows = [(h.agency, h.symbol, h.sealed_subject) for h in items]
        return await self._write(lambda c: _issue(c, rows))

    async def release(self, agency: str, symbol: str) -> bool | None:
        return await self._write(lambda c: _release(c, agency, symbol))

    async def append_records(self, records: Sequence[NewRecord]) -> list[int | None]:
        recs = list(records)
        return await self._write(lambda c: _append(c, recs))

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(groups committed, units committed) since start."""
        return self._writer.groups, self._writer.units

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._writer.close)
        self._readers.shutdown(wait=True)


# Units of work: plain functions of a connection, run inside a transaction.

_UPSERT = (
    "INSERT INTO holdings (agency, symbol, sealed_subject) VALUES (?, ?, ?) "
    "ON CONFLICT (agency, symbol) DO UPDATE SET released = 0 WHERE released = 1"
)
_LIVE = "SELECT sealed_subject FROM holdings WHERE agency = ? AND symbol = ? AND released = 0"


def _issue(conn: sqlite3.Connection, rows: list[tuple[str, str, bytes]]) -> list[bool]:
    execute = conn.execute
    return [execute(_UPSERT, row).rowcount == 1 for row in rows]


def _release(conn: sqlite3.Connection, agency: str, symbol: str) -> bool | None:
    cur = conn.execute(
        "UPDATE holdings SET released = 1 WHERE agency = ? AND symbol = ? AND released = 0",
        (agency, symbol),
    )
    if cur.rowcount == 1:
        return True
    exists = conn.execute(
        "SELECT 1 FROM holdings WHERE agency = ? AND symbol = ?", (agency, symbol)
    ).fetchone()
    return False if exists else None


def _append(conn: sqlite3.Connection, records: list[NewRecord]) -> list[int | None]:
    out: list[int | None] = []
    for r in records:
        if r.require is not None and conn.execute(_LIVE, r.require).fetchone() is None:
            out.append(None)
            continue
        cur = conn.execute(
            "INSERT INTO access_records (pseudonym, sealed_subject, leaf) VALUES (?, ?, ?)",
            (r.pseudonym, r.sealed_subject, r.leaf),
        )
        out.append(cur.lastrowid)
    return out


def _lookup_many(conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> list[bytes | None]:
    out = []
    for key in keys:
        row = conn.execute(_LIVE, key).fetchone()
        out.append(row[0] if row else None)
    return out


def _records_for_subject(
    conn: sqlite3.Connection, pseudonym: bytes, before_id: int | None, limit: int
) -> list[StoredRecord]:
    rows = conn.execute(
        "SELECT id, leaf, sealed_subject FROM access_records "
        "WHERE pseudonym = ? AND id < ? ORDER BY id DESC LIMIT ?",
        (pseudonym, before_id if before_id is not None else 2**63 - 1, limit),
    ).fetchall()
    return [StoredRecord(*row) for row in rows]


def _records_after(conn: sqlite3.Connection, after_id: int, limit: int) -> list[StoredRecord]:
    rows = conn.execute(
        "SELECT id, leaf, sealed_subject FROM access_records WHERE id > ? ORDER BY id LIMIT ?",
        (after_id, limit),
    ).fetchall()
    return [StoredRecord(*row) for row in rows]
