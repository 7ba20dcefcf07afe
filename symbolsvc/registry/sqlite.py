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
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..errors import ConfigError, Unavailable
from ..log.merkle import Frontier, leaf_hash
from . import (
    BuildRecord,
    Integration,
    LogStatus,
    NewHolding,
    NewRecord,
    SignFn,
    StoredCheckpoint,
    StoredRecord,
    build_records,
)
from .groupcommit import GroupCommitter
from .keyversions import SqliteKeyVersions
from .migrations import sqlite_migrate


def _open(path: Path, *, readonly: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = FULL")
    if readonly:
        conn.execute("PRAGMA query_only = 1")
    return conn


class SqliteRegistry(SqliteKeyVersions):
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
        return await self._read(_lookup_many, list(keys))

    async def records_for_subject(
        self, pseudonym: bytes, before_id: int | None, limit: int
    ) -> list[StoredRecord]:
        return await self._read(_records_for_subject, pseudonym, before_id, limit)

    async def records_after(self, after_id: int, limit: int) -> list[StoredRecord]:
        return await self._read(_records_after, after_id, limit)

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone())

    # -- access log reads (docs/ACCESS_LOG.md) --------------------------------

    async def log_status(self) -> LogStatus:
        return await self._read(_log_status)

    async def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        return await self._read(_get_nodes, list(ids))

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        return await self._read(_checkpoint, None)

    async def checkpoint_at(self, tree_size: int) -> StoredCheckpoint | None:
        return await self._read(_checkpoint, tree_size)

    async def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        return await self._read(_entries, start, end)

    async def record_by_id(self, record_id: int) -> StoredRecord | None:
        return await self._read(_record_by_id, record_id)

    async def integrated_after(self, after_leaf: int, limit: int) -> list[StoredRecord]:
        return await self._read(_integrated_after, after_leaf, limit)

    # -- writes --------------------------------------------------------------

    async def _write(self, fn: Any, item: Any = None) -> Any:
        """Run ``fn(conn)`` in the next group, or ``fn(conn, items)`` merged with the
        group's other ``item``s for the same ``fn`` when an item is given."""
        try:
            if item is None:
                return await self._writer.submit(fn)
            return await self._writer.submit_merged(fn, item)
        except sqlite3.Error as exc:
            raise Unavailable("STORAGE_UNAVAILABLE", f"registry write failed: {exc}") from None

    async def issue(self, items: Sequence[NewHolding]) -> list[bool]:
        rows = [(h.agency, h.symbol, h.sealed_subject) for h in items]
        return await self._write(_issue_merged, rows)

    async def release(self, agency: str, symbol: str) -> bool | None:
        return await self._write(lambda c: _release(c, agency, symbol))

    async def append_records(self, records: Sequence[NewRecord]) -> list[int | None]:
        return await self._write(_append_merged, list(records))

    async def append_for_holdings(
        self, items: Sequence[tuple[tuple[str, str], BuildRecord]]
    ) -> list[tuple[bool, int | None]]:
        return await self._write(_append_for_merged, list(items))

    async def integrate(
        self, batch: int, holder: str, lease_ms: int, sign_fn: SignFn
    ) -> Integration:
        return await self._write(lambda c: _integrate(c, batch, holder, lease_ms, sign_fn))

    async def release_lease(self, holder: str) -> None:
        await self._write(lambda c: _release_lease(c, holder))

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(groups committed, units committed) since start."""
        return self._writer.groups, self._writer.units

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._writer.close)
        self._readers.shutdown(wait=True)


# Units of work: plain functions of a connection, run inside a transaction.

_LIVE = "SELECT sealed_subject FROM holdings WHERE agency = ? AND symbol = ? AND released = 0"


# Rows per multi-row statement: within SQLite's 32,766 bound variables.
_CHUNK = 5000


def _chunks(rows: list[Any]) -> list[list[Any]]:
    return [rows[i:i + _CHUNK] for i in range(0, len(rows), _CHUNK)]


def _values(rows: int, width: int) -> str:
    """``(?, ?), (?, ?)…``: only placeholders are ever spliced into SQL text."""
    return ",".join(["(" + ", ".join("?" * width) + ")"] * rows)


def _live_positions(conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> set[int]:
    """Positions in ``keys`` of the holdings that are live (see :func:`_live_sealed`)."""
    return set(_live_sealed(conn, keys))


def _issue_merged(
    conn: sqlite3.Connection, calls: list[list[tuple[str, str, bytes]]]
) -> list[list[bool]]:
    """The issue rows of a whole group in one upsert per chunk; per row, True when
    the row was inserted or re-activated (the first occurrence within the group)."""
    rows = [row for call in calls for row in call]
    changed: set[tuple[str, str]] = set()
    for chunk in _chunks(rows):
        sql = (
            "INSERT INTO holdings (agency, symbol, sealed_subject) VALUES "  # noqa: S608
            + _values(len(chunk), 3)
            + " ON CONFLICT (agency, symbol) DO UPDATE SET released = 0 WHERE released = 1"
            " RETURNING agency, symbol"
        )
        changed.update(conn.execute(sql, [v for row in chunk for v in row]).fetchall())
    out: list[list[bool]] = []
    for call in calls:
        flags = []
        for agency, symbol, _ in call:
            key = (agency, symbol)
            flags.append(key in changed)
            changed.discard(key)  # a repeat in the same group is not new
        out.append(flags)
    return out


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


def _append_merged(
    conn: sqlite3.Connection, calls: list[list[NewRecord]]
) -> list[list[int | None]]:
    """A group's access records: one liveness query and one insert per chunk.

    Ids are assigned here, consecutively after the largest id, inside the
    writer's transaction (which holds SQLite's write lock), so the id order is
    the commit order even with several server processes on one file."""
    required = list({key for call in calls for r in call for key in r.require})
    live = {required[i] for i in _live_positions(conn, required)}
    next_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM access_records").fetchone()[0]
    rows: list[tuple[int, bytes, bytes, bytes]] = []
    out: list[list[int | None]] = []
    for call in calls:
        ids: list[int | None] = []
        for r in call:
            if not live.issuperset(r.require):
                ids.append(None)
                continue
            rows.append((next_id, r.pseudonym, r.sealed_subject, r.leaf))
            ids.append(next_id)
            next_id += 1
        out.append(ids)
    for chunk in _chunks(rows):
        conn.execute(
            "INSERT INTO access_records (id, pseudonym, sealed_subject, leaf) "
            "VALUES " + _values(len(chunk), 4),
            [v for row in chunk for v in row],
        )
    return out


def _live_sealed(conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> dict[int, bytes]:
    """Position in ``keys`` -> sealed subject reference, for the live holdings, from
    one aggregate row per chunk.

    One result row rather than one per holding matters: sqlite3 releases the GIL
    around every step of a statement, and each time the writer must win it back
    from the busy event loop (up to the switch interval), so a statement that
    returns a row per holding stretches the whole group."""
    found: dict[int, bytes] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        params: list[Any] = []
        for i, (agency, symbol) in enumerate(chunk, start):
            params += (i, agency, symbol)
        (rows,) = conn.execute(
            "SELECT group_concat(v.column1 || ':' || hex(h.sealed_subject)) FROM (VALUES "  # noqa: S608
            + _values(len(chunk), 3)
            + ") AS v JOIN holdings h ON h.agency = v.column2 AND h.symbol = v.column3"
            " WHERE h.released = 0",
            params,
        ).fetchone()
        for pair in rows.split(",") if rows else ():
            i, _, sealed = pair.partition(":")
            found[int(i)] = bytes.fromhex(sealed)
    return found


def _append_for_merged(
    conn: sqlite3.Connection, calls: list[list[tuple[tuple[str, str], BuildRecord]]]
) -> list[list[tuple[bool, int | None]]]:
    """A group's append_for_holdings: one read of the holdings, the builds, then
    :func:`_append_merged`, all in the writer's transaction."""
    items = [item for call in calls for item in call]
    sealed = _live_sealed(conn, [key for key, _ in items])
    results, records, slots = build_records(
        [build for _, build in items], [sealed.get(j) for j in range(len(items))])
    if records:
        (ids,) = _append_merged(conn, [records])
        for j, rid in zip(slots, ids, strict=True):
            results[j] = (True, rid)
    out: list[list[tuple[bool, int | None]]] = []
    pos = 0
    for call in calls:
        out.append(results[pos:pos + len(call)])
        pos += len(call)
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
        "SELECT id, leaf, sealed_subject, leaf_index FROM access_records "
        "WHERE pseudonym = ? AND id < ? ORDER BY id DESC LIMIT ?",
        (pseudonym, before_id if before_id is not None else 2**63 - 1, limit),
    ).fetchall()
    return [StoredRecord(*row) for row in rows]


