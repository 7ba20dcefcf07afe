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
    Integration,
    IntegrationInput,
    LogState,
    LogStatus,
    NewRecord,
    Placed,
    PlanFn,
    PriorExchange,
    StoredCheckpoint,
    StoredRecord,
    build_records,
    with_ids,
)

T = TypeVar("T")

_CHUNK = 1000  # rows per multi-row statement (3-4 parameters a row, far below 65,535)


async def ping(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("SELECT 1")


def values(n: int, width: int) -> str:
    row = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([row] * n)


def chunks(seq: Sequence[T], size: int = _CHUNK) -> list[Sequence[T]]:
    return [seq[i:i + size] for i in range(0, len(seq), size)]


async def issue(
    conn: psycopg.AsyncConnection[Any], rows: list[tuple[str, str, bytes]]
) -> set[tuple[str, str]]:
    fresh: set[tuple[str, str]] = set()
    for chunk in chunks(rows):
        cur = await conn.execute(
            "INSERT INTO holdings (agency, symbol, sealed_subject) VALUES "  # noqa: S608 - placeholders only
            + values(len(chunk), 3)
            + " ON CONFLICT (agency, symbol) DO UPDATE SET released = false "
            "WHERE holdings.released RETURNING agency, symbol",
            [v for row in chunk for v in row],
        )
        fresh.update((a, s) for a, s in await cur.fetchall())
    return fresh


async def release(conn: psycopg.AsyncConnection[Any], agency: str, symbol: str) -> bool | None:
    cur = await conn.execute(
        "UPDATE holdings SET released = true "
        "WHERE agency = %s AND symbol = %s AND NOT released RETURNING 1",
        (agency, symbol),
    )
    if await cur.fetchone() is not None:
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


_COLUMNS = "INSERT INTO access_records (pseudonym, sealed_subject, leaf, exchange_key, " \
    "exchange_digest) "
# A record whose exchange key is taken is not inserted: the second insert of a key waits
# for the first's transaction and then does nothing (symbolsvc.exchanges).
_ON_TAKEN = " ON CONFLICT (exchange_key) DO NOTHING RETURNING id"
_INSERT_RECORD = _COLUMNS + "VALUES (%s, %s, %s, %s, %s)" + _ON_TAKEN
# The required holdings' rows are share-locked until COMMIT, so a concurrent release
# waits and no record is appended against a holding released before the record commits.
def _insert_record_if_live(n: int) -> str:
    """The insert of a record that needs ``n`` live holdings: one row only when all are."""
    tables = ", ".join(f"holdings h{i}" for i in range(n))
    where = " AND ".join(
        f"h{i}.agency = %s AND h{i}.symbol = %s AND NOT h{i}.released" for i in range(n))
    return (_COLUMNS + f"SELECT %s, %s, %s, %s, %s FROM {tables} WHERE {where} "  # noqa: S608
            "FOR SHARE" + _ON_TAKEN)


_INSERT_RECORD_IF_LIVE = {n: _insert_record_if_live(n) for n in (1, 2)}


async def _insert(conn: psycopg.AsyncConnection[Any], records: list[tuple[NewRecord, bytes | None,
                  bytes | None]]) -> list[int | None]:
    """One pipelined insert per ``(record, exchange key, digest)``; per item its id or None."""
    cursors = []
    async with conn.pipeline():
        for r, key, digest in records:
            cur = conn.cursor()
            if not r.require:
                await cur.execute(_INSERT_RECORD,
                                  (r.pseudonym, r.sealed_subject, r.leaf, key, digest))
            else:
                n = len(r.require)
                sql = _INSERT_RECORD_IF_LIVE.get(n) or _insert_record_if_live(n)
                await cur.execute(sql, (r.pseudonym, r.sealed_subject, r.leaf, key, digest,
                                        *(v for k in r.require for v in k)))
            cursors.append(cur)
    out: list[int | None] = []
    for cur in cursors:
        row = await cur.fetchone()
        out.append(int(row[0]) if row else None)
    return out


def _tag(r: NewRecord, rec: NewRecord) -> tuple[NewRecord, bytes | None, bytes | None]:
    x = r.exchange
    return (rec, None, None) if x is None else (rec, x.key, x.digest)


async def append(
    conn: psycopg.AsyncConnection[Any], records: list[NewRecord]
) -> list[Placed]:
    """Append records (then, in the same transaction, the ``otherwise`` of those whose
    holdings were not live)."""
    ids = await _insert(conn, [_tag(r, r) for r in records])
    out: list[Placed] = [None if i is None else (i, False) for i in ids]
    retry = [j for j, i in enumerate(ids) if i is None and records[j].otherwise is not None]
    if retry:
        again = await _insert(conn, [_tag(records[j], records[j].otherwise())  # type: ignore[misc]
                                     for j in retry])
        for j, i in zip(retry, again, strict=True):
            out[j] = None if i is None else (i, True)
    return out


async def prior_exchange(conn: psycopg.AsyncConnection[Any], key: bytes) -> PriorExchange | None:
    cur = await conn.execute(
        "SELECT exchange_digest, id, leaf FROM access_records WHERE exchange_key = %s", (key,))
    row = await cur.fetchone()
    return PriorExchange(bytes(row[0]), int(row[1]), bytes(row[2])) if row else None


async def append_for(
    conn: psycopg.AsyncConnection[Any], items: list[tuple[tuple[str, str], BuildRecord[T]]]
) -> list[Appended[T]]:
    """append_for_holdings in the group's transaction: read the holdings, build, append
    (the append re-checks and share-locks every required holding)."""
    found = await lookup_many(conn, sorted({key for key, _ in items}))
    results, records, slots = build_records(
        [build for _, build in items], [found.get(key) for key, _ in items])
    if records:
        with_ids(results, slots, await append(conn, records))
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
        "SELECT id, leaf FROM access_records WHERE leaf_index IS NULL ORDER BY id LIMIT %s",
        (batch,))
    queued = [(int(record_id), bytes(leaf)) for record_id, leaf in await cur.fetchall()]
    plan = plan_fn(IntegrationInput(state, latest, queued))
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
    return Integration(True, len(plan.assign), plan.tree_size, note)


async def log_status(conn: psycopg.AsyncConnection[Any]) -> LogStatus:
    size = await _stored_size(conn)
    cur = await conn.execute("SELECT holder, expires_us FROM sequencer_lease WHERE id = 1")
    row = await cur.fetchone()
    return LogStatus(size, row[0], int(row[1])) if row else LogStatus(size, None, 0)


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
