"""The SQLite registry's units of work: plain functions of a connection.

Each runs inside a transaction of the group committer's writer thread (writes)
or on a reader thread's read-only connection (reads); :mod:`.sqlite` schedules
them. Only placeholders are ever spliced into SQL text.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from . import (
    Appended,
    BuildRecord,
    Integration,
    IntegrationInput,
    LogState,
    LogStatus,
    NewHolding,
    NewRecord,
    Placed,
    PlanFn,
    PriorExchange,
    QueueAuth,
    StoredCheckpoint,
    StoredRecord,
    build_records,
    fallback_record,
    with_ids,
)

_LIVE = "SELECT sealed_subject FROM holdings WHERE agency = ? AND symbol = ? AND released = 0"


# Rows per multi-row statement: within SQLite's 32,766 bound variables.
_CHUNK = 5000
_QUEUED = ("SELECT id, leaf, pseudonym, sealed_subject, mac, exchange_key, exchange_digest "
           "FROM access_records "
           "WHERE leaf_index IS NULL ORDER BY id LIMIT ?")
_MAX_ID = 2**63 - 1


def _chunks(rows: Sequence[Any]) -> list[Sequence[Any]]:
    return [rows[i:i + _CHUNK] for i in range(0, len(rows), _CHUNK)]


def _values(rows: int, width: int) -> str:
    """``(?, ?), (?, ?)…``: only placeholders are ever spliced into SQL text."""
    return ",".join(["(" + ", ".join("?" * width) + ")"] * rows)


def _live_positions(conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> set[int]:
    """Positions in ``keys`` of the holdings that are live (see :func:`_live_sealed`)."""
    return set(_live_sealed(conn, keys))


def issue_merged(
    conn: sqlite3.Connection, calls: list[list[NewHolding]], auth: QueueAuth | None = None
) -> list[list[bool]]:
    """The issue rows of a whole group in one upsert per chunk; per row, True when
    the row was inserted or re-activated (the first occurrence within the group).
    The ISSUE records of the new rows are appended in the same transaction."""
    rows = [(h.agency, h.symbol, h.sealed_subject) for call in calls for h in call]
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
    records: list[NewRecord] = []
    for call in calls:
        flags = []
        for h in call:
            key = (h.agency, h.symbol)
            new = key in changed
            flags.append(new)
            if new and h.record is not None:
                records.append(h.record)
            changed.discard(key)  # a repeat in the same group is not new
        out.append(flags)
    append_new(conn, records, auth)
    return out


def append_new(conn: sqlite3.Connection, records: list[NewRecord],
               auth: QueueAuth | None = None) -> None:
    """Append records that require no holding (ISSUE/RELEASE/POLICY) in the caller's
    transaction, in pseudonym order: their ids then follow no order the holdings' rows
    show (docs/DISCLOSURE.md, "What an attacker can do"). ``auth`` tags each row."""
    if records:
        append_merged(conn, [sorted(records, key=lambda r: r.pseudonym)], auth)


def release(conn: sqlite3.Connection, agency: str, symbol: str,
            record: NewRecord | None, auth: QueueAuth | None = None) -> bool | None:
    cur = conn.execute(
        "UPDATE holdings SET released = 1 WHERE agency = ? AND symbol = ? AND released = 0",
        (agency, symbol),
    )
    if cur.rowcount == 1:
        if record is not None:
            append_merged(conn, [[record]], auth)
        return True
    exists = conn.execute(
        "SELECT 1 FROM holdings WHERE agency = ? AND symbol = ?", (agency, symbol)
    ).fetchone()
    return False if exists else None


def append_merged(
    conn: sqlite3.Connection, calls: list[list[NewRecord]], auth: QueueAuth | None = None
) -> list[list[Placed]]:
    """A group's access records: one liveness query, one exchange-key query and one
    insert per chunk.

    Ids are assigned here, consecutively after the largest id, inside the
    writer's transaction (which holds SQLite's write lock), so the id order is
    the commit order even with several server processes on one file. Each row is
    tagged by ``auth`` over its id and bytes (docs/QUEUE_AUTH.md)."""
    recs = [r for call in calls for r in call]
    required = list({key for r in recs for key in r.require})
    live = {required[i] for i in _live_positions(conn, required)}
    # the otherwise-records of the items whose holdings are not all live (rare), and theirs
    fallbacks = {id(r): fallback_record(r) for r in recs
                 if r.otherwise is not None and not live.issuperset(r.require)}
    extra = list({key for o in fallbacks.values() if o for key in o.require} - live)
    live.update(extra[i] for i in _live_positions(conn, extra))
    taken = _taken_keys(conn, [r.exchange.key for r in recs if r.exchange is not None])
    next_id = conn.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM access_records").fetchone()[0]
    now = _now_us()
    rows: list[tuple[Any, ...]] = []
    out: list[list[Placed]] = []
    for call in calls:
        placed: list[Placed] = []
        for r in call:
            rec: NewRecord | None = r
            fallback = not live.issuperset(r.require)
            if fallback:
                rec = fallbacks.get(id(r))
            if (rec is None or not live.issuperset(rec.require)
                    or (r.exchange is not None and r.exchange.key in taken)):
                placed.append(None)
                continue
            x = rec.exchange  # the same as r's: fallback_record() keeps it
            mac = auth.tag(next_id, rec) if auth is not None else None
            rows.append((next_id, rec.pseudonym, rec.sealed_subject, rec.leaf, mac, now,
                         rec.withheld_until_us, x and x.key, x and x.digest))
            if x is not None:
                taken.add(x.key)  # a repeat within the group is a replay of this one
            placed.append((next_id, fallback))
            next_id += 1
        out.append(placed)
    for chunk in _chunks(rows):
        conn.execute(
            "INSERT INTO access_records (id, pseudonym, sealed_subject, leaf, mac, queued_us, "  # noqa: S608
            "withheld_until_us, exchange_key, exchange_digest) VALUES " + _values(len(chunk), 9),
            [v for row in chunk for v in row],
        )
    return out


def _taken_keys(conn: sqlite3.Connection, keys: list[bytes]) -> set[bytes]:
    """The exchange keys among ``keys`` that a stored record holds."""
    found: set[bytes] = set()
    for chunk in _chunks(keys):
        found.update(k for (k,) in conn.execute(
            "SELECT exchange_key FROM access_records WHERE exchange_key IN ("  # noqa: S608
            + ", ".join("?" * len(chunk)) + ")", chunk))
    return found


def prior_exchange(conn: sqlite3.Connection, key: bytes) -> PriorExchange | None:
    row = conn.execute("SELECT exchange_digest, id, leaf FROM access_records "
                       "WHERE exchange_key = ?", (key,)).fetchone()
    return PriorExchange(*row) if row else None


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


def append_for_merged(
    conn: sqlite3.Connection, calls: list[list[tuple[tuple[str, str], BuildRecord[Any]]]],
    auth: QueueAuth | None = None,
) -> list[list[Appended[Any]]]:
    """A group's append_for_holdings: one read of the holdings, the builds, then
    :func:`append_merged`, all in the writer's transaction."""
    items = [item for call in calls for item in call]
    sealed = _live_sealed(conn, [key for key, _ in items])
    results, records, slots = build_records(
        [build for _, build in items], [sealed.get(j) for j in range(len(items))])
    if records:
        (placed,) = append_merged(conn, [records], auth)
        with_ids(results, slots, placed)
    out: list[list[Appended[Any]]] = []
    pos = 0
    for call in calls:
        out.append(results[pos:pos + len(call)])
        pos += len(call)
    return out


