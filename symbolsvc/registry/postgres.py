"""The production registry: PostgreSQL (or Citus, CockroachDB, YugabyteDB) via psycopg 3.

Same interface and semantics as :mod:`.sqlite`, proven by the same conformance
suite (tests/registry). Differences that matter:

* **Many writers.** Several symbolsvc replicas share one database. Issuance is
  ``INSERT ... ON CONFLICT (agency, symbol) DO UPDATE SET released = false
  WHERE holdings.released RETURNING agency, symbol``: a row comes back exactly
  when the holding is new or re-created, so two replicas issuing the same
  symbol at once get one holding, one ``newly_registered = True``. (Not
  ``RETURNING (xmax = 0)``, which is PostgreSQL-internal; CockroachDB and
  YugabyteDB accept this form.) Rows are sorted by key before writing so
  concurrent multi-row writes lock in one order; serialization failures and
  deadlocks (SQLSTATE 40001/40P01, routine on CockroachDB) are retried.
* **Durability.** Every connection runs with ``synchronous_commit = on`` (set
  explicitly, whatever the server default), so ``COMMIT`` returns after the WAL
  is flushed; PostgreSQL's own group commit shares flushes between the
  replicas' concurrent transactions.
* **Outages** become ``UNAVAILABLE`` (rolled back, nothing changed; a connection lost
  during ``COMMIT`` leaves the outcome unknown; retrying an issue is idempotent).
* **Secrets.** The password goes to libpq apart from the URL; messages are scrubbed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import ConfigError, ResourceExhausted, Unavailable
from . import (
    Appended,
    BuildRecord,
    HoldingRow,
    Integration,
    LogStatus,
    NewHolding,
    NewRecord,
    PlanFn,
    PriorExchange,
    PublishedPolicy,
    QueueAuth,
    StoredCheckpoint,
    StoredRecord,
    ids_of,
)
from . import pg_sql as sql
from . import pg_transparency as views
from .keyversions import PgKeyVersions
from .migrations import pg_version, require_current
from .pg_group import GroupWriter
from .pg_listen import follow_growth
from .pg_pools import TIMEOUTS, Pools, saturation_error, timeout_error
from .pg_standby import StandbyReads
from .url import PgTarget

T = TypeVar("T")
log = logging.getLogger("symbolsvc.registry")

_RETRIES = 6
_MAX_ID = 2**63 - 1
_OUTAGE_WAIT = 0.25  # seconds


class PgRegistry(PgKeyVersions):
    """:class:`symbolsvc.registry.Registry` on PostgreSQL through a psycopg connection pool."""

    def __init__(self, target: PgTarget | str, *, timeout: float = 5.0,
                 connect_timeout: int = 3, standby: PgTarget | None = None,
                 standby_max_lag_ms: int = 1000) -> None:
        self.target = PgTarget.parse(target) if isinstance(target, str) else target
        kwargs = self._connect_kwargs = _kwargs(self.target, connect_timeout)
        # The pool logs every failed reconnection attempt; the registry logs the outage
        # once and the health monitor its end.
        logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
        self._pools = Pools(self.target.conninfo, kwargs, self.target.pool_min,
                            self.target.pool_max, self.target.timeouts, timeout)
        self._timeout = timeout
        self._opened = False
        self._open_lock: asyncio.Lock | None = None
        self._available = True
        self._group = GroupWriter(self._write, lanes=self._pools.write_max)
        # Portal and auditor reads from a hot standby, if configured (.pg_standby).
        self.standby = None if standby is None else StandbyReads(
            standby, standby_max_lag_ms, _kwargs(standby, connect_timeout), timeout)
        self.transactions = 0  # committed write transactions; read by benchmarks
        self.queue_auth = QueueAuth()  # tags appended rows (set by the server)
        self._ids = sql.IdPool()  # record ids fetched a block at a time
        # "STORAGE_FULL" from the last write that found no room until a 1 MiB probe write
        # fits again (health is NOT_SERVING meanwhile: server._writes_fit); a small write
        # that still fits in a half-empty page does not end it.
        self.write_failure: str | None = None

    # -- lifecycle -------------------------------------------------------------

    def check_schema(self) -> None:
        """Raise ConfigError unless the database holds the schema version this code knows."""
        with connect_sync(self.target) as conn:
            require_current(pg_version(conn), "postgres", self.target.display)

    async def _ensure_open(self) -> None:
        if self._opened:
            return
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                await self._pools.open()
                if self.standby is not None:
                    await self.standby.open()
                self._opened = True

    async def close(self) -> None:
        if self._opened:
            await self._pools.close()
            if self.standby is not None:
                await self.standby.close()
            self._opened = False

    async def ping(self) -> None:
        """Round trip to the database; after an outage, also replace dead pooled connections."""
        await self._ensure_open()
        if not self._available:
            await self._pools.check()
        await self._read(sql.ping, self._pools.probe)
        if not self._available:
            log.info("registry database %s reachable again", self.target.display)
            self._available = True

    # -- transactions ----------------------------------------------------------

    def _wait(self) -> float:
        """How long a call waits for a pooled connection: briefly during a known outage,
        so calls fail fast with UNAVAILABLE instead of piling up."""
        return self._timeout if self._available else _OUTAGE_WAIT

    def _unavailable(self, exc: BaseException, what: str) -> Unavailable:
        if self._available:
            log.warning("registry database %s unavailable (%s): %s", self.target.display, what,
                        self.target.scrub(_first_line(exc)))
        self._available = False
        # Ids taken ahead from a server now gone may never have reached the standby that
        # replaces it (the sequence's advance is durable only with a later commit): drop them.
        self._ids = sql.IdPool()
        return Unavailable(
            "STORAGE_UNAVAILABLE",
            "the registry database is unreachable; nothing was changed, retry with back-off",
        )

    async def _read(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]],
                    pool: AsyncConnectionPool | None = None) -> T:
        """Run a read in autocommit mode; retried once on a dead pooled connection."""
        await self._ensure_open()
        pool = pool or self._pools.read
        for attempt in (1, 2):
            try:
                async with self._pools.connection(pool, self._wait()) as conn:
                    return await fn(conn)
            except PoolTimeout as exc:
                if self._available and self._pools.saturated(pool):
                    raise saturation_error(pool) from None
                raise self._unavailable(exc, "no connection") from None
            except TIMEOUTS as exc:
                raise timeout_error(exc, "read", self.target.scrub) from None
            except psycopg.OperationalError as exc:
                if attempt == 2:
                    raise self._unavailable(exc, "read") from None
        raise AssertionError("unreachable")

    async def _replica_read(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]],
                            complete: Callable[[T], bool] = lambda _: True) -> T:
        """A portal or auditor read: on the standby when fresh and complete (.pg_standby)."""
        if self.standby is None:
            return await self._read(fn)
        await self._ensure_open()
        return await self.standby.read(fn, complete, self._read)

    async def _write(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Run ``fn`` in one transaction; retried whole on serialization failure or deadlock.

        Never retried after a connection failure: the COMMIT may have happened. A statement
        or lock wait past its timeout rolls the transaction back and fails (STORAGE_TIMEOUT).
        """
        await self._ensure_open()
        pool = self._pools.write
        for attempt in range(1, _RETRIES + 1):
            try:
                async with self._pools.connection(pool, self._wait()) as conn:
                    async with conn.transaction():
                        result = await fn(conn)
                self.transactions += 1
                return result
            except pgerrors.TransactionRollback:
                if attempt == _RETRIES:
                    raise Unavailable(
                        "STORAGE_CONTENTION",
                        "the registry stayed too busy to commit; nothing was changed, retry",
                    ) from None
                await asyncio.sleep(random.uniform(0, 0.005 * 2**attempt))
            except PoolTimeout as exc:
                if self._available and self._pools.saturated(pool):
                    raise saturation_error(pool) from None
                raise self._unavailable(exc, "no connection") from None
            except TIMEOUTS as exc:
                raise timeout_error(exc, "write", self.target.scrub) from None
            except pgerrors.DiskFull:
                if self.write_failure is None:  # once per episode, not once per call
                    log.error("registry database %s: disk full; writes refused with "
                              "RESOURCE_EXHAUSTED (STORAGE_FULL) and health NOT_SERVING "
                              "until a write fits again", self.target.display)
                self.write_failure = "STORAGE_FULL"
                raise ResourceExhausted("STORAGE_FULL", "the registry's disk is full: nothing "
                                        "was written; retry later (the operator has been "
                                        "alerted)") from None
            except psycopg.OperationalError as exc:
                raise self._unavailable(exc, "write") from None
        raise AssertionError("unreachable")

    async def probe_write(self) -> None:
        """Whether a write would fit now (health, after a full disk): ResourceExhausted
        while the database still has no room; nothing is kept either way."""
        with contextlib.suppress(sql.ProbeDone):
            await self._write(sql.probe_write)
        self.write_failure = None

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(groups committed, units committed) since start, as SqliteRegistry reports."""
        return self._group.groups, self._group.units

    # -- holdings --------------------------------------------------------------

    def _append_new(self, conn: Any, records: Sequence[NewRecord]) -> Any:
        return sql.append_new(conn, records, self.queue_auth, self._ids)  # keyversions' moves

    async def issue(self, items: Sequence[NewHolding]) -> list[bool]:
        keys = [(h.agency, h.symbol) for h in items]
        unique: dict[tuple[str, str], NewHolding] = {}
        for h in items:
            unique.setdefault((h.agency, h.symbol), h)
        rows = [h for _, h in sorted(unique.items(), key=lambda kv: kv[0])]
        if not rows:
            return []
        fresh = await self._group.submit(
            lambda conn: sql.issue(conn, rows, self.queue_auth, self._ids))
        # The first occurrence of a key carries the database's answer; a repeat of
        # it in the same batch finds the holding live (as on SQLite).
        out, seen = [], set()
        for key in keys:
            out.append(key in fresh and key not in seen)
            seen.add(key)
        return out

    async def release(self, agency: str, symbol: str, *,
                      record: NewRecord | None = None) -> bool | None:
        return await self._group.submit(
            lambda conn: sql.release(conn, agency, symbol, record, self.queue_auth, self._ids))

    async def holding_rows(self, keys: Sequence[tuple[str, str]]) -> list[HoldingRow | None]:
        wanted = list(keys)
        return await self._read(lambda conn: views.holding_rows(conn, wanted)) if wanted else []

    async def withheld_for_subject(self, pseudonym: bytes, now_us: int
                                   ) -> tuple[int, int | None]:
        return await self._read(lambda conn: views.withheld_for_subject(conn, pseudonym, now_us))

    async def withheld_due(self, after: tuple[int, int], until_us: int, max_leaf: int,
                           limit: int) -> list[StoredRecord]:
        return await self._read(lambda c: views.withheld_due(c, after, until_us, max_leaf, limit))

    async def policy_version(self, version: bytes) -> PublishedPolicy | None:
        return await self._read(lambda conn: views.policy_version(conn, version))

    async def publish_policy(self, version: bytes, record: NewRecord, loaded_at_us: int
                             ) -> PublishedPolicy:
        return await self._group.submit(
            lambda conn: views.publish_policy(conn, version, record, loaded_at_us,
                                             self.queue_auth, self._ids))

    async def lookup(self, agency: str, symbol: str) -> bytes | None:
        return await self._read(lambda conn: sql.lookup(conn, agency, symbol))

    async def lookup_many(self, keys: Sequence[tuple[str, str]]) -> list[bytes | None]:
        if len(keys) == 1:
            return [await self.lookup(*keys[0])]
        unique = sorted(set(keys))
        if not unique:
            return []
        found = await self._read(lambda conn: sql.lookup_many(conn, unique))
        return [found.get(key) for key in keys]

    # -- access records --------------------------------------------------------

    async def append_records(self, records: Sequence[NewRecord]) -> list[int | None]:
        recs = list(records)
        if not recs:
            return []
        return ids_of(await self._group.submit(
            lambda conn: sql.append(conn, recs, self.queue_auth, self._ids)))

    async def prior_exchange(self, key: bytes) -> PriorExchange | None:
        return await self._read(lambda conn: sql.prior_exchange(conn, key))

    async def append_for_holdings(
        self, items: Sequence[tuple[tuple[str, str], BuildRecord[T]]]
    ) -> list[Appended[T]]:
        todo = list(items)
        if not todo:
            return []
        return await self._group.submit(
            lambda conn: sql.append_for(conn, todo, self.queue_auth, self._ids))

    # -- the access log (docs/ACCESS_LOG.md) ------------------------------------

    async def integrate(
        self, batch: int, holder: str, lease_ms: int, plan: PlanFn
    ) -> Integration:
        return await self._write(lambda conn: sql.integrate(conn, batch, holder, lease_ms, plan))

    async def follow_growth(self, on_size: Callable[[int], None]) -> None:
        """Every replica's integrations, as they commit (LISTEN/NOTIFY: :mod:`.pg_listen`)."""
        await follow_growth(self.target.conninfo, self._connect_kwargs, self.target.display,
                            self._stored_size, on_size)

    async def _stored_size(self) -> int:
        return (await self.log_status()).tree_size

    async def release_lease(self, holder: str) -> None:
        await self._write(lambda conn: sql.execute(
            conn, "UPDATE sequencer_lease SET expires_us = 0 WHERE id = 1 AND holder = %s",
            (holder,)))

    async def log_status(self) -> LogStatus:
        return await self._read(sql.log_status)

    async def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        wanted = list(ids)
        if not wanted:
            return []
        need = sorted(set(wanted))
        found = await self._replica_read(lambda conn: sql.get_nodes(conn, need),
                                         lambda got: len(got) == len(need))
        return [found[node] for node in wanted]  # KeyError names a missing node

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        floor = self.standby.floor if self.standby else 0
        cp = await self._replica_read(lambda conn: sql.checkpoint(
            conn, "SELECT tree_size, note, signed_at_us FROM checkpoints "
            "ORDER BY tree_size DESC LIMIT 1", ()),
            lambda cp: cp is not None and cp.tree_size >= floor)  # never backwards
        if self.standby and cp is not None:
            self.standby.floor = max(self.standby.floor, cp.tree_size)
        return cp

    async def checkpoint_at(self, tree_size: int) -> StoredCheckpoint | None:
        return await self._replica_read(lambda conn: sql.checkpoint(
            conn, "SELECT tree_size, note, signed_at_us FROM checkpoints WHERE tree_size = %s",
            (tree_size,)), lambda cp: cp is not None)

    async def recent_checkpoints(self, limit: int) -> list[StoredCheckpoint]:
        async def run(conn: psycopg.AsyncConnection[Any]) -> list[StoredCheckpoint]:
            cur = await conn.execute(
                "SELECT tree_size, note, signed_at_us FROM checkpoints "
                "ORDER BY tree_size DESC LIMIT %s", (limit,))
            return [StoredCheckpoint(int(r[0]), r[1], int(r[2])) for r in await cur.fetchall()]
        return await self._read(run)

    async def replace_note(self, tree_size: int, old_note: str, new_note: str) -> bool:
        async def run(conn: psycopg.AsyncConnection[Any]) -> bool:
            cur = await conn.execute(
                "UPDATE checkpoints SET note = %s WHERE tree_size = %s AND note = %s",
                (new_note, tree_size, old_note))
            return cur.rowcount == 1
        return await self._write(run)

    async def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        async def run(conn: psycopg.AsyncConnection[Any]) -> list[tuple[int, bytes]]:
            cur = await conn.execute(
                "SELECT leaf_index, leaf FROM access_records "
                "WHERE leaf_index >= %s AND leaf_index < %s ORDER BY leaf_index", (start, end))
            return [(int(i), bytes(leaf)) for i, leaf in await cur.fetchall()]

        return await self._replica_read(run, lambda rows: len(rows) == end - start)

    async def record_by_id(self, record_id: int) -> StoredRecord | None:
        rows = await self._replica_read(lambda conn: sql.select_records(
            conn, sql.RECORD_COLUMNS + "WHERE id = %s", (record_id,)),
            lambda rows: bool(rows) and rows[0].leaf_index is not None)
        return rows[0] if rows else None

    async def integrated_after(self, after_leaf: int, limit: int) -> list[StoredRecord]:
        return await self._read(lambda conn: sql.select_records(
            conn, sql.RECORD_COLUMNS + "WHERE leaf_index > %s ORDER BY leaf_index LIMIT %s",
            (after_leaf, limit)))

    async def leaf_index_by_hash(self, leaf_hash: bytes, tree_size: int) -> int | None:
        return await self._replica_read(
            lambda conn: sql.leaf_index_by_hash(conn, leaf_hash, tree_size),
            lambda index: index is not None)

    async def records_for_subject(
        self, pseudonym: bytes, before_id: int | None, limit: int, *, now_us: int | None = None
    ) -> list[StoredRecord]:
        before = before_id if before_id is not None else _MAX_ID
        now = _MAX_ID if now_us is None else now_us
        return await self._replica_read(lambda conn: sql.select_records(
            conn, sql.RECORD_COLUMNS + "WHERE pseudonym = %s AND id < %s AND "
            "(withheld_until_us IS NULL OR withheld_until_us <= %s) ORDER BY id DESC LIMIT %s",
            (pseudonym, before, now, limit)))

    async def records_after(self, after_id: int, limit: int) -> list[StoredRecord]:
        return await self._read(lambda conn: sql.select_records(
            conn, sql.RECORD_COLUMNS + "WHERE id > %s ORDER BY id LIMIT %s",
            (after_id, limit)))


# -- connection set-up and statements --------------------------------------------


def connect_sync(target: PgTarget, connect_timeout: int = 5) -> psycopg.Connection[Any]:
    """A plain synchronous autocommit connection (start-up checks, ``symbolsvc db``)."""
    try:
        return psycopg.connect(target.conninfo, password=target.password, autocommit=True,
                               connect_timeout=connect_timeout)
    except psycopg.Error as exc:
        raise ConfigError(target.scrub(
            f"cannot connect to {target.display}: {_first_line(exc)}")) from None


def _kwargs(target: PgTarget, connect_timeout: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": connect_timeout}
    if target.password is not None:
        kwargs["password"] = target.password  # apart from the connection string
    return kwargs


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
