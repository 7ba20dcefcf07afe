"""One store read for many watchers: single-flight scans of the integrated log, and
one follower per portal for its idle watches.

When the tree grows, :class:`~.sequencer.LogNotifier` wakes every watcher of
the process in the same event-loop turn, and watchers of one portal that are
caught up all ask the same question: "integrated records after leaf N, and
which of them the portal holds". Without sharing, 2,000 watchers cost 4,000
reads per integration and queue every other read of the registry behind them.
:class:`SharedScans` runs one fetch per distinct (portal, cursor, tree size)
and hands its result to every watcher that asked while it ran; a watcher that
is cancelled does not cancel the fetch the others wait for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class SharedScans(Generic[T]):
    def __init__(self, fetch: Callable[[str, int], Awaitable[T]]) -> None:
        self._fetch = fetch
        self._inflight: dict[Hashable, asyncio.Future[T]] = {}

    async def get(self, portal: str, after: int, size: int) -> T:
        return await self.share((portal, after, size), lambda: self._fetch(portal, after))

    async def share(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        """``fetch()``, or the result of the one already running for ``key``."""
        fut = self._inflight.get(key)
        if fut is None:
            fut = asyncio.ensure_future(fetch())
            self._inflight[key] = fut
            fut.add_done_callback(self._forget(key))
        return await asyncio.shield(fut)

    def _forget(self, key: Hashable) -> Callable[[asyncio.Future[T]], None]:
        def forget(_: asyncio.Future[T]) -> None:
            self._inflight.pop(key, None)

        return forget


class _Group:
    """The caught-up watchers of one portal and the scan that follows the tree for them."""

    def __init__(self, start: int) -> None:
        self.start = start  # every leaf after this one has been scanned by the group ...
        self.cursor = start  # ... up to this one
        self.last_hit = -1  # the last scanned leaf the portal may see
        self.members = 0
        self.task: asyncio.Task[None] | None = None
        self._hit = asyncio.Event()

    def wake(self) -> None:
        event, self._hit = self._hit, asyncio.Event()
        event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for a hit (or a wake-up for good); False after ``timeout``."""
        try:
            async with asyncio.timeout(timeout):  # a timer, not a task per waiter
                await self._hit.wait()
        except TimeoutError:
            return False
        return True


class Growth(Protocol):
    """What :class:`PortalFollowers` needs of the log notifier."""

    @property
    def size(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    async def wait_for_growth(self, beyond: int, timeout: float) -> None: ...


# A scan's result for the followers: the leaf indices scanned, in order, and for each
# whether the portal may see it.
Scan = Callable[[str, int, int], Awaitable[tuple[list[int], list[bool]]]]


class PortalFollowers:
    """Idle watches that cost nothing per watcher while the log grows.

    A watch that has caught up parks here with its cursor. ONE task per portal follows
    the tree for all of that portal's parked watches: when the notifier says the tree
    grew, it scans the new leaves once (through the shared scans) and wakes the parked
    watches only if a leaf is one the portal may see. Growth that concerns other
    subjects wakes nobody: with 2,000 idle watches, an integration resumes one
    coroutine instead of 2,000. A parked watch may adopt the group's cursor (skip the
    leaves the group found nothing in) when it wants to send progress; it never skips
    a leaf the group has not scanned or one the portal may see.
    """

    def __init__(self, growth: Growth, scan: Scan, poll_seconds: float) -> None:
        self._growth = growth
        self._scan = scan
        self._poll = poll_seconds
        self._groups: dict[str, _Group] = {}

    async def park(self, portal: str, after: int, progress_at: float) -> tuple[int, bool]:
        """Wait until the watch at ``after`` has something to read: returns ``(after,
        False)`` to scan from its own cursor (a leaf the portal may see, the follower
        stopped, shutdown), or ``(cursor, True)``: nothing the portal may see up to
        ``cursor``, reached once the loop's time passes ``progress_at`` (to send progress;
        the watch then parks again at ``cursor`` without reading the store)."""
        loop = asyncio.get_running_loop()
        group = self._groups.get(portal)
        if group is None:
            group = self._groups[portal] = _Group(after)
        if group.start > after:  # scanned from further on than this watch: on its own
            await self._growth.wait_for_growth(after + 1, self._poll)
            return after, False
        group.members += 1
        if group.task is None or group.task.done():
            group.task = asyncio.ensure_future(self._follow(portal, group))
        try:
            while not self._growth.closed:
                if group.last_hit > after:
                    return after, False
                due = progress_at - loop.time()
                if group.cursor > after and due <= 0:
                    return group.cursor, True
                # Wake when progress falls due (then, if the group has moved on, send it);
                # once due, for a hit, or after a poll interval. No store read per watch
                # while it waits: the follower does the reading.
                await group.wait(due if due > 0 else self._poll)
                if group.task.done():  # the group stopped (shutdown, a failed scan)
                    return after, False
                if due <= 0 and group.cursor <= after and group.last_hit <= after:
                    return after, False  # a quiet poll interval: the watch re-checks itself
                    # (withheld records may have fallen due meanwhile)
            return after, False
        finally:
            group.members -= 1
            if group.members == 0 and self._groups.get(portal) is group:
                del self._groups[portal]
                if group.task is not None:
                    group.task.cancel()

    async def _follow(self, portal: str, group: _Group) -> None:
        try:
            while not self._growth.closed:
                await self._growth.wait_for_growth(group.cursor + 1, self._poll)
                if self._growth.closed:
                    break
                size = self._growth.size
                leaves, visible = await self._scan(portal, group.cursor, size)
                if not leaves:  # the size ran ahead of the store: wait for more, not spin
                    await self._growth.wait_for_growth(size, self._poll)
                    continue
                hits = [leaf for leaf, seen in zip(leaves, visible, strict=True) if seen]
                group.cursor = leaves[-1]
                if hits:
                    group.last_hit = hits[-1]
                    group.wake()
        except Exception:  # noqa: BLE001, S110 - the store failed: each watcher now reads
            pass  # it itself and ends with the error's own status
        finally:
            # Shutdown, a failed scan, or no watcher left: whoever still waits re-checks
            # (and reads the store itself, meeting the error if there is one).
            if self._groups.get(portal) is group:
                del self._groups[portal]
            group.wake()