def _records_after(conn: sqlite3.Connection, after_id: int, limit: int) -> list[StoredRecord]:
    rows = conn.execute(
        "SELECT id, leaf, sealed_subject, leaf_index FROM access_records WHERE id > ? "
        "ORDER BY id LIMIT ?",
        (after_id, limit),
    ).fetchall()
    return [StoredRecord(*row) for row in rows]


# -- the access log ---------------------------------------------------------------
# Plain SQL that PostgreSQL and CockroachDB accept as well: the lease is a row
# taken with a conditional UPDATE (no advisory locks), the queue is read through
# the partial index access_records_unsequenced.


def _now_us() -> int:
    return time.time_ns() // 1000


def _take_lease(conn: sqlite3.Connection, holder: str, lease_ms: int) -> bool:
    """Take or renew the lease inside the caller's transaction; True if ``holder`` has it."""
    now = _now_us()
    expires = now + lease_ms * 1000
    conn.execute(
        "INSERT INTO sequencer_lease (id, holder, expires_us) VALUES (1, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        (holder, expires),
    )
    cur = conn.execute(
        "UPDATE sequencer_lease SET holder = ?, expires_us = ? "
        "WHERE id = 1 AND (holder = ? OR expires_us <= ?)",
        (holder, expires, holder, now),
    )
    return cur.rowcount == 1


