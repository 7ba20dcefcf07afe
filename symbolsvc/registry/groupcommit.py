"""Group commit: many requests' writes share one transaction and one fsync.

One writer thread owns the write connection. Callers on the event loop
submit a unit of work (a function of the connection) and await a future. The
thread takes every unit queued so far, runs them in one transaction, commits
(the fsync), and only then resolves the futures, so an acknowledged write is
durable. While one commit is on the disk the next group gathers, so the
number of fsyncs per second stays flat as concurrency grows while the writes
per fsync rise. The event loop never touches the disk.

Units submitted with :meth:`GroupCommitter.submit_merged` and the same
function are merged within a group into one call over all their items, so a
group of 64 single-row issues runs one multi-row statement rather than 64.
That matters beyond the statement count: sqlite3 releases the GIL around
every statement, and each time the writer must win it back from a busy event
loop (up to the 5 ms switch interval), so per-row statements stretch a group.
Merging reorders units within a group, which is safe: none of them has been
acknowledged, so any serial order is a valid one.

If a group fails, it is rolled back and its units are retried one transaction
each, so one bad unit fails alone.

**Adaptive gathering.** Under a closed loop of many callers, the callers of one
group get their replies together and come back together, a little after the next
commit has already started with the few that were early: groups stay small (~7 at
64 callers) and every unit pays a writer wake-up and a loop wake-up. So before
committing, the writer waits for about as many units as its previous group
carried (:data:`GATHER_FRACTION` of it), but never longer than its recent commit
time nor :data:`MAX_GATHER_S`, sleeping in slices of :data:`GATHER_SLICE_S`.
With one or two callers the previous group was one
or two units and the wait ends at once or after at most one commit's time; under
load groups grow until their callers' round trip, not the writer, sets the pace.
Nothing is acknowledged earlier or later than its own group's commit.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import Histogram

T = TypeVar("T")
ItemT = TypeVar("ItemT")
_STOP = object()
_SOLO = object()  # the item of a unit that is not merged
GATHER_FRACTION = 0.75
MAX_GATHER_S = 0.002
GATHER_SLICE_S = 0.0003
log = logging.getLogger("symbolsvc.registry")
COMMIT = Histogram("symbolsvc_storage_commit_seconds", "Duration of each group commit: its "
                   "transaction, the COMMIT and its fsync (PostgreSQL: with the round trips).")


class GroupCommitter:
    """A writer thread that commits queued units of work in groups."""

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        max_group: int = 4096,
        name: str = "registry-writer",
        adaptive: bool = True,
    ) -> None:
        self._connect = connect
        self._adaptive = adaptive
        self._last_group = 1
        self._commit_s = 0.0  # a moving average of recent commit times
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._max_group = max_group
        self.groups = 0  # commits made; read by metrics and benchmarks
        self.units = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def submit(self, fn: Callable[[Any], T]) -> asyncio.Future[T]:
        """Queue ``fn(conn)`` for the next group; the future resolves after its commit."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, fut, loop, _SOLO))
        return fut

    def submit_merged(
        self, fn: Callable[[Any, list[ItemT]], list[T]], item: ItemT
    ) -> asyncio.Future[T]:
        """Queue ``item`` for ``fn(conn, items)``, called once per group for all
        items queued with the same ``fn``; ``fn`` returns one result per item."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, fut, loop, item))
        return fut

    def close(self) -> None:
        """Commit everything queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the constructor
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        stopping = False
        while not stopping:
            group = self._gather()
            if _STOP in group:
                stopping = True
                group = [u for u in group if u is not _STOP]
            if group:
                started = time.monotonic()
                self._commit_group(conn, group)
                took = time.monotonic() - started
                COMMIT.observe(took)
                self._commit_s = 0.8 * self._commit_s + 0.2 * took
                self._last_group = len(group)
        conn.close()

    def _gather(self) -> list[Any]:
        """The next group: everything queued, and (adaptive) a short wait for about as
        many units as the previous group had, bounded by the recent commit time.

        The wait sleeps in slices and drains the queue after each, rather than
        blocking on the queue: a blocked writer would be woken (and take the GIL
        from the event loop) once per unit submitted, which costs more than it saves.
        """
        group = [self._queue.get()]
        self._drain(group)
        if not self._adaptive:
            return group
        want = min(self._max_group, math.ceil(self._last_group * GATHER_FRACTION))
        deadline = time.monotonic() + min(MAX_GATHER_S, self._commit_s)
        while len(group) < want and _STOP not in group:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            time.sleep(min(remaining, GATHER_SLICE_S))
            self._drain(group)
        return group

    def _drain(self, group: list[Any]) -> None:
        while len(group) < self._max_group:
            try:
                group.append(self._queue.get_nowait())
            except queue.Empty:
                return

    def _commit_group(self, conn: Any, group: list[Any]) -> None:
        try:
            results = self._transaction(conn, group)
            outcomes = [(True, r) for r in results]
        except Exception:  # noqa: BLE001 - isolate the failing unit below
            outcomes = []
            for unit in group:
                try:
                    outcomes.append((True, self._transaction(conn, [unit])[0]))
                except Exception as exc:  # noqa: BLE001 - delivered to the caller
                    outcomes.append((False, exc))
        self.groups += 1
        self.units += len(group)
        by_loop: dict[Any, list[Any]] = {}
        for (_, fut, loop, _), outcome in zip(group, outcomes, strict=True):
            by_loop.setdefault(loop, []).append((fut, outcome))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the loop closed; nobody is waiting
                log.warning("event loop closed before %d results were delivered", len(items))

    @staticmethod
    def _transaction(conn: Any, units: list[Any]) -> list[Any]:
        """Run the units in one transaction; merged units in one call per function."""
        results: list[Any] = [None] * len(units)
        merged: dict[Any, tuple[list[int], list[Any]]] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            for i, (fn, _, _, item) in enumerate(units):
                if item is _SOLO:
                    results[i] = fn(conn)
                else:
                    slots, items = merged.setdefault(fn, ([], []))
                    slots.append(i)
                    items.append(item)
            for fn, (slots, items) in merged.items():
                for i, r in zip(slots, fn(conn, items), strict=True):
                    results[i] = r
            conn.execute("COMMIT")
        except BaseException:
            # SQLite rolls back by itself on some errors (SQLITE_FULL): a ROLLBACK then
            # fails and would hide the error that matters.
            if getattr(conn, "in_transaction", True):
                conn.execute("ROLLBACK")
            raise
        return results


def _deliver(items: list[Any]) -> None:
    for fut, (ok, value) in items:
        if fut.cancelled():
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)
