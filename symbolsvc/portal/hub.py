"""Live updates: ONE watch on the server, fanned out to the pages that are open.

The portal keeps a single ``WatchAccessRecords`` stream (the server streams every
record about any subject the portal holds) and hands each record to the queues
of the pages open on that record's symbol: a thousand open pages cost the
server one stream, and a page is never sent another person's record (records
are routed by the symbol the server labelled them with, never by anything the
browser says).

The watch starts at the beginning of the log each time the portal starts (the
cursor is opaque, and the portal keeps no state) and resumes from its last
cursor after a disconnect. Records older than the watch are not pushed: a page
already listed them when it was rendered. A subscriber's queue is bounded; a
page too slow to drain it misses that update until it reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable

import grpc

from .upstream import Upstream
from .views import RecordView

log = logging.getLogger("symbolsvc.portal")

QUEUE_BOUND = 256
RETRY_MAX_S = 5.0
FRESH_MARGIN_US = 60_000_000  # a record this much older than the watch counts as live


class Hub:
    def __init__(self, upstream: Upstream, clock: Callable[[], float] = time.time) -> None:
        self._upstream = upstream
        self._clock = clock
        self._subs: dict[str, set[asyncio.Queue[RecordView | None]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._cursor = ""
        self._since_us = 0

    def start(self) -> None:
        self._since_us = int(self._clock() * 1e6) - FRESH_MARGIN_US
        self._task = asyncio.create_task(self._run(), name="portal-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self, symbol: str) -> asyncio.Queue[RecordView | None]:
        q: asyncio.Queue[RecordView | None] = asyncio.Queue(QUEUE_BOUND)
        self._subs[symbol].add(q)
        return q

    def unsubscribe(self, symbol: str, q: asyncio.Queue[RecordView | None]) -> None:
        subs = self._subs.get(symbol)
        if subs is not None:
            subs.discard(q)
            if not subs:
                del self._subs[symbol]

    def _deliver(self, record: RecordView) -> None:
        if record.time_us < self._since_us:
            return  # history replayed at start: the pages listed it already
        for q in list(self._subs.get(record.subject_symbol, ())):
            try:
                q.put_nowait(record)
            except asyncio.QueueFull:
                pass  # a page this far behind shows the record on its next load

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async for cursor, record in self._upstream.watch(self._cursor):
                    self._cursor = cursor
                    delay = 0.5
                    if record is not None:
                        self._deliver(record)
            except grpc.aio.AioRpcError as err:
                log.warning("portal watch ended (%s); resuming", err.code().name)
            await asyncio.sleep(delay)  # back off between reconnects, not a wait for state
            delay = min(delay * 2, RETRY_MAX_S)
