"""Per-principal limits: concurrent calls, open streams, and an item rate (docs/ISOLATION.md).

One :class:`Limiter` per server process, consulted by the interceptor after
authentication and before any work. Each principal has three budgets, taken
from ``[limits]`` in config.toml (a default per role, overridable per
principal):

* ``concurrent_calls`` — unary and client-streaming calls in flight at once;
* ``streams`` — open server-streaming calls (watches) and bidirectional
  streams (bulk loads), which may stay open for a long time;
* ``rate`` / ``burst`` — a token bucket over *items* (one per unary call, one
  per number or translation of a batch or stream chunk).

A server-wide cap (``[server] max_concurrent_rpcs``) bounds the sum; health
calls are never counted against it, so probes answer while principals are at
their limits (a health ``Check`` is not counted at all; a health ``Watch``,
which stays open, counts as one of its principal's streams). Over a limit a
call fails with ``RESOURCE_EXHAUSTED`` and a ``google.rpc.RetryInfo`` detail
saying when to retry; it is counted in ``symbolsvc_limit_rejections_total``
and logged to the security log at most once per principal and limit per
interval (with the number not logged). Stream chunks are paced rather than
refused: a stream over its rate waits for tokens, and
HTTP/2 flow control pushes back on the client.

A refusal over ``concurrent_calls`` asks for a retry in 50 ms when it is the
principal's first in a second, and twice as long for each further one within a
second of the last (to 1 s, with jitter): a short burst is retried at once, but
while the server is stalled (the 30-minute soak saw one stall of about a second)
the typed client's five attempts spread over the stall instead of being spent in
its first 200 ms and surfacing as errors (docs/BENCHMARKS.md, "Soak, third look").
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import Counter

from .errors import ConfigError, SymbolsvcError

security_log = logging.getLogger("symbolsvc.security")

REJECTIONS = Counter(
    "symbolsvc_limit_rejections_total",
    "Calls refused with RESOURCE_EXHAUSTED by a per-principal or server-wide limit, by "
    "principal and limit", ["principal", "limit"])

HEALTH = "/grpc.health.v1.Health/"
LOG_INTERVAL_S = 10.0
"""At most one security-log event per principal and limit in this many seconds."""
CALLS_RETRY_S = 0.05
"""The pushback of a principal's first refusal over concurrent_calls in a second."""
CALLS_RETRY_MAX_S = 1.0
"""The longest (and gRFC A6's bound: the client's retry policy follows it up to 1 s)."""


class LimitExceeded(SymbolsvcError):
    """A per-principal or server-wide budget is spent; retry after ``retry_after`` seconds."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, reason: str, message: str, retry_after: float) -> None:
        super().__init__(reason, message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Budget:
    """One principal's budgets (see the module docstring)."""

    concurrent_calls: int
    streams: int
    rate: float
    burst: int


ROLE_DEFAULTS: Mapping[str, Budget] = {
    # An agency is one of thousands: a small share of a server (~1,000 unary calls/s,
    # ~7,500 batch items/s on the reference machine, docs/BENCHMARKS.md).
    "agency": Budget(concurrent_calls=16, streams=4, rate=1_000, burst=2_000),
    # The broker carries every exchange of the deployment.
    "broker": Budget(concurrent_calls=256, streams=8, rate=20_000, burst=20_000),
    # The portal follows people's logs: many watches, modest reads.
    "portal": Budget(concurrent_calls=64, streams=512, rate=2_000, burst=4_000),
    "auditor": Budget(concurrent_calls=8, streams=4, rate=2_000, burst=4_000),
}


@dataclass(frozen=True)
class LimitsConfig:
    """``[limits]``: budgets per role, overrides per principal, and stream bounds."""

    roles: Mapping[str, Budget]
    # name -> the keys it overrides (counts are ints, checked in parse_limits; rate may be a float)
    principals: Mapping[str, Mapping[str, Any]]
    stream_idle_seconds: float = 60.0
    stream_max_seconds: float = 3600.0
    watch_max_seconds: float = 1800.0

    def budget(self, name: str, roles: frozenset[str]) -> Budget:
        """The most generous of the principal's roles' budgets, with its own overrides."""
        candidates = [self.roles[r] for r in sorted(roles) if r in self.roles]
        base = (Budget(*(max(getattr(b, f.name) for b in candidates) for f in fields(Budget)))
                if candidates else ROLE_DEFAULTS["agency"])
        own = self.principals.get(name)
        if not own:
            return base
        return replace(base, **own)


