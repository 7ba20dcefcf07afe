"""PostgreSQL connections as bounded resources: a pool per role, timeouts per role.

One replica holds three pools (docs/HARDENING.md):

* **write** — issuance, releases, access records, the sequencer: ``ceil(pool_max / 2)``
  connections. Slow reads never take one, so they cannot starve issuance.
* **read** — lookups, listings, proofs: the other ``floor(pool_max / 2)`` (at least 1).
* **probe** — one connection for the health check, so a saturated pool is never
  mistaken for an unreachable database.

Every connection gets, per role, ``statement_timeout``, ``lock_timeout`` and
``idle_in_transaction_session_timeout`` (the last ends a transaction left open by a
paused replica, releasing its locks). URL parameters (all milliseconds) override the
defaults: ``read_timeout_ms`` (10000), ``write_timeout_ms`` (5000), ``lock_timeout_ms``
(2000) and ``idle_in_transaction_timeout_ms`` (10000).

Failures are told apart:

* no pooled connection within the wait while the pool is full of busy connections →
  ``RESOURCE_EXHAUSTED`` / ``STORAGE_SATURATED`` (the database is up; health stays SERVING);
* a statement or lock wait past its timeout → ``UNAVAILABLE`` / ``STORAGE_TIMEOUT``
  (the transaction rolled back: nothing changed; logged);
* no connection at all, or one lost → ``UNAVAILABLE`` / ``STORAGE_UNAVAILABLE`` (health
  NOT_SERVING until the probe answers again).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg_pool import AsyncConnectionPool

from ..errors import ResourceExhausted, Unavailable
from .url import TIMEOUT_PARAMS

log = logging.getLogger("symbolsvc.registry")

@dataclass(frozen=True)
class RoleSettings:
    """The session settings of one pool's connections."""

    role: str
    statement_timeout_ms: int
    lock_timeout_ms: int
    idle_in_transaction_ms: int

    async def apply(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Commits wait for the WAL flush; statements and lock waits are bounded."""
        for name, value in (("synchronous_commit", "on"),
                            ("statement_timeout", str(self.statement_timeout_ms)),
                            ("lock_timeout", str(self.lock_timeout_ms)),
                            ("idle_in_transaction_session_timeout",
                             str(self.idle_in_transaction_ms)),
                            ("application_name", f"symbolsvc-{self.role}")):
            try:
                await conn.execute(
                    "SELECT set_config(%s, %s, false)", (name, value))
            except (pgerrors.UndefinedObject, pgerrors.FeatureNotSupported,
                    pgerrors.InvalidParameterValue, pgerrors.CantChangeRuntimeParam):
                # Engines without a setting (CockroachDB: synchronous_commit) keep their own.
                pass


class Pools:
    """The write, read and probe pools of one replica."""

    def __init__(self, conninfo: str, connect_kwargs: dict[str, Any], pool_min: int,
                 pool_max: int, timeouts: tuple[tuple[str, int], ...], wait: float) -> None:
        t = dict(TIMEOUT_PARAMS) | dict(timeouts)
        write_max = max(1, (pool_max + 1) // 2)
        read_max = max(1, pool_max - write_max)
        self.write_max, self.read_max = write_max, read_max
        self._busy: dict[str | None, int] = {}
        self.write = self._pool(conninfo, connect_kwargs, "write", min(pool_min, write_max),
                                write_max, wait, RoleSettings(
                                    "write", t["write_timeout_ms"], t["lock_timeout_ms"],
                                    t["idle_in_transaction_timeout_ms"]))
        self.read = self._pool(conninfo, connect_kwargs, "read", min(pool_min, read_max),
                               read_max, wait, RoleSettings(
                                   "read", t["read_timeout_ms"], t["read_timeout_ms"],
                                   t["idle_in_transaction_timeout_ms"]))
        self.probe = self._pool(conninfo, connect_kwargs, "probe", 0, 1, wait, RoleSettings(
            "probe", 2_000, 1_000, 2_000))

    @staticmethod
    def _pool(conninfo: str, kwargs: dict[str, Any], role: str, min_size: int,
              max_size: int, wait: float, settings: RoleSettings) -> AsyncConnectionPool:
        return AsyncConnectionPool(
            conninfo, kwargs=kwargs, min_size=min_size, max_size=max_size, open=False,
            timeout=wait, configure=settings.apply, name=f"symbolsvc-{role}",
            reconnect_timeout=24 * 3600)  # keep trying through long outages

    @contextlib.asynccontextmanager
    async def connection(self, pool: AsyncConnectionPool, timeout: float
                         ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A connection of ``pool``, counted as busy while held (see :meth:`saturated`)."""
        async with pool.connection(timeout=timeout) as conn:
            self._busy[pool.name] = self._busy.get(pool.name, 0) + 1
            try:
                yield conn
            finally:
                self._busy[pool.name] -= 1

    def saturated(self, pool: AsyncConnectionPool) -> bool:
        """True when every connection the pool may have is held by a call: a wait that
        failed then failed because the pool is busy, not because the database is away
        (connections still being made do not count as busy)."""
        return self._busy.get(pool.name, 0) >= pool.max_size

    @property
    def all(self) -> tuple[AsyncConnectionPool, ...]:
        return (self.write, self.read, self.probe)

    async def open(self) -> None:
        for pool in self.all:
            await pool.open(wait=False)

    async def close(self) -> None:
        for pool in self.all:
            await pool.close()

    async def check(self) -> None:
        for pool in self.all:
            await pool.check()


def saturation_error(pool: AsyncConnectionPool) -> ResourceExhausted:
    log.warning("registry %s pool saturated: all %d connections busy; call refused",
                pool.name.removeprefix("symbolsvc-"), pool.max_size)
    return ResourceExhausted(
        "STORAGE_SATURATED",
        "every registry connection for this kind of call is busy; nothing was changed, "
        "retry with back-off (the database itself is up)")


def timeout_error(exc: BaseException, what: str, scrub: Callable[[str], str]) -> Unavailable:
    kind = "lock wait" if isinstance(exc, pgerrors.LockNotAvailable) else "statement"
    log.warning("registry %s exceeded its %s timeout and was rolled back: %s", what, kind,
                scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else kind))
    return Unavailable(
        "STORAGE_TIMEOUT",
        f"the registry {what} exceeded its {kind} timeout (the database is busy or a lock "
        "is held); nothing was changed, retry with back-off")


TIMEOUTS = (pgerrors.QueryCanceled, pgerrors.LockNotAvailable)