def lookup_many(conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> list[bytes | None]:
    out = []
    for key in keys:
        row = conn.execute(_LIVE, key).fetchone()
        out.append(row[0] if row else None)
    return out


def records_for_subject(
    conn: sqlite3.Connection, pseudonym: bytes, before_id: int | None, limit: int,
    now_us: int | None,
) -> list[StoredRecord]:
    rows = conn.execute(
        "SELECT id, leaf, sealed_subject, leaf_index FROM access_records "
        "WHERE pseudonym = ? AND id < ? AND (withheld_until_us IS NULL OR withheld_until_us <= ?)"
        " ORDER BY id DESC LIMIT ?",
        (pseudonym, before_id if before_id is not None else _MAX_ID,
         _MAX_ID if now_us is None else now_us, limit),
    ).fetchall()
    return [StoredRecord(*row) for row in rows]


def records_after(conn: sqlite3.Connection, after_id: int, limit: int) -> list[StoredRecord]:
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


def integrate(
    conn: sqlite3.Connection, batch: int, holder: str, lease_ms: int, plan_fn: PlanFn
) -> Integration:
    """One sequencer step inside the writer's transaction: all of it commits, or none.
    Only I/O here: the lease, the reads, and applying the plan (symbolsvc.log.integrate)."""
    if not _take_lease(conn, holder, lease_ms):
        return Integration(False, 0, _stored_size(conn), None)
    row = conn.execute("SELECT tree_size, frontier FROM log_state WHERE id = 1").fetchone()
    latest = conn.execute("SELECT MAX(tree_size) FROM checkpoints").fetchone()[0]
    queued = conn.execute(_QUEUED, (batch,)).fetchall()
    plan = plan_fn(IntegrationInput(LogState(*row) if row else None, latest, queued))
    now = _now_us()
    for record_id, reason in plan.quarantine:  # kept aside, never deleted silently
        conn.execute(
            "INSERT INTO quarantined_records (id, pseudonym, sealed_subject, leaf, mac, reason, "
            "quarantined_us) SELECT id, pseudonym, sealed_subject, leaf, mac, ?, ? "
            "FROM access_records WHERE id = ? AND leaf_index IS NULL", (reason, now, record_id))
        conn.execute("DELETE FROM access_records WHERE id = ? AND leaf_index IS NULL",
                     (record_id,))
    if plan.assign:
        # One statement per chunk, not one per record: each statement step hands the GIL
        # back and forth with the event loop (see _live_sealed).
        updated = 0
        for chunk in _chunks(plan.assign):
            updated += conn.execute(
                "UPDATE access_records SET leaf_index = v.column1 FROM (VALUES "  # noqa: S608
                + _values(len(chunk), 2)
                + ") AS v WHERE access_records.id = v.column2"
                " AND access_records.leaf_index IS NULL",
                [v for pair in chunk for v in pair],
            ).rowcount
        if updated != len(plan.assign):  # cannot happen under the lease; never half-apply
            raise RuntimeError("a record was integrated concurrently; integration rolled back")
        for chunk in _chunks(plan.nodes):
            conn.execute("INSERT INTO tree_nodes (level, idx, hash) VALUES "  # noqa: S608
                         + _values(len(chunk), 3), [v for node in chunk for v in node])
    if plan.state is not None:
        conn.execute(
            "INSERT INTO log_state (id, tree_size, frontier) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET tree_size = excluded.tree_size, "
            "frontier = excluded.frontier",
            (plan.state.tree_size, plan.state.frontier),
        )
    note = None
    if plan.checkpoint is not None:
        size, note = plan.checkpoint
        conn.execute(
            "INSERT INTO checkpoints (tree_size, note, signed_at_us) VALUES (?, ?, ?)",
            (size, note, _now_us()),
        )
    return Integration(True, len(plan.assign), plan.tree_size, note, len(plan.quarantine))


def release_lease(conn: sqlite3.Connection, holder: str) -> None:
    conn.execute(
        "UPDATE sequencer_lease SET expires_us = 0 WHERE id = 1 AND holder = ?", (holder,)
    )


def _stored_size(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT tree_size FROM log_state WHERE id = 1").fetchone()
    return row[0] if row else 0


def log_status(conn: sqlite3.Connection) -> LogStatus:
    size = _stored_size(conn)
    row = conn.execute("SELECT holder, expires_us FROM sequencer_lease WHERE id = 1").fetchone()
    oldest = conn.execute(
        "SELECT queued_us FROM access_records WHERE leaf_index IS NULL ORDER BY id LIMIT 1"
    ).fetchone()
    (held,) = conn.execute(
        "SELECT COUNT(*) FROM quarantined_records WHERE reviewed_us IS NULL").fetchone()
    holder, expires = row if row else (None, 0)
    return LogStatus(size, holder, expires, oldest[0] if oldest else None, held)


def leaf_index_by_hash(conn: sqlite3.Connection, hash_: bytes, tree_size: int) -> int | None:
    row = conn.execute(
        "SELECT MIN(idx) FROM tree_nodes WHERE level = 0 AND hash = ? AND idx < ?",
        (hash_, tree_size)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def get_nodes(conn: sqlite3.Connection, ids: list[tuple[int, int]]) -> list[bytes]:
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


def checkpoint(conn: sqlite3.Connection, tree_size: int | None) -> StoredCheckpoint | None:
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


def recent_checkpoints(conn: sqlite3.Connection, limit: int) -> list[StoredCheckpoint]:
    rows = conn.execute("SELECT tree_size, note, signed_at_us FROM checkpoints "
                        "ORDER BY tree_size DESC LIMIT ?", (limit,)).fetchall()
    return [StoredCheckpoint(*row) for row in rows]


def replace_note(conn: sqlite3.Connection, tree_size: int, old: str, new: str) -> bool:
    cur = conn.execute("UPDATE checkpoints SET note = ? WHERE tree_size = ? AND note = ?",
                       (new, tree_size, old))
    return cur.rowcount == 1


def entries(conn: sqlite3.Connection, start: int, end: int) -> list[tuple[int, bytes]]:
    return conn.execute(
        "SELECT leaf_index, leaf FROM access_records "
        "WHERE leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index",
        (start, end),
    ).fetchall()


def record_by_id(conn: sqlite3.Connection, record_id: int) -> StoredRecord | None:
    row = conn.execute(
        "SELECT id, leaf, sealed_subject, leaf_index FROM access_records WHERE id = ?",
        (record_id,),
    ).fetchone()
    return StoredRecord(*row) if row else None


def integrated_after(conn: sqlite3.Connection, after_leaf: int, limit: int) -> list[StoredRecord]:
    rows = conn.execute(
        "SELECT id, leaf, sealed_subject, leaf_index FROM access_records "
        "WHERE leaf_index > ? ORDER BY leaf_index LIMIT ?",
        (after_leaf, limit),
    ).fetchall()
    return [StoredRecord(*row) for row in rows]
