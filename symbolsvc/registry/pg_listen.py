"""Tree growth across replicas: PostgreSQL ``LISTEN``/``NOTIFY`` on one channel.

The integration transaction that grows the tree ends with ``pg_notify(CHANNEL, size)``
(:func:`.pg_sql.integrate`); PostgreSQL delivers it at COMMIT, and only if the
transaction commits, to every session listening. Each server process keeps ONE such
session (:func:`follow_growth`); a notification makes it read the stored size (never
trusting the payload: any role that may connect may NOTIFY) and hand it to its
in-process notifier, which wakes that process's watchers: a record integrated by
replica A reaches a watcher on replica B within a round trip or two, however many
watchers B holds and whatever B's sequencer interval. The session holds no
transaction and costs the database nothing while the log is idle.

A lost session is reopened with back-off; on every (re)connection the stored size is
read once after ``LISTEN``, so growth committed while it was away is not missed. The
payload (the new size) is informative only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from ..errors import SymbolsvcError

log = logging.getLogger("symbolsvc.registry")

CHANNEL = "symbolsvc_log_growth"
_BACKOFF_MAX_S = 30.0


async def follow_growth(conninfo: str, kwargs: dict[str, Any], display: str,
                        read_size: Callable[[], Awaitable[int]],
                        on_size: Callable[[int], None]) -> None:
    """Call ``on_size(tree_size)`` after every committed growth of the tree, forever (until
    cancelled). Never raises for a database outage: it waits and reconnects.

    A notification is only a hint to read the stored size (``read_size``): anyone who may
    connect to the database may NOTIFY on any channel, so a forged payload must not
    become the size watchers trust. Hints that arrive while a read runs are folded into
    one more read, so a flood of them costs at most one read at a time."""
    hint = asyncio.Event()
    refresher = asyncio.ensure_future(_refresh(hint, read_size, on_size))
    try:
        await _listen(conninfo, kwargs, display, hint)
    finally:
        refresher.cancel()


async def _refresh(hint: asyncio.Event, read_size: Callable[[], Awaitable[int]],
                   on_size: Callable[[int], None]) -> None:
    while True:
        await hint.wait()
        hint.clear()
        try:
            on_size(await read_size())
        except SymbolsvcError:  # the store is away: the sequencer's reads report it
            await asyncio.sleep(1.0)


async def _listen(conninfo: str, kwargs: dict[str, Any], display: str,
                  hint: asyncio.Event) -> None:
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
            hint.set()  # growth committed while no session listened is not missed
            if lost:
                log.info("tree growth notifications from %s resumed", display)
                lost = False
            backoff = 0.5
            async for _ in conn.notifies():
                hint.set()
        except psycopg.Error:
            if not lost:
                log.warning("tree growth notifications from %s lost; reconnecting (watchers "
                            "fall back to the sequencer's reads meanwhile)", display)
                lost = True
        finally:
            await conn.close()
        await asyncio.sleep(backoff)
        backoff = min(2 * backoff, _BACKOFF_MAX_S)
