"""Idle watches park with one follower per portal (symbolsvc/log/fanout.py): growth that
concerns other subjects resumes no parked watch; a leaf the portal may see wakes them all;
a parked watch never skips a leaf the follower has not scanned or one the portal may see.

In-process, one event loop, the real LogNotifier; the "store" is a list of leaves, each
visible to the portal or not. "Parked" is checked by construction: the follower has
scanned up to the new head (its scan function recorded it) and the park tasks are still
pending after the loop has run everything that was ready.
"""

from __future__ import annotations

import asyncio

from symbolsvc.log.fanout import PortalFollowers
from symbolsvc.log.sequencer import LogNotifier

POLL = 3600.0  # the safety poll never fires in these tests


class Log:
    """Leaves 0..n-1; ``visible[i]``: the portal may see leaf i."""

    def __init__(self, notifier: LogNotifier) -> None:
        self.visible: list[bool] = []
        self.notifier = notifier
        self.scanned_to = -1
        self.scans = 0

    def grow(self, *visible: bool) -> None:
        self.visible += visible
        self.notifier.advance(len(self.visible))

    async def scan(self, portal: str, after: int, size: int) -> tuple[list[int], list[bool]]:
        self.scans += 1
        leaves = list(range(after + 1, min(size, len(self.visible))))
        if leaves:
            self.scanned_to = leaves[-1]
        return leaves, [self.visible[i] for i in leaves]


async def settle(predicate: object = None, rounds: int = 100) -> None:
    """Let the loop run everything ready (and, if given, until ``predicate()``)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
        if predicate is not None and predicate():  # type: ignore[operator]
            return
    assert predicate is None, "condition never reached"


def test_other_subjects_growth_resumes_no_parked_watch_and_a_visible_leaf_wakes_all() -> None:
    async def run() -> None:
        notifier = LogNotifier()
        log = Log(notifier)
        log.grow(False, False)  # leaves 0, 1: the watches have read them
        followers = PortalFollowers(notifier, log.scan, POLL)
        far = asyncio.get_running_loop().time() + 3600  # no progress due
        parked = [asyncio.ensure_future(followers.park("p", 1, far)) for _ in range(200)]
        await settle()
        log.grow(False, False, False)  # leaves 2-4 about someone else
        await settle(lambda: log.scanned_to == 4)
        await settle()
        assert not any(t.done() for t in parked)  # nobody resumed
        scans = log.scans
        log.grow(False, True)  # leaf 6 is the portal's
        await settle(lambda: all(t.done() for t in parked))
        assert {t.result() for t in parked} == {(1, False)}  # each reads from its own cursor
        assert log.scans == scans + 1  # one scan for all 200
        notifier.close()
        await settle()

    asyncio.run(run())


def test_progress_adopts_only_what_the_follower_scanned_and_found_nothing_in() -> None:
    async def run() -> None:
        notifier = LogNotifier()
        log = Log(notifier)
        log.grow(False)
        followers = PortalFollowers(notifier, log.scan, POLL)
        far = asyncio.get_running_loop().time() + 3600
        first = asyncio.ensure_future(followers.park("p", 0, far))  # starts the follower
        await settle()
        log.grow(False, False)
        await settle(lambda: log.scanned_to == 2)
        # A watch at leaf 0 whose progress is due may skip to 2: the follower scanned 1-2
        # and found nothing the portal may see. One not yet due stays parked.
        assert await asyncio.wait_for(followers.park("p", 0, 0.0), 30) == (2, True)
        await settle()
        assert not first.done()
        # A leaf the portal may see: every parked watch reads from its own cursor.
        log.grow(True)
        assert await asyncio.wait_for(first, 30) == (0, False)
        # A watch parking behind a leaf the follower found visible is sent to read it.
        assert await asyncio.wait_for(followers.park("p", 2, far), 30) == (2, False)
        notifier.close()

    asyncio.run(run())


def test_shutdown_releases_every_parked_watch() -> None:
    async def run() -> None:
        notifier = LogNotifier()
        log = Log(notifier)
        followers = PortalFollowers(notifier, log.scan, POLL)
        far = asyncio.get_running_loop().time() + 3600
        parked = [asyncio.ensure_future(followers.park(p, -1, far)) for p in ("a", "b")]
        await settle()
        notifier.close()
        assert await asyncio.wait_for(asyncio.gather(*parked), 30) == [(-1, False)] * 2

    asyncio.run(run())
