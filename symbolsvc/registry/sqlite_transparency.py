"""The SQLite registry's tables behind the transparency features (docs/DISCLOSURE.md):
holdings' rows (live or released), withheld records, and the permission table versions
published with their POLICY records."""

from __future__ import annotations

import sqlite3

from . import HoldingRow, NewRecord, PublishedPolicy, QueueAuth, StoredRecord
from .sqlite_sql import append_merged


def holding_rows(conn: sqlite3.Connection, keys: list[tuple[str, str]]
                 ) -> list[HoldingRow | None]:
    out: list[HoldingRow | None] = []
    for agency, symbol in keys:
        row = conn.execute(
            "SELECT sealed_subject, released, moved FROM holdings WHERE agency = ? AND symbol = ?",
            (agency, symbol)).fetchone()
        out.append(None if row is None else HoldingRow(
            agency, symbol, row[0], bool(row[1]), bool(row[2])))
    return out


def withheld_for_subject(conn: sqlite3.Connection, pseudonym: bytes, now_us: int
                         ) -> tuple[int, int | None]:
    count, earliest = conn.execute(
        "SELECT count(*), MIN(withheld_until_us) FROM access_records "
        "WHERE pseudonym = ? AND withheld_until_us > ?", (pseudonym, now_us)).fetchone()
    return int(count), earliest


def withheld_due(conn: sqlite3.Connection, after: tuple[int, int], until_us: int, max_leaf: int,
                 limit: int) -> list[StoredRecord]:
    rows = conn.execute(
        "SELECT id, leaf, sealed_subject, leaf_index, withheld_until_us FROM access_records "
        "WHERE (withheld_until_us > ? OR (withheld_until_us = ? AND id > ?)) "
        "AND withheld_until_us <= ? AND leaf_index <= ? ORDER BY withheld_until_us, id LIMIT ?",
        (after[0], after[0], after[1], until_us, max_leaf, limit),
    ).fetchall()
    return [StoredRecord(*row) for row in rows]


def policy_version(conn: sqlite3.Connection, version: bytes) -> PublishedPolicy | None:
    row = conn.execute("SELECT record_id, loaded_at_us FROM policy_versions WHERE version = ?",
                       (version,)).fetchone()
    return None if row is None else PublishedPolicy(*row)


def publish_policy(conn: sqlite3.Connection, version: bytes, record: NewRecord,
                   loaded_at_us: int, auth: QueueAuth | None = None) -> PublishedPolicy:
    found = policy_version(conn, version)
    if found is not None:
        return found
    ((placed,),) = append_merged(conn, [[record]], auth)
    assert placed is not None  # a POLICY record requires no holding and no exchange key
    rid = placed[0]
    conn.execute("INSERT INTO policy_versions (version, record_id, loaded_at_us) "
                 "VALUES (?, ?, ?)", (version, rid, loaded_at_us))
    return PublishedPolicy(rid, loaded_at_us)
