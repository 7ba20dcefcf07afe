"""Holdings across symbol-key versions (docs/KEYS.md, "Rotation").

After ``symbolsvc keys rotate`` a subject an agency holds may have rows under
several versions: the holding's *current* row (``moved`` false) and, for each
older version the agency used, a *moved* row that keeps the agency's older
symbol working until that version is retired. Every write here touches all of
a holding's rows in one transaction, so their ``released`` flags stay in step:
a lookup of any of the symbols answers like the holding. The caller (the core)
derives the rows' symbols from the subject id; the database never links rows
of two agencies.

Both backends get the same methods through a mixin, so the backends' own
modules only name the mixin.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Move:
    """Issue ``holding`` (the current version's row: agency, symbol, sealed subject) and mark
    ``older`` (the same agency's symbols for the same subject under older accepted versions)
    as moved to it."""

    holding: Holding
    older: tuple[str, ...]
    revive: bool = True  # False (an upgrade): change nothing unless a row is live
    record: Any = None  # the holding's ISSUE record (a NewRecord), appended when it is new


@dataclass(frozen=True, slots=True)
class Holding:
    agency: str
    symbol: str
    sealed_subject: bytes


@dataclass(frozen=True, slots=True)
class VersionCount:
    key_version: int
    live: int  # holdings whose current row is at this version
    moved: int  # live rows kept for older symbols of holdings that moved on
    released: int  # ended holdings whose last row is at this version


class KeyVersionStore(Protocol):
    """What the core and ``symbolsvc keys`` need of a registry for key rotation."""

    async def issue_moving(self, moves: Sequence[Move]) -> list[bool]:
        """Issue current-version holdings and mark the listed older rows of the same
        holdings as moved (reviving them with the holding); per item True when the
        holding is new (no row of it was live; then a move with ``revive`` False
        changes nothing), in one durable transaction."""

    async def release_all(self, agency: str, symbols: Sequence[str], *,
                          record: Any = None) -> bool:
        """Release every listed row of one holding in one transaction; True if any was
        live. ``record`` (a RELEASE record) is appended exactly when one was."""

    async def key_version_counts(self) -> list[VersionCount]:
        """Per key version present in the registry: live, moved and released rows."""

    async def purge_key_version(self, version: int) -> int:
        """Delete the moved rows of ``version`` in one transaction, unless a holding still
        uses it: then nothing is deleted and minus the number of such holdings is returned."""


# -- SQLite: units run in the group-commit writer's transaction ------------------


def _plan(moves: list[Move], live: set[tuple[str, str]]
          ) -> tuple[list[bool], list[Move]]:
    """Per move whether the holding is new (none of its rows live, counting earlier moves of
    the same holding in this group as making it live), and the moves to apply."""
    fresh, apply = [], []
    seen: set[tuple[str, str]] = set()
    for m in moves:
        key = (m.holding.agency, m.holding.symbol)
        rows = [(m.holding.agency, s) for s in (m.holding.symbol, *m.older)]
        new = key not in seen and not any(r in live for r in rows)
        fresh.append(new)
        if m.revive or not new:
            apply.append(m)
            seen.add(key)
    return fresh, apply


_ROWS = 400  # holdings per statement (each move names a few rows; SQLite allows 32,766 vars)


def _sqlite_moves(conn: sqlite3.Connection, moves: list[Move],
                  append: Callable[[sqlite3.Connection, list[Any]], None]) -> list[bool]:
    """All of a group's moves in a few statements per chunk: read which rows are live, upsert
    the current rows, mark the older rows moved (and live)."""
    out: list[bool] = []
    for i in range(0, len(moves), _ROWS):
        chunk = moves[i:i + _ROWS]
        keys = [(m.holding.agency, s) for m in chunk for s in (m.holding.symbol, *m.older)]
        # A join on VALUES (not a row-value IN, which SQLite answers with a table scan).
        live = set(conn.execute(
            "SELECT h.agency, h.symbol FROM (VALUES "  # noqa: S608
            + ",".join(["(?, ?)"] * len(keys))
            + ") AS v JOIN holdings h ON h.agency = v.column1 AND h.symbol = v.column2"
            " WHERE h.released = 0",
            [v for k in keys for v in k],
        ).fetchall())
        fresh, apply = _plan(chunk, live)
        out.extend(fresh)
        if not apply:
            continue
        conn.execute(
            "INSERT INTO holdings (agency, symbol, sealed_subject) VALUES "  # noqa: S608
            + ",".join(["(?, ?, ?)"] * len(apply))
            + " ON CONFLICT (agency, symbol) DO UPDATE SET released = 0, moved = 0",
            [v for m in apply for v in (m.holding.agency, m.holding.symbol,
                                        m.holding.sealed_subject)],
        )
        older = [(m.holding.agency, s) for m in apply for s in m.older]
        if older:
            conn.executemany(
                "UPDATE holdings SET moved = 1, released = 0 WHERE agency = ? AND symbol = ?",
                older,
            )
        append(conn, _new_records(chunk, fresh))
    return out


def _new_records(moves: list[Move], fresh: list[bool]) -> list[Any]:
    """The ISSUE records of the moves that made a new holding (first of each key only)."""
    return [m.record for m, new in zip(moves, fresh, strict=True)
            if new and m.revive and m.record is not None]


def _sqlite_release_all(conn: sqlite3.Connection, agency: str, symbols: list[str],
                        records: list[Any],
                        append: Callable[[sqlite3.Connection, list[Any]], None]) -> bool:
    marks = ",".join("?" * len(symbols))
    cur = conn.execute(
        f"UPDATE holdings SET released = 1 WHERE agency = ? AND symbol IN ({marks}) "  # noqa: S608
        "AND released = 0",
        [agency, *symbols],
    )
    if cur.rowcount > 0:
        append(conn, records)
    return cur.rowcount > 0


_COUNTS = (
    "SELECT key_version, {live}, {moved}, {released} FROM holdings GROUP BY key_version "
    "ORDER BY key_version"
)


def _sqlite_counts(conn: sqlite3.Connection) -> list[VersionCount]:
    sql = _COUNTS.format(
        live="sum(released = 0 AND moved = 0)", moved="sum(released = 0 AND moved = 1)",
        released="sum(released = 1)",
    )
    return [VersionCount(*(int(x or 0) for x in row)) for row in conn.execute(sql)]


def _sqlite_purge(conn: sqlite3.Connection, version: int) -> int:
    live = conn.execute(
        "SELECT count(*) FROM holdings WHERE key_version = ? AND released = 0 AND moved = 0",
        (version,),
    ).fetchone()[0]
    if live:
        return -int(live)
    return conn.execute(
        "DELETE FROM holdings WHERE key_version = ? AND moved = 1", (version,)
    ).rowcount


class SqliteKeyVersions:
    """Mixin for :class:`~symbolsvc.registry.sqlite.SqliteRegistry`."""

    _write: Any
    _read: Any
    _append_new: Any  # (conn, records) -> None: the backend's append, in the transaction

    async def issue_moving(self, moves: Sequence[Move]) -> list[bool]:
        """Issue current-version holdings, moving older rows; per item True when new."""
        todo = list(moves)
        append = self._append_new
        return await self._write(lambda c: _sqlite_moves(c, todo, append)) if todo else []

    async def release_all(self, agency: str, symbols: Sequence[str], *,
                          record: Any = None) -> bool:
        """Release every row of one holding; True if any was live."""
        syms, records, append = list(symbols), [record] if record else [], self._append_new
        return await self._write(
            lambda c: _sqlite_release_all(c, agency, syms, records, append))

    async def key_version_counts(self) -> list[VersionCount]:
        return await self._read(_sqlite_counts)

    async def purge_key_version(self, version: int) -> int:
        """Delete the moved rows of ``version`` in one transaction, unless a holding still
        uses it: then nothing is deleted and minus the number of such holdings is returned."""
        return await self._write(lambda c: _sqlite_purge(c, version))


# -- PostgreSQL -----------------------------------------------------------------------


async def _pg_moves(conn: Any, moves: list[Move], append: Any) -> list[bool]:
    """As on SQLite: lock and read the group's rows (in key order, as every writer does),
    upsert the current rows, mark the older rows moved."""
    keys = sorted({(m.holding.agency, s) for m in moves for s in (m.holding.symbol, *m.older)})
    cur = await conn.execute(
        "SELECT agency, symbol, released FROM holdings WHERE (agency, symbol) IN "
        "(SELECT * FROM unnest(%s::text[], %s::text[])) ORDER BY agency, symbol FOR UPDATE",
        ([a for a, _ in keys], [s for _, s in keys]),
    )
    live = {(a, s) for a, s, released in await cur.fetchall() if not released}
    fresh, apply = _plan(moves, live)
    current = sorted({(m.holding.agency, m.holding.symbol): m.holding.sealed_subject
                      for m in apply}.items())
    if current:
        await conn.execute(
            "INSERT INTO holdings (agency, symbol, sealed_subject) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::bytea[]) "
            "ON CONFLICT (agency, symbol) DO UPDATE SET released = false, moved = false",
            ([a for (a, _), _ in current], [s for (_, s), _ in current],
             [sealed for _, sealed in current]),
        )
    older = sorted({(m.holding.agency, s) for m in apply for s in m.older})
    if older:
        await conn.execute(
            "UPDATE holdings SET moved = true, released = false WHERE (agency, symbol) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[]))",
            ([a for a, _ in older], [s for _, s in older]),
        )
    await append(conn, _new_records(moves, fresh))
    return fresh


async def _pg_release_all(conn: Any, agency: str, symbols: list[str],
                          records: list[Any], append: Any) -> bool:
    cur = await conn.execute(
        "UPDATE holdings SET released = true WHERE agency = %s AND symbol = ANY(%s) "
        "AND NOT released RETURNING 1",
        (agency, sorted(symbols)),
    )
    released = bool(await cur.fetchall())
    if released:
        await append(conn, records)
    return released


async def _pg_counts(conn: Any) -> list[VersionCount]:
    sql = _COUNTS.format(
        live="count(*) FILTER (WHERE NOT released AND NOT moved)",
        moved="count(*) FILTER (WHERE NOT released AND moved)",
        released="count(*) FILTER (WHERE released)",
    )
    cur = await conn.execute(sql)
    return [VersionCount(*(int(x or 0) for x in row)) for row in await cur.fetchall()]


async def _pg_purge(conn: Any, version: int) -> int:
    cur = await conn.execute(
        "SELECT count(*) FROM holdings WHERE key_version = %s AND NOT released AND NOT moved",
        (version,),
    )
    (live,) = await cur.fetchone()
    if live:
        return -int(live)
    cur = await conn.execute(
        "DELETE FROM holdings WHERE key_version = %s AND moved", (version,)
    )
    return int(cur.rowcount)


class PgKeyVersions:
    """Mixin for :class:`~symbolsvc.registry.postgres.PgRegistry`."""

    _write: Any
    _read: Any
    _group: Any
    _append_new: Any  # async (conn, records) -> None: the backend's append, in the transaction

    async def issue_moving(self, moves: Sequence[Move]) -> list[bool]:
        todo, append = list(moves), self._append_new
        return await self._group.submit(lambda c: _pg_moves(c, todo, append)) if todo else []

    async def release_all(self, agency: str, symbols: Sequence[str], *,
                          record: Any = None) -> bool:
        syms, records, append = list(symbols), [record] if record else [], self._append_new
        return await self._group.submit(
            lambda c: _pg_release_all(c, agency, syms, records, append))

    async def key_version_counts(self) -> list[VersionCount]:
        return await self._read(_pg_counts)

    async def purge_key_version(self, version: int) -> int:
        return await self._write(lambda c: _pg_purge(c, version))