def _load_frontier(conn: sqlite3.Connection) -> Frontier:
    row = conn.execute("SELECT tree_size, frontier FROM log_state WHERE id = 1").fetchone()
    if row is None:
        return Frontier()
    frontier = Frontier.from_bytes(row[1])
    if frontier.size != row[0]:
        raise RuntimeError(
            f"log_state is inconsistent: tree_size {row[0]} but a frontier of {frontier.size}"
        )
    return frontier


def _integrate(
    conn: sqlite3.Connection, batch: int, holder: str, lease_ms: int, sign_fn: SignFn
) -> Integration:
    """One sequencer step inside the writer's transaction: all of it commits, or none."""
    if not _take_lease(conn, holder, lease_ms):
        return Integration(False, 0, _stored_size(conn), None)
    frontier = _load_frontier(conn)
    rows = conn.execute(
        "SELECT id, leaf FROM access_records WHERE leaf_index IS NULL ORDER BY id LIMIT ?",
        (batch,),
    ).fetchall()
    if rows:
        assign: list[tuple[int, int]] = []
        nodes: list[tuple[int, int, bytes]] = []
        for record_id, leaf in rows:
            assign.append((frontier.size, record_id))
            nodes.extend(frontier.append(leaf_hash(leaf)))
        cur = conn.executemany(
            "UPDATE access_records SET leaf_index = ? WHERE id = ? AND leaf_index IS NULL",
            assign,
        )
        if cur.rowcount != len(assign):  # cannot happen under the lease; never half-apply
            raise RuntimeError("a record was integrated concurrently; integration rolled back")
        conn.executemany("INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
    latest = conn.execute("SELECT MAX(tree_size) FROM checkpoints").fetchone()[0]
    if rows or latest is None:
        conn.execute(
            "INSERT INTO log_state (id, tree_size, frontier) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET tree_size = excluded.tree_size, "
            "frontier = excluded.frontier",
            (frontier.size, frontier.to_bytes()),
        )
    if latest is not None and latest > frontier.size:
        raise RuntimeError(
            f"a checkpoint of size {latest} exists but the stored tree has {frontier.size} leaves"
        )
    note = None
    if latest is None or latest < frontier.size:
        note = sign_fn(frontier.size, frontier.root())
        conn.execute(
            "INSERT INTO checkpoints (tree_size, note, signed_at_us) VALUES (?, ?, ?)",
            (frontier.size, note, _now_us()),
        )
    return Integration(True, len(rows), frontier.size, note)


def _release_lease(conn: sqlite3.Connection, holder: str) -> None:
    conn.execute(
        "UPDATE sequencer_lease SET expires_us = 0 WHERE id = 1 AND holder = ?", (holder,)
    )


def _stored_size(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT tree_size FROM log_state WHERE id = 1").fetchone()
    return row[0] if row else 0


def _log_status(conn: sqlite3.Connection) -> LogStatus:
    size = _stored_size(conn)
    row = conn.execute("SELECT holder, expires_us FROM sequencer_lease WHERE id = 1").fetchone()
    return LogStatus(size, row[0], row[1]) if row else LogStatus(size, None, 0)


def _get_nodes(conn: sqlite3.Connection, ids: list[tuple[int, int]]) -> list[bytes]:
    if not ids:
        return []
    found: dict[tuple[int, int], bytes] = {}
    for start in range(0, len(ids), 200):  # one statement per 200 nodes (a proof needs ~130)
        chunk = ids[start:start + 200]
        where = " OR ".join(["(level = ? AND idx = ?)"] * len(chunk))
        params = [v for node in chunk for v in node]
        for level, idx, h in conn.execute(
            "SELECT level, idx, hash FROM tree_nodes WHERE " + where, params  # noqa: S608
        ):
            found[(level, idx)] = h
    return [found[node] for node in ids]  # KeyError names a missing node


def _checkpoint(conn: sqlite3.Connection, tree_size: int | None) -> StoredCheckpoint | None:
    if tree_size is None:
        row = conn.execute(
            "SELECT tree_size, note, signed_at_us FROM checkpoints "
            "ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT tree_size, note, signed_at_us FROM checkpoints WHERE tree_size = ?",
            (tree_size,),
        ).fetchone()
    return StoredCheckpoint(*row) if row else None


def _entries(conn: sqlite3.Connection, start: int, end: int) -> list[tuple[int, bytes]]:
    return conn.execute(
        "SELECT leaf_index, leaf FROM access_records "
        "WHERE leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index",
        (start, end),
    ).fetchall()


def _record_by_id(conn: sqlite3.Connection, record_id: int) -> StoredRecord | None:
    row = conn.execute(
        "SELECT id, leaf, sealed_subject, leaf_index FROM access_records WHERE id = ?",
        (record_id,),
    ).fetchone()
    return StoredRecord(*row) if row else None


def _integrated_after(conn: sqlite3.Connection, after_leaf: int, limit: int) -> list[StoredRecord]:
    rows = conn.execute(
        "SELECT id, leaf, sealed_subject, leaf_index FROM access_records "
        "WHERE leaf_index > ? ORDER BY leaf_index LIMIT ?",
        (after_leaf, limit),
    ).fetchall()
    return [StoredRecord(*row) for row in rows]
