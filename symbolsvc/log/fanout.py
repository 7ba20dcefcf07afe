"""One store read for many watchers: single-flight scans of the integrated log.

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
from typing import Generic, TypeVar

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
