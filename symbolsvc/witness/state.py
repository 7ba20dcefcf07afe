"""The witness's memory: the latest cosigned checkpoint per log, and the evidence of
refusals (a SQLite file of its own; docs/WITNESS.md).

:meth:`WitnessState.advance` checks the stored size and writes the new checkpoint in
ONE ``BEGIN IMMEDIATE`` transaction (c2sp.org/tlog-witness: the check and the update
must be atomic, or two concurrent requests could roll the state back), and commits
(``synchronous=FULL``) before the cosignature is returned.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root_hash BLOB NOT NULL,
    note TEXT NOT NULL, updated_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS refusals (
    id INTEGER PRIMARY KEY, at_us INTEGER NOT NULL, origin TEXT NOT NULL,
    old_size INTEGER NOT NULL, reason TEXT NOT NULL, request TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Known:
    """What the witness last cosigned for a log (size 0 and no root: nothing yet)."""

    size: int
    root_hash: bytes | None


class WitnessState:
    """The state file; each call opens its own connection (safe from any thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with closing(self._connect()) as conn, conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def known(self, origin: str) -> Known:
        with closing(self._connect()) as conn:
            row = conn.execute("SELECT size, root_hash FROM logs WHERE origin = ?",
                               (origin,)).fetchone()
        return Known(0, None) if row is None else Known(int(row[0]), bytes(row[1]))

    def advance(self, origin: str, decide: Callable[[Known], tuple[int, bytes, str] | None]
                ) -> Known:
        """In one transaction: read the known state, call ``decide`` with it; if it
        returns ``(size, root, note)`` store that. Returns the state ``decide`` saw."""
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT size, root_hash FROM logs WHERE origin = ?",
                                   (origin,)).fetchone()
                known = Known(0, None) if row is None else Known(int(row[0]), bytes(row[1]))
                new = decide(known)
                if new is not None:
                    conn.execute(
                        "INSERT INTO logs (origin, size, root_hash, note, updated_us) "
                        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin) DO UPDATE SET "
                        "size = excluded.size, root_hash = excluded.root_hash, "
                        "note = excluded.note, updated_us = excluded.updated_us",
                        (origin, new[0], new[1], new[2], time.time_ns() // 1000))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return known

    def record_refusal(self, origin: str, old_size: int, reason: str, request: str) -> None:
        """Keep a validly signed request the witness refused: evidence of a fork."""
        with closing(self._connect()) as conn, conn:
            conn.execute("INSERT INTO refusals (at_us, origin, old_size, reason, request) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (time.time_ns() // 1000, origin, old_size, reason, request))

    def refusals(self, origin: str) -> list[tuple[int, str]]:
        """``(old size, reason)`` of every refusal kept for ``origin``, oldest first."""
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT old_size, reason FROM refusals WHERE origin = ? "
                                "ORDER BY id", (origin,)).fetchall()
        return [(int(r[0]), str(r[1])) for r in rows]
