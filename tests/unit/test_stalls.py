"""Noticing stalls (symbolsvc/stalls.py): a held event loop is measured and logged with the
collector's share; every collection is timed by generation."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest
from prometheus_client import REGISTRY

from symbolsvc.stalls import WARN_S, GcTimer, watch_loop


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _long_lags() -> float:
    """Ticks more than 0.5 s late so far."""
    return (_sample("symbolsvc_event_loop_lag_seconds_count")
            - _sample("symbolsvc_event_loop_lag_seconds_bucket", le="0.5"))


def test_a_held_loop_is_measured_and_logged_once_a_minute_with_the_collectors_share(
        caplog: pytest.LogCaptureFixture) -> None:
    timer = GcTimer()
    long_before = _long_lags()

    async def hold_then_wait_for_the_tick(ticks: float) -> None:
        time.sleep(WARN_S + 0.05)  # hold the loop past the warning's threshold
        deadline = time.monotonic() + 10
        while _long_lags() < ticks and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        watcher = asyncio.create_task(watch_loop(timer, interval=0.01))
        await asyncio.sleep(0)  # the watcher's timer is now due in 10 ms
        await hold_then_wait_for_the_tick(long_before + 1)
        await hold_then_wait_for_the_tick(long_before + 2)  # within the minute: not logged
        watcher.cancel()

    with caplog.at_level(logging.WARNING, logger="symbolsvc.server"):
        asyncio.run(scenario())
    assert _long_lags() >= long_before + 2  # both held ticks measured
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert "the event loop ran" in lines[0] and "late" in lines[0]
    assert "garbage collection: 0.00 s of it" in lines[0]  # the timer was not installed


def test_every_collection_is_timed_by_generation() -> None:
    timer = GcTimer()
    before = _sample("symbolsvc_gc_pause_seconds_count", generation="2")
    timer.install()
    try:
        gc.collect(2)
    finally:
        timer.remove()
    assert _sample("symbolsvc_gc_pause_seconds_count", generation="2") == before + 1
    assert timer.total > 0
    assert timer not in gc.callbacks