def parse_limits(doc: object, path: Path) -> LimitsConfig:
    """Read ``[limits]`` (all optional) from config.toml's parsed document."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: [limits] must be a table")
    where = f"{path}: [limits]"
    names = {f.name for f in fields(Budget)}

    def number(table: dict, key: str, default: float, ctx: str) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{ctx} {key} must be a positive number")
        return value

    def overrides(table: object, ctx: str) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise ConfigError(f"{ctx} must be a table")
        unknown = set(table) - names
        if unknown:
            raise ConfigError(f"{ctx}: unknown keys {sorted(unknown)}")
        out = {k: number(table, k, 0, ctx) for k in table}
        for k in table.keys() - {"rate"}:  # counts are whole numbers; only the rate is not
            if not isinstance(table[k], int):
                raise ConfigError(f"{ctx} {k} must be a whole number")
        if out.get("burst", 1000) < 1000:
            raise ConfigError(f"{ctx} burst must be at least 1000 (one full batch)")
        return out

    def sub(key: str) -> dict:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{where} {key} must be a table")
        return value

    unknown = set(doc) - {"roles", "principals", "stream_idle_seconds", "stream_max_seconds",
                          "watch_max_seconds"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    roles = dict(ROLE_DEFAULTS)
    for role, table in sub("roles").items():
        if role not in ROLE_DEFAULTS:
            raise ConfigError(f"{where}.roles: unknown role {role!r}")
        o = overrides(table, f"{where}.roles.{role}")
        roles[role] = replace(ROLE_DEFAULTS[role], **o)
    principals = {name: overrides(table, f"{where}.principals.{name}")
                  for name, table in sub("principals").items()}
    return LimitsConfig(
        roles=roles, principals=principals,
        stream_idle_seconds=number(doc, "stream_idle_seconds", 60.0, where),
        stream_max_seconds=number(doc, "stream_max_seconds", 3600.0, where),
        watch_max_seconds=number(doc, "watch_max_seconds", 1800.0, where),
    )


class _Bucket:
    """A token bucket that may go into debt: a request is admitted while the bucket holds
    at least one token and pays its full item count, so a 1,000-item batch is never starved
    by a rate below 1,000/s; the debt delays the next admission."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens: float = burst
        self.stamp = time.monotonic()

    def _refill(self) -> float:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return self.tokens

    def take(self, items: int) -> float:
        """Take ``items``; 0.0 when admitted, else the seconds until the bucket refills."""
        if self._refill() < 1:
            return (1 - self.tokens) / self.rate
        self.tokens -= items
        return 0.0


class _State:
    __slots__ = ("bucket", "budget", "calls", "refused_at", "streak", "streams")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.calls = 0
        self.streams = 0
        self.bucket = _Bucket(budget.rate, budget.burst)
        self.refused_at = -1.0  # the last refusal over concurrent_calls (monotonic)
        self.streak = 0  # refusals over concurrent_calls, each within 1 s of the last

    def calls_retry_after(self) -> float:
        """The pushback for a refusal over concurrent_calls now: doubling with each
        refusal within a second of the last, capped, and jittered so that the callers
        refused together do not all come back together."""
        now = time.monotonic()
        self.streak = self.streak + 1 if now - self.refused_at < 1.0 else 0
        self.refused_at = now
        delay = min(CALLS_RETRY_MAX_S, CALLS_RETRY_S * 2 ** min(self.streak, 5))
        return delay * (0.5 + random.random() / 2)  # jitter, not a secret


class Lease:
    """One admitted call's hold on its principal's budget; :meth:`release` once."""

    __slots__ = ("_counted", "_limiter", "_state", "_stream")

    def __init__(self, limiter: Limiter, state: _State, stream: bool, counted: bool) -> None:
        self._limiter, self._state, self._stream = limiter, state, stream
        self._counted = counted

    def release(self) -> None:
        if self._state is None:
            return
        if self._stream:
            self._state.streams -= 1
        else:
            self._state.calls -= 1
        self._limiter.in_flight -= self._counted
        self._state = None  # type: ignore[assignment]


class Limiter:
    """Admission control for one server process (one event loop: no locks needed)."""

    def __init__(self, config: LimitsConfig, server_max: int) -> None:
        self.config = config
        self.server_max = server_max
        self.in_flight = 0
        self._states: dict[str, _State] = {}
        self._logged: dict[tuple[str, str], tuple[float, int]] = {}

    def _state(self, name: str, roles: frozenset[str]) -> _State:
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = _State(self.config.budget(name, roles))
        return state

    def admit(self, name: str, roles: frozenset[str], method: str, *, stream: bool,
              items: int) -> Lease:
        """Admit one call or raise :class:`LimitExceeded` (counted and logged). Health
        watches count against their principal only, never against the server-wide cap."""
        state = self._state(name, roles)
        b = state.budget
        counted = not method.startswith(HEALTH)
        if counted and self.in_flight >= self.server_max:
            self._reject(name, method, "server_calls", 1.0,
                         f"the server is at its limit of {self.server_max} calls in flight")
        if stream and state.streams >= b.streams:
            self._reject(name, method, "streams", 5.0,
                         f"principal {name!r} has {b.streams} streams open, its limit; close "
                         "one before opening another")
        if not stream and state.calls >= b.concurrent_calls:
            self._reject(name, method, "concurrent_calls", state.calls_retry_after(),
                         f"principal {name!r} has {b.concurrent_calls} calls in flight, its "
                         "limit; wait for replies before sending more")
        wait = state.bucket.take(items)
        if wait:
            self._reject(name, method, "rate", wait,
                         f"principal {name!r} is over its rate of {b.rate:g} items/s")
        if stream:
            state.streams += 1
        else:
            state.calls += 1
        self.in_flight += counted
        return Lease(self, state, stream, counted)

    async def pace(self, name: str, roles: frozenset[str], items: int) -> None:
        """Charge a stream chunk's items, waiting (not failing) while over the rate."""
        bucket = self._state(name, roles).bucket
        while wait := bucket.take(items):
            await asyncio.sleep(wait)

    def _reject(self, name: str, method: str, limit: str, retry_after: float,
                message: str) -> None:
        REJECTIONS.labels(name, limit).inc()
        now = time.monotonic()
        key = (name, limit)
        last, suppressed = self._logged.get(key, (-LOG_INTERVAL_S, 0))
        if now - last >= LOG_INTERVAL_S:
            security_log.warning(
                "call refused: over a limit",
                extra={"event": "limit_exceeded", "principal": name, "limit": limit,
                       "method": method, "suppressed_since_last": suppressed})
            self._logged[key] = (now, 0)
        else:
            self._logged[key] = (last, suppressed + 1)
        raise LimitExceeded(f"{limit.upper()}_LIMIT", message + f"; retry in {retry_after:.2f} s",
                            retry_after)

