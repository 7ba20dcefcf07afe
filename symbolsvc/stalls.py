"""Noticing stalls: how late the event loop runs, and how long the garbage collector pauses it.

Every call of a process runs on one event loop, so anything that holds the loop (a long
garbage collection, a slow callback, the GIL held by another thread) delays every call at
once, and callers see it as a burst of slow replies or, past their limits, of refusals.
Two measurements tell an operator whether that is happening and why:

- ``symbolsvc_event_loop_lag_seconds``: a timer due every :data:`INTERVAL_S` records how
  late it ran (the loop's lag; Node's ``nodejs_eventloop_lag_seconds`` is the same
  idea). A lag of :data:`WARN_S` or more is also logged as a WARNING, with how much of
  it the garbage collector took (at most one line a minute: a loop overloaded for an
  hour must not flood the log; the line says how many stalls it stands for).
- ``symbolsvc_gc_pause_seconds{generation}``: each collection's duration, measured with
  :data:`gc.callbacks` (the client library's ``python_gc_collections_total`` counts
  collections but does not time them).

Both cost a few microseconds per timer tick or collection, and are on only where metrics
are served (``metrics_listen``). The storage side's own durations are measured where
they happen (the writer's commits, checkpoints, the sequencer's integrations).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

from prometheus_client import Histogram

log = logging.getLogger("symbolsvc.server")

INTERVAL_S = 0.25
WARN_S = 1.0
WARN_EVERY_S = 60.0

LOOP_LAG = Histogram("symbolsvc_event_loop_lag_seconds", "How late the event loop ran a "
                     f"timer due every {INTERVAL_S} s.")
GC_PAUSE = Histogram("symbolsvc_gc_pause_seconds", "Duration of each garbage collection, "
                     "by generation.", ["generation"])


class GcTimer:
    """Times every collection (a :data:`gc.callbacks` pair); ``total`` sums the pauses.

    The callback only notes each duration; :meth:`flush` (the loop watcher, every tick)
    hands them to the histogram. The callback must not: a collection can start inside
    any allocation, including one made by prometheus_client while it holds a value's
    lock (in multiprocess mode one lock for every value), and that lock is not
    reentrant, so observing from the callback can deadlock the thread on itself (seen
    once: a ``--workers 2`` process that never answered)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._started = 0.0
        self._by_gen = [GC_PAUSE.labels(str(g)) for g in range(3)]
        self._pending: list[list[float]] = [[], [], []]

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        self.total += took
        self._pending[info["generation"]].append(took)

    def flush(self) -> None:
        """Observe the durations noted since the last flush (never from the callback)."""
        pending = self._pending  # a collection during the swap appends here: still seen
        self._pending = [[], [], []]
        for child, durations in zip(self._by_gen, pending, strict=True):
            for took in durations:
                child.observe(took)

    def install(self) -> None:
        gc.callbacks.append(self)

    def remove(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


async def watch_loop(gc_timer: GcTimer, interval: float = INTERVAL_S) -> None:
    """Measure the loop's lag every ``interval`` until cancelled (see the module doc)."""
    loop = asyncio.get_running_loop()
    warned_at, unlogged = -WARN_EVERY_S, 0
    while True:
        due = loop.time() + interval
        gc_before = gc_timer.total
        await asyncio.sleep(interval)
        now = loop.time()
        lag = max(0.0, now - due)
        LOOP_LAG.observe(lag)
        gc_timer.flush()
        if lag < WARN_S:
            continue
        if now - warned_at < WARN_EVERY_S:
            unlogged += 1
            continue
        log.warning("the event loop ran %.2f s late (garbage collection: %.2f s of it); "
                    "every call of this process waited (%d more such stalls not logged "
                    "since the last line)", lag, gc_timer.total - gc_before, unlogged)
        warned_at, unlogged = now, 0
