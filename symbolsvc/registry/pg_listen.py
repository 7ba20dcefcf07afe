"""Tree growth across replicas: PostgreSQL ``LISTEN``/``NOTIFY`` on one channel.

The integration transaction that grows the tree ends with ``pg_notify(CHANNEL, size)``
(:func:`.pg_sql.integrate`); PostgreSQL delivers it at COMMIT, and only if the
transaction commits, to every session listening. Each server process keeps ONE such
session (:func:`follow_growth`) and hands every size to its in-process notifier, which
wakes that process's watchers: a record integrated by replica A reaches a watcher on
replica B within one round trip, however many watchers B holds and whatever B's
sequencer interval. The session holds no transaction and costs the database nothing
while the log is idle.

A lost session is reopened with back-off; on every (re)connection the stored size is
read once after ``LISTEN``, so growth committed while it was away is not missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import psycopg

log = logging.getLogger("symbolsvc.registry")

CHANNEL = "symbolsvc_log_growth"
_BACKOFF_MAX_S = 30.0


async def follow_growth(conninfo: str, kwargs: dict[str, Any], display: str,
                        on_size: Callable[[int], None]) -> None:
    """Call ``on_size(tree_size)`` for every committed growth of the tree, forever (until
    cancelled). Never raises for a database outage: it waits and reconnects."""
    backoff = 0.5
    lost = False
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(
                conninfo, **{**kwargs, "autocommit": True,
                             "application_name": "symbolsvc-listen"})
        except psycopg.OperationalError:
            await asyncio.sleep(backoff)
            backoff = min(2 * backoff, _BACKOFF_MAX_S)
            continue
        try:
            await conn.execute(f"LISTEN {CHANNEL}")
            cur = await conn.execute("SELECT tree_size FROM log_state WHERE id = 1")
            row = await cur.fetchone()
            if row is not None:
                on_size(int(row[0]))
            if lost:
                log.info("tree growth notifications from %s resumed", display)
                lost = False
            backoff = 0.5
            async for note in conn.notifies():
                if note.payload.isascii() and note.payload.isdigit():
                    on_size(int(note.payload))
        except psycopg.Error:
            if not lost:
                log.warning("tree growth notifications from %s lost; reconnecting (watchers "
                            "fall back to the sequencer's reads meanwhile)", display)
                lost = True
        finally:
            await conn.close()
        await asyncio.sleep(backoff)
        backoff = min(2 * backoff, _BACKOFF_MAX_S)
