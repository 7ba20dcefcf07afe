"""Portal and auditor reads from a hot standby, with bounded staleness (docs/SCALING.md §1b).

``[storage] read_url`` names a read-only PostgreSQL (a streaming-replication hot
standby); ``[storage] read_max_lag_ms`` bounds how stale an answer it serves may be.
Only the reads of the portal and the auditor come here (a subject's records, a
record by id, checkpoints, leaves, tree nodes, a leaf's index by its hash);
issuance, translation, the sequencer and the watch scan stay on the primary.

* **Bounded staleness.** The standby's lag is ``now() - pg_last_xact_replay_timestamp()``
  on the standby (the sequencer's lease renewal commits every
  ``integrate_interval_ms``, so an idle primary still moves that timestamp). It is
  measured at most every ``period = min(250 ms, max_lag / 4)`` and the standby used
  only while ``lag + period <= max_lag``: no answer it gives is older than
  ``max_lag``. Otherwise the read goes to the primary.
* **Proofs against what the standby has.** Everything read here is append-only
  (records, once integrated; checkpoints; tree nodes), so whatever the standby has
  equals the primary's. A read the standby cannot answer in full (a node, leaf or
  checkpoint it has not replayed yet) is asked of the primary instead, and the
  latest checkpoint never goes backwards within a process: a standby checkpoint
  older than one this process already served is not used.
* **Failure.** An unreachable or failing standby never fails a call: the read goes
  to the primary, the standby is skipped for a period, and that is logged once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .pg_pools import RoleSettings
from .url import PgTarget

T = TypeVar("T")
Read = Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]
log = logging.getLogger("symbolsvc.registry")

_LAG_SQL = ("SELECT pg_is_in_recovery(), COALESCE(EXTRACT(EPOCH FROM "
            "clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000, 0)")
_SKIP_AFTER_FAILURE = 1.0  # seconds


class StandbyReads:
    """A pool on the standby and the freshness rule above."""

    def __init__(self, target: PgTarget, max_lag_ms: int, connect_kwargs: dict[str, Any],
                 wait: float) -> None:
        self.target = target
        self.max_lag_ms = max_lag_ms
        self.period = min(0.25, max_lag_ms / 4000)
        settings = dict(target.timeouts)
        self.pool = AsyncConnectionPool(
            target.conninfo, kwargs=connect_kwargs, min_size=0,
            max_size=max(1, target.pool_max), open=False, timeout=wait,
            configure=RoleSettings("standby", settings["read_timeout_ms"],
                                   settings["read_timeout_ms"],
                                   settings["idle_in_transaction_timeout_ms"]).apply,
            name="symbolsvc-standby", reconnect_timeout=24 * 3600)
        self._until = 0.0  # monotonic time until which the last verdict holds
        self._usable = False
        self._checking: asyncio.Future[bool] | None = None
        self._healthy = True
        self.floor = 0  # the largest checkpoint size this process has served
        self.served = 0  # reads answered by the standby (tests, benchmarks)

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def _fresh(self) -> bool:
        """Whether the standby may answer now (measured at most once per period)."""
        if time.monotonic() < self._until:
            return self._usable
        if self._checking is None:
            self._checking = asyncio.ensure_future(self._measure())
        checking = self._checking
        try:
            return await asyncio.shield(checking)
        finally:
            if checking.done() and self._checking is checking:
                self._checking = None

    async def _measure(self) -> bool:
        started = time.monotonic()
        try:
            async with self.pool.connection(timeout=self.period or 0.05) as conn:
                cur = await conn.execute(_LAG_SQL)
                row = await cur.fetchone()
        except Exception as exc:  # noqa: BLE001 - a failing standby never fails a call
            self._failed(exc)
            return False
        in_recovery, lag_ms = (bool(row[0]), float(row[1])) if row else (False, 0.0)
        # A promoted standby (not in recovery) is a primary of its own: never read it.
        self._usable = in_recovery and lag_ms + self.period * 1000 <= self.max_lag_ms
        self._until = started + self.period
        if not self._healthy:
            log.info("registry standby %s answering again", self.target.display)
            self._healthy = True
        return self._usable

    def _failed(self, exc: BaseException) -> None:
        if self._healthy:
            log.warning("registry standby %s unusable, reading from the primary: %s",
                        self.target.display, self.target.scrub(
                            (str(exc).strip() or type(exc).__name__).splitlines()[0]))
        self._healthy = False
        self._usable = False
        self._until = time.monotonic() + _SKIP_AFTER_FAILURE

    async def read(self, fn: Read[T], complete: Callable[[T], bool],
                   primary: Callable[[Read[T]], Awaitable[T]]) -> T:
        """``fn`` on the standby if it is fresh and its answer ``complete``, else on the
        primary (through ``primary``, the registry's own read)."""
        if await self._fresh():
            try:
                async with self.pool.connection(timeout=self.period or 0.05) as conn:
                    result = await fn(conn)
                if complete(result):
                    self.served += 1
                    return result
            except psycopg.OperationalError as exc:
                self._failed(exc)  # unreachable, or a statement cancelled: skip it a while
            except (psycopg.Error, PoolTimeout):
                pass  # busy, or a conflict with recovery (40001): this read goes to the primary
        return await primary(fn)
