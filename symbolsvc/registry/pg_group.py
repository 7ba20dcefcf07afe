"""Group commit for the PostgreSQL registry: several callers' writes in one transaction."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg

from ..errors import SymbolsvcError
from .groupcommit import COMMIT

T = TypeVar("T")
Unit = Callable[[psycopg.AsyncConnection[Any]], Awaitable[Any]]
WriteFn = Callable[[Unit], Awaitable[Any]]


class GroupWriter:
    """Group commit across concurrent calls: up to ``lanes`` transactions in flight, each
    carrying every unit of work queued when it began (at most ``max_group``).

    PostgreSQL already shares WAL flushes between concurrent commits; this also shares
    the BEGIN/COMMIT round trips and the flush wait, which is what bounds a replica's
    write rate when each commit waits a few milliseconds for the disk. If a group
    fails for a reason other than the connection, its units are retried one
    transaction each, so a bad unit fails alone.
    """

    def __init__(self, write: WriteFn, lanes: int, max_group: int = 256) -> None:
        self._write = write
        self._queue: list[tuple[Any, asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._lanes = asyncio.Semaphore(lanes)
        self._max_group = max_group
        self.groups = 0
        self.units = 0

    async def submit(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((fn, fut))
        if len(self._queue) == 1:
            self._spawn()
        return await fut

    def _spawn(self) -> None:
        task = asyncio.get_running_loop().create_task(self._drain())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        async with self._lanes:
            group, self._queue = self._queue[:self._max_group], self._queue[self._max_group:]
            if self._queue:
                self._spawn()
            if not group:
                return
            fns = [fn for fn, _ in group]
            started = time.perf_counter()
            try:
                outcomes: list[tuple[bool, Any]] = [
                    (True, r) for r in await self._write(lambda c: _run_all(c, fns))]
                COMMIT.observe(time.perf_counter() - started)
            except SymbolsvcError as exc:  # storage down, saturated or timed out: all fail
                outcomes = [(False, exc)] * len(group)
            except Exception:  # noqa: BLE001 - isolate the failing unit below
                outcomes = []
                for fn in fns:
                    try:
                        outcomes.append((True, await self._write(fn)))
                    except Exception as exc:  # noqa: BLE001 - delivered to the caller
                        outcomes.append((False, exc))
            self.groups += 1
            self.units += len(group)
            for (_, fut), (ok, value) in zip(group, outcomes, strict=True):
                if fut.cancelled():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)


async def _run_all(conn: psycopg.AsyncConnection[Any], fns: list[Any]) -> list[Any]:
    return [await fn(conn) for fn in fns]
