"""Record ids for the PostgreSQL access-record queue, taken from its sequence ahead of use."""

from __future__ import annotations

from typing import Any

import psycopg

_NEXT_IDS = ("SELECT nextval(pg_get_serial_sequence('access_records', 'id')) "
             "FROM generate_series(1, %s)")


class IdPool:
    """Record ids taken from the sequence ahead of use, a block at a time (as a sequence's
    CACHE does), so that tagging a row over its id costs no round trip per append. Ids are
    unique whatever happens to the transaction (nextval is never rolled back); here, as
    before, they are not commit order (docs/ACCESS_LOG.md)."""

    BLOCK = 256

    def __init__(self) -> None:
        self._ids: list[int] = []

    async def take(self, conn: psycopg.AsyncConnection[Any], n: int) -> list[int]:
        while len(self._ids) < n:  # a loop: a concurrent lane may take ids meanwhile
            cur = await conn.execute(_NEXT_IDS, (max(n - len(self._ids), self.BLOCK),))
            self._ids.extend(sorted(int(row[0]) for row in await cur.fetchall()))
        out, self._ids = self._ids[:n], self._ids[n:]
        return out
