"""The PostgreSQL registry's tables behind the transparency features (docs/DISCLOSURE.md):
holdings' rows (live or released), withheld records, and the permission table versions
published with their POLICY records."""

from __future__ import annotations

from typing import Any

import psycopg

from . import HoldingRow, NewRecord, PublishedPolicy, QueueAuth, StoredRecord
from .pg_ids import IdPool
from .pg_sql import append, chunks, values


async def holding_rows(conn: psycopg.AsyncConnection[Any], keys: list[tuple[str, str]]
                       ) -> list[HoldingRow | None]:
    found: dict[tuple[str, str], HoldingRow] = {}
    for chunk in chunks(keys):
        cur = await conn.execute(
            "SELECT agency, symbol, sealed_subject, released, moved FROM holdings "  # noqa: S608
            "WHERE (agency, symbol) IN (" + values(len(chunk), 2) + ")",
            [v for key in chunk for v in key])
        for a, s, sealed, released, moved in await cur.fetchall():
            found[(a, s)] = HoldingRow(a, s, bytes(sealed), bool(released), bool(moved))
    return [found.get(key) for key in keys]


async def withheld_for_subject(conn: psycopg.AsyncConnection[Any], pseudonym: bytes,
                               now_us: int) -> tuple[int, int | None]:
    cur = await conn.execute(
        "SELECT count(*), MIN(withheld_until_us) FROM access_records "
        "WHERE pseudonym = %s AND withheld_until_us > %s", (pseudonym, now_us))
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), None if row[1] is None else int(row[1])


async def withheld_due(conn: psycopg.AsyncConnection[Any], after: tuple[int, int], until_us: int,
                       max_leaf: int, limit: int) -> list[StoredRecord]:
    cur = await conn.execute(
        "SELECT id, leaf, sealed_subject, leaf_index, withheld_until_us FROM access_records "
        "WHERE (withheld_until_us > %s OR (withheld_until_us = %s AND id > %s)) "
        "AND withheld_until_us <= %s AND leaf_index <= %s ORDER BY withheld_until_us, id "
        "LIMIT %s", (after[0], after[0], after[1], until_us, max_leaf, limit))
    return [StoredRecord(int(i), bytes(leaf), bytes(sealed), int(li), int(wu))
            for i, leaf, sealed, li, wu in await cur.fetchall()]


async def policy_version(conn: psycopg.AsyncConnection[Any], version: bytes
                         ) -> PublishedPolicy | None:
    cur = await conn.execute(
        "SELECT record_id, loaded_at_us FROM policy_versions WHERE version = %s", (version,))
    row = await cur.fetchone()
    return None if row is None else PublishedPolicy(int(row[0]), int(row[1]))


async def publish_policy(conn: psycopg.AsyncConnection[Any], version: bytes,
                         record: NewRecord, loaded_at_us: int, auth: QueueAuth | None = None,
                         pool: IdPool | None = None) -> PublishedPolicy:
    """Register the version (first publisher wins: a concurrent second one finds the row
    and appends nothing) and append its POLICY record, in the caller's transaction."""
    cur = await conn.execute(
        "INSERT INTO policy_versions (version, record_id, loaded_at_us) VALUES (%s, 0, %s) "
        "ON CONFLICT (version) DO NOTHING RETURNING 1", (version, loaded_at_us))
    if await cur.fetchone() is None:
        found = await policy_version(conn, version)
        assert found is not None
        return found
    (placed,) = await append(conn, [record], auth, pool)
    assert placed is not None  # a POLICY record requires no holding and no exchange key
    rid = placed[0]
    await conn.execute("UPDATE policy_versions SET record_id = %s WHERE version = %s",
                       (rid, version))
    return PublishedPolicy(rid, loaded_at_us)
