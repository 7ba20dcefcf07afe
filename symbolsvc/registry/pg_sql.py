"""The PostgreSQL registry's statements: coroutines of one connection.

:mod:`.postgres` runs each inside a transaction (writes, grouped by
:mod:`.pg_group`) or in autocommit (reads). Every statement stays within what
Citus, CockroachDB and YugabyteDB accept; only placeholders are ever spliced
into SQL text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import psycopg

from . import (
    Appended,
    BuildRecord,
    ExchangeTag,
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
    QueuedRow,
    StoredCheckpoint,
    StoredRecord,
    build_records,
    fallback_record,
    with_ids,
)
from .pg_ids import IdPool
from .pg_listen import CHANNEL as GROWTH_CHANNEL

T = TypeVar("T")

_CHUNK = 1000  # rows per multi-row statement (3-4 parameters a row, far below 65,535)


async def ping(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("SELECT 1")


async def probe_write(conn: psycopg.AsyncConnection[Any]) -> None:
    """About 1 MiB written to a temporary table in the database's default tablespace (each
    new page extends its file on disk), then rolled back: DiskFull while there is no room.
    Rows stay under the TOAST threshold, so nothing is compressed away."""
    await conn.execute("CREATE TEMP TABLE symbolsvc_probe (b text) ON COMMIT DROP")
    await conn.execute("INSERT INTO symbolsvc_probe SELECT repeat(md5(i::text), 56) "
                       "FROM generate_series(1, 600) AS i")
    raise ProbeDone


class ProbeDone(Exception):
    """Raised to roll :func:`probe_write` back once its writes have fitted."""


def values(n: int, width: int) -> str:
    row = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([row] * n)


def chunks(seq: Sequence[T], size: int = _CHUNK) -> list[Sequence[T]]:
    return [seq[i:i + size] for i in range(0, len(seq), size)]


async def issue(
    conn: psycopg.AsyncConnection[Any], rows: list[NewHolding],
    auth: QueueAuth | None = None, pool: IdPool | None = None,
) -> set[tuple[str, str]]:
    """Upsert the holdings (distinct keys, key order); append the ISSUE records of the
    new ones in the same transaction. Returns the new keys."""
    fresh: set[tuple[str, str]] = set()
    for chunk in chunks(rows):
        cur = await conn.execute(
            "INSERT INTO holdings (agency, symbol, sealed_subject) VALUES "  # noqa: S608 - placeholders only
            + values(len(chunk), 3)
            + " ON CONFLICT (agency, symbol) DO UPDATE SET released = false "
            "WHERE holdings.released RETURNING agency, symbol",
            [v for h in chunk for v in (h.agency, h.symbol, h.sealed_subject)],
        )
        fresh.update((a, s) for a, s in await cur.fetchall())
    await append_new(conn, [h.record for h in rows
                            if h.record is not None and (h.agency, h.symbol) in fresh],
                     auth, pool)
    return fresh


async def append_new(conn: psycopg.AsyncConnection[Any], records: Sequence[NewRecord],
                     auth: QueueAuth | None = None, pool: IdPool | None = None) -> None:
    """Append records that require no holding (ISSUE/RELEASE) with one COPY (as the
    integration writes tree nodes: several times faster than a multi-row INSERT, and
    accepted by CockroachDB, YugabyteDB and Citus alike), in pseudonym order: their ids
    then follow neither the holdings' key order nor their physical order. Each row is
    tagged by ``auth`` over its id and bytes (docs/QUEUE_AUTH.md)."""
    if not records:
        return
    ordered = sorted(records, key=lambda r: r.pseudonym)
    ids = await (pool or IdPool()).take(conn, len(ordered))
    async with conn.cursor() as cur, cur.copy(
            "COPY access_records (id, pseudonym, sealed_subject, leaf, mac, withheld_until_us) "
            "FROM STDIN") as copy:
        for rid, r in zip(ids, ordered, strict=True):
            mac = auth.tag(rid, r) if auth is not None else None
            await copy.write_row((rid, r.pseudonym, r.sealed_subject, r.leaf, mac,
                                  r.withheld_until_us))


async def release(conn: psycopg.AsyncConnection[Any], agency: str, symbol: str,
                  record: NewRecord | None, auth: QueueAuth | None = None,
                  pool: IdPool | None = None) -> bool | None:
    cur = await conn.execute(
        "UPDATE holdings SET released = true "
        "WHERE agency = %s AND symbol = %s AND NOT released RETURNING 1",
        (agency, symbol),
    )
    if await cur.fetchone() is not None:
        if record is not None:
            await append_new(conn, [record], auth, pool)
        return True
    cur = await conn.execute(
        "SELECT 1 FROM holdings WHERE agency = %s AND symbol = %s", (agency, symbol)
    )
    return False if await cur.fetchone() is not None else None


async def lookup(conn: psycopg.AsyncConnection[Any], agency: str, symbol: str) -> bytes | None:
    cur = await conn.execute(
        "SELECT sealed_subject FROM holdings WHERE agency = %s AND symbol = %s AND NOT released",
        (agency, symbol),
    )
    row = await cur.fetchone()
    return bytes(row[0]) if row else None


async def lookup_many(
    conn: psycopg.AsyncConnection[Any], keys: list[tuple[str, str]]
) -> dict[tuple[str, str], bytes]:
    found: dict[tuple[str, str], bytes] = {}
    for chunk in chunks(keys):
        cur = await conn.execute(
            "SELECT agency, symbol, sealed_subject FROM holdings "  # noqa: S608 - placeholders only
            "WHERE NOT released AND (agency, symbol) IN (" + values(len(chunk), 2) + ")",
            [v for key in chunk for v in key],
        )
        for agency, symbol, sealed in await cur.fetchall():
            found[(agency, symbol)] = bytes(sealed)
    return found


_COLUMNS = ("INSERT INTO access_records (id, pseudonym, sealed_subject, leaf, mac, "
            "withheld_until_us, exchange_key, exchange_digest) ")
# A record whose exchange key is taken is not inserted: the second insert of a key waits
# for the first's transaction and then does nothing (symbolsvc.exchanges).
_ON_TAKEN = " ON CONFLICT (exchange_key) DO NOTHING RETURNING id"
_INSERT_RECORD = _COLUMNS + "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)" + _ON_TAKEN
# The required holdings' rows are share-locked until COMMIT, so a concurrent release
# waits and no record is appended against a holding released before the record commits.
def _insert_record_if_live(n: int) -> str:
    """The insert of a record that needs ``n`` live holdings: one row only when all are."""
    tables = ", ".join(f"holdings h{i}" for i in range(n))
    where = " AND ".join(
        f"h{i}.agency = %s AND h{i}.symbol = %s AND NOT h{i}.released" for i in range(n))
    return (_COLUMNS + f"SELECT %s, %s, %s, %s, %s, %s::bigint, %s::bytea, %s::bytea "  # noqa: S608
            f"FROM {tables} WHERE {where} FOR SHARE" + _ON_TAKEN)


_INSERT_RECORD_IF_LIVE = {n: _insert_record_if_live(n) for n in (1, 2)}


async def _insert(
    conn: psycopg.AsyncConnection[Any], rows: list[tuple[NewRecord, ExchangeTag | None]],
    auth: QueueAuth | None, pool: IdPool | None,
) -> list[int | None]:
    """One pipelined insert per ``(record, exchange tag)``; per item its id or None. Each
    row's id is taken from the sequence first (through ``pool``), so ``auth`` can tag the
    row over its id and bytes (docs/QUEUE_AUTH.md) in the same insert."""
    ids = await (pool or IdPool()).take(conn, len(rows))
    cursors = []
    async with conn.pipeline():
        for rid, (r, x) in zip(ids, rows, strict=True):
            mac = auth.tag(rid, r) if auth is not None else None
            cur = conn.cursor()
            row = (rid, r.pseudonym, r.sealed_subject, r.leaf, mac, r.withheld_until_us,
                   None if x is None else x.key, None if x is None else x.digest)
            if not r.require:
                await cur.execute(_INSERT_RECORD, row)
            else:
                n = len(r.require)
                sql = _INSERT_RECORD_IF_LIVE.get(n) or _insert_record_if_live(n)
                await cur.execute(sql, (*row, *(v for key in r.require for v in key)))
            cursors.append(cur)
    out: list[int | None] = []
    for cur in cursors:
        found = await cur.fetchone()
        out.append(int(found[0]) if found else None)
    return out


async def append(
    conn: psycopg.AsyncConnection[Any], records: list[NewRecord], auth: QueueAuth | None = None,
    pool: IdPool | None = None,
) -> list[Placed]:
    """Append records (then, in the same transaction, the ``otherwise`` of those whose
    holdings were not live)."""
    ids = await _insert(conn, [(r, r.exchange) for r in records], auth, pool)
    out: list[Placed] = [None if i is None else (i, False) for i in ids]
    retry = [j for j, i in enumerate(ids) if i is None and records[j].otherwise is not None]
    if retry:
        others = [fallback_record(records[j]) for j in retry]
        again = await _insert(conn, [(o, o.exchange) for o in others if o is not None],
                              auth, pool)
        for j, i in zip(retry, again, strict=True):
            out[j] = None if i is None else (i, True)
    return out


async def prior_exchange(conn: psycopg.AsyncConnection[Any], key: bytes) -> PriorExchange | None:
    cur = await conn.execute(
        "SELECT exchange_digest, id, leaf FROM access_records WHERE exchange_key = %s", (key,))
    row = await cur.fetchone()
    return PriorExchange(bytes(row[0]), int(row[1]), bytes(row[2])) if row else None


async def append_for(
    conn: psycopg.AsyncConnection[Any], items: list[tuple[tuple[str, str], BuildRecord[T]]],
    auth: QueueAuth | None = None, pool: IdPool | None = None,
) -> list[Appended[T]]:
    """append_for_holdings in the group's transaction: read the holdings, build, append
    (the append re-checks and share-locks every required holding)."""
    found = await lookup_many(conn, sorted({key for key, _ in items}))
    results, records, slots = build_records(
        [build for _, build in items], [found.get(key) for key, _ in items])
    if records:
        with_ids(results, slots, await append(conn, records, auth, pool))
    return results


RECORD_COLUMNS = "SELECT id, leaf, sealed_subject, leaf_index FROM access_records "


async def select_records(
    conn: psycopg.AsyncConnection[Any], sql: Any, params: tuple[Any, ...]
) -> list[StoredRecord]:
    cur = await conn.execute(sql, params)
    return [StoredRecord(int(i), bytes(leaf), bytes(sealed), None if li is None else int(li))
            for i, leaf, sealed, li in await cur.fetchall()]


async def execute(conn: psycopg.AsyncConnection[Any], sql: Any, params: tuple[Any, ...]) -> None:
    await conn.execute(sql, params)


# -- the access log ---------------------------------------------------------------
# The lease is a row (holder, expiry) taken and renewed by a conditional UPDATE, the
# first statement of every integration transaction: the UPDATE row-locks the lease
# until COMMIT, so a second replica's integration waits on it and then re-evaluates
# its condition against the committed row (READ COMMITTED; under CockroachDB's
# SERIALIZABLE one of the two aborts and retries). A holder whose lease was taken
# over therefore writes nothing. Expiry is judged by the database's clock, the one
# clock all replicas share. No advisory locks.


def _opt(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


async def _db_now_us(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute(
        "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def _take_lease(conn: psycopg.AsyncConnection[Any], holder: str, lease_ms: int) -> bool:
    now = await _db_now_us(conn)
    expires = now + lease_ms * 1000
    await conn.execute(
        "INSERT INTO sequencer_lease (id, holder, expires_us) VALUES (1, %s, %s) "
        "ON CONFLICT (id) DO NOTHING", (holder, expires))
    cur = await conn.execute(
        "UPDATE sequencer_lease SET holder = %s, expires_us = %s "
        "WHERE id = 1 AND (holder = %s OR expires_us <= %s) RETURNING 1",
        (holder, expires, holder, now))
    return await cur.fetchone() is not None


async def _stored_size(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT tree_size FROM log_state WHERE id = 1")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def integrate(
    conn: psycopg.AsyncConnection[Any], batch: int, holder: str, lease_ms: int, plan_fn: PlanFn
) -> Integration:
    """One sequencer step inside one transaction: all of it commits, or none. Only I/O
    here: the lease, the reads, and applying the plan (symbolsvc.log.integrate)."""
    if not await _take_lease(conn, holder, lease_ms):
        return Integration(False, 0, await _stored_size(conn), None)
    cur = await conn.execute("SELECT tree_size, frontier FROM log_state WHERE id = 1")
    row = await cur.fetchone()
    state = None if row is None else LogState(int(row[0]), bytes(row[1]))
    cur = await conn.execute("SELECT MAX(tree_size) FROM checkpoints")
    top = await cur.fetchone()
    latest = None if top is None or top[0] is None else int(top[0])
    # Every record still unsequenced, lowest id first. Never "ids above the last one
    # integrated": ids are not commit order, and a late commit must not be skipped.
    cur = await conn.execute(
        "SELECT id, leaf, pseudonym, sealed_subject, mac, exchange_key, exchange_digest "
        "FROM access_records WHERE leaf_index IS NULL ORDER BY id LIMIT %s", (batch,))
    queued: list[QueuedRow] = [
        (int(i), bytes(leaf), bytes(p), bytes(s), _opt(m), _opt(xk), _opt(xd))
        for i, leaf, p, s, m, xk, xd in await cur.fetchall()]
    plan = plan_fn(IntegrationInput(state, latest, queued))
    if plan.quarantine:  # kept aside, never deleted silently (docs/QUEUE_AUTH.md)
        now = await _db_now_us(conn)
        for record_id, reason in plan.quarantine:
            await conn.execute(
                "INSERT INTO quarantined_records (id, pseudonym, sealed_subject, leaf, mac, "
                "reason, quarantined_us) SELECT id, pseudonym, sealed_subject, leaf, mac, %s, %s "
                "FROM access_records WHERE id = %s AND leaf_index IS NULL",
                (reason, now, record_id))
            await conn.execute(
                "DELETE FROM access_records WHERE id = %s AND leaf_index IS NULL", (record_id,))
    if plan.assign:
        updated = 0
        for chunk in chunks(plan.assign):
            # Leaf indices are consecutive in id order: one statement per 1,000 rows,
            # no VALUES list to plan. id = ANY(...) and array_position are accepted by
            # PostgreSQL, CockroachDB, YugabyteDB and Citus (pruned to id's shards).
            ids = [record_id for _, record_id in chunk]
            cur = await conn.execute(
                "UPDATE access_records SET leaf_index = %s + array_position(%s, id) - 1 "
                "WHERE id = ANY(%s) AND leaf_index IS NULL", (chunk[0][0], ids, ids))
            updated += cur.rowcount
        if updated != len(plan.assign):  # cannot happen under the lease; never half-apply
            raise RuntimeError("a record was integrated concurrently; integration rolled back")
        # COPY: several times faster than multi-row INSERTs here, and supported by
        # CockroachDB, YugabyteDB and Citus alike. A duplicate node fails the PK.
        async with conn.cursor() as cur, cur.copy(
                "COPY tree_nodes (level, idx, hash) FROM STDIN") as copy:
            for node in plan.nodes:
                await copy.write_row(node)
    if plan.state is not None:
        await conn.execute(
            "INSERT INTO log_state (id, tree_size, frontier) VALUES (1, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET tree_size = excluded.tree_size, "
            "frontier = excluded.frontier", (plan.state.tree_size, plan.state.frontier))
    note = None
    if plan.checkpoint is not None:
        size, note = plan.checkpoint
        await conn.execute(
            "INSERT INTO checkpoints (tree_size, note, signed_at_us) VALUES (%s, %s, %s)",
            (size, note, await _db_now_us(conn)))
    if plan.assign:  # every replica's watchers, at COMMIT and only if it commits
        await conn.execute("SELECT pg_notify(%s, %s)", (GROWTH_CHANNEL, str(plan.tree_size)))
    return Integration(True, len(plan.assign), plan.tree_size, note, len(plan.quarantine))


async def log_status(conn: psycopg.AsyncConnection[Any]) -> LogStatus:
    size = await _stored_size(conn)
    cur = await conn.execute(
        "SELECT (SELECT holder FROM sequencer_lease WHERE id = 1), "
        "(SELECT expires_us FROM sequencer_lease WHERE id = 1), "
        "(SELECT queued_us FROM access_records WHERE leaf_index IS NULL ORDER BY id LIMIT 1), "
        "(SELECT COUNT(*) FROM quarantined_records WHERE reviewed_us IS NULL)")
    row = await cur.fetchone()
    assert row is not None
    holder, expires, oldest, held = row
    return LogStatus(size, holder, int(expires or 0),
                     None if oldest is None else int(oldest), int(held))


async def leaf_index_by_hash(
    conn: psycopg.AsyncConnection[Any], hash_: bytes, tree_size: int
) -> int | None:
    cur = await conn.execute(
        "SELECT MIN(idx) FROM tree_nodes WHERE level = 0 AND hash = %s AND idx < %s",
        (hash_, tree_size))
    row = await cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])


async def get_nodes(
    conn: psycopg.AsyncConnection[Any], ids: list[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    found: dict[tuple[int, int], bytes] = {}
    for chunk in chunks(ids, 500):
        cur = await conn.execute(
            "SELECT level, idx, hash FROM tree_nodes "  # noqa: S608 - placeholders only
            "WHERE (level, idx) IN (" + values(len(chunk), 2) + ")",
            [v for node in chunk for v in node])
        for level, idx, h in await cur.fetchall():
            found[(int(level), int(idx))] = bytes(h)
    return found


async def checkpoint(
    conn: psycopg.AsyncConnection[Any], sql: Any, params: tuple[Any, ...]
) -> StoredCheckpoint | None:
    cur = await conn.execute(sql, params)
    row = await cur.fetchone()
    return StoredCheckpoint(int(row[0]), row[1], int(row[2])) if row else None
