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
* **Outages.** A connection failure or pool timeout becomes
  :class:`~symbolsvc.errors.Unavailable` (gRPC ``UNAVAILABLE``); the transaction
  rolled back, so nothing changed. (A connection lost *during* ``COMMIT`` leaves
  the outcome unknown, as with any database; retrying an issue is idempotent.)
* **Secrets.** The password is handed to libpq apart from the connection
  string, and every message goes through :meth:`PgTarget.scrub`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql as pgsql
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import ConfigError, ResourceExhausted, Unavailable
from . import (
    Appended,
    BuildRecord,
    Integration,
    LogStatus,
    NewHolding,
    NewRecord,
    PlanFn,
    PriorExchange,
    StoredCheckpoint,
    StoredRecord,
    ids_of,
)
from . import pg_sql as sql
from .keyversions import PgKeyVersions
from .migrations import Migration, pg_migrate, pg_version, require_current
from .pg_group import GroupWriter
from .pg_pools import TIMEOUTS, Pools, saturation_error, timeout_error
from .url import PgTarget

T = TypeVar("T")
log = logging.getLogger("symbolsvc.registry")

_RETRIES = 6
_MAX_ID = 2**63 - 1
_OUTAGE_WAIT = 0.25  # seconds


class PgRegistry(PgKeyVersions):
    """:class:`symbolsvc.registry.Registry` on PostgreSQL through a psycopg connection pool."""

    def __init__(self, target: PgTarget | str, *, timeout: float = 5.0,
                 connect_timeout: int = 3) -> None:
        self.target = PgTarget.parse(target) if isinstance(target, str) else target
        kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": connect_timeout}
        if self.target.password is not None:
            kwargs["password"] = self.target.password
        self._connect_kwargs = kwargs
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
        self.transactions = 0  # committed write transactions; read by benchmarks

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
                self._opened = True

    async def close(self) -> None:
        if self._opened:
            await self._pools.close()
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
                log.error("registry database %s: disk full; writes refused with "
                          "RESOURCE_EXHAUSTED (STORAGE_FULL)", self.target.display)
                raise ResourceExhausted("STORAGE_FULL", "the registry's disk is full: nothing "
                                        "was written; retry later (the operator has been "
                                        "alerted)") from None
            except psycopg.OperationalError as exc:
                raise self._unavailable(exc, "write") from None
        raise AssertionError("unreachable")

    @property
    def commit_stats(self) -> tuple[int, int]:
        """(groups committed, units committed) since start, as SqliteRegistry reports."""
        return self._group.groups, self._group.units

    # -- holdings --------------------------------------------------------------

    async def issue(self, items: Sequence[NewHolding]) -> list[bool]:
        keys = [(h.agency, h.symbol) for h in items]
        unique: dict[tuple[str, str], bytes] = {}
        for h in items:
            unique.setdefault((h.agency, h.symbol), h.sealed_subject)
        rows = sorted((a, s, sealed) for (a, s), sealed in unique.items())
        if not rows:
            return []
        fresh = await self._group.submit(lambda conn: sql.issue(conn, rows))
        # The first occurrence of a key carries the database's answer; a repeat of
        # it in the same batch finds the holding live (as on SQLite).
        out, seen = [], set()
        for key in keys:
            out.append(key in fresh and key not in seen)
            seen.add(key)
        return out

    async def release(self, agency: str, symbol: str) -> bool | None:
        return await self._group.submit(lambda conn: sql.release(conn, agency, symbol))

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
        return ids_of(await self._group.submit(lambda conn: sql.append(conn, recs)))

    async def prior_exchange(self, key: bytes) -> PriorExchange | None:
        return await self._read(lambda conn: sql.prior_exchange(conn, key))

    async def append_for_holdings(
        self, items: Sequence[tuple[tuple[str, str], BuildRecord[T]]]
    ) -> list[Appended[T]]:
        todo = list(items)
        if not todo:
            return []
        return await self._group.submit(lambda conn: sql.append_for(conn, todo))

    # -- the access log (docs/ACCESS_LOG.md) ------------------------------------

    async def integrate(
        self, batch: int, holder: str, lease_ms: int, plan: PlanFn
    ) -> Integration:
        return await self._write(lambda conn: sql.integrate(conn, batch, holder, lease_ms, plan))

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
        found = await self._read(lambda conn: sql.get_nodes(conn, sorted(set(wanted))))
        return [found[node] for node in wanted]  # KeyError names a missing node

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        return await self._read(lambda conn: sql.checkpoint(
            conn, "SELECT tree_size, note, signed_at_us FROM checkpoints "
            "ORDER BY tree_size DESC LIMIT 1", ()))

    async def checkpoint_at(self, tree_size: int) -> StoredCheckpoint | None:
        return await self._read(lambda conn: sql.checkpoint(
            conn, "SELECT tree_size, note, signed_at_us FROM checkpoints WHERE tree_size = %s",
            (tree_size,)))

    async def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        async def run(conn: psycopg.AsyncConnection[Any]) -> list[tuple[int, bytes]]:
            cur = await conn.execute(
                "SELECT leaf_index, leaf FROM access_records "
                "WHERE leaf_index >= %s AND leaf_index < %s ORDER BY leaf_index", (start, end))
            return [(int(i), bytes(leaf)) for i, leaf in await cur.fetchall()]

        return await self._read(run)

    async def record_by_id(self, record_id: int) -> StoredRecord | None:
        rows = await self._read(lambda conn: sql.select_records(
            conn, sql.RECORD_COLUMNS + "WHERE id = %s", (record_id,)))
        return rows[0] if rows else None

    async def integrated_after(self, after_leaf: int, limit: int) -> list[StoredRecord]:
        return await self._read(lambda conn: sql.select_records(
            conn, sql.RECORD_COLUMNS + "WHERE leaf_index > %s ORDER BY leaf_index LIMIT %s",
            (after_leaf, limit)))

    async def records_for_subject(
        self, pseudonym: bytes, before_id: int | None, limit: int
    ) -> list[StoredRecord]:
        before = before_id if before_id is not None else _MAX_ID
        return await self._read(lambda conn: sql.select_records(
            conn, sql.RECORD_COLUMNS + "WHERE pseudonym = %s AND id < %s ORDER BY id DESC LIMIT %s",
            (pseudonym, before, limit)))

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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# -- the backend (registered for postgresql:// URLs in .backends) -----------------------


class PgBackend:
    """:class:`~.backends.Backend` for ``postgresql://`` (and ``postgres://``) URLs."""

    name = "postgres"

    def describe(self, url: str, base: Path) -> str:
        return PgTarget.parse(url).display

    def open(self, url: str, base: Path) -> PgRegistry:
        registry = PgRegistry(PgTarget.parse(url))
        registry.check_schema()
        return registry

    def create(self, url: str, base: Path) -> str:
        target = PgTarget.parse(url)
        if not target.dbname:
            raise ConfigError(f"{target.display}: the URL names no database")
        last_error = ""
        for maintenance in ("postgres", "template1"):
            admin = target.with_dbname(maintenance)
            try:
                conn = psycopg.connect(admin.conninfo, password=admin.password,
                                       autocommit=True, connect_timeout=5)
            except psycopg.Error as exc:
                last_error = target.scrub(_first_line(exc))
                continue
            with conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (target.dbname,)
                ).fetchone()
                if exists:
                    return f"{target.display}: exists"
                try:
                    conn.execute(pgsql.SQL("CREATE DATABASE {}").format(
                        pgsql.Identifier(target.dbname)))
                except psycopg.Error as exc:
                    raise ConfigError(target.scrub(
                        f"{target.display}: CREATE DATABASE failed: {str(exc).strip()}")
                    ) from None
            return f"{target.display}: created"
        raise ConfigError(f"{target.display}: cannot connect to the server to create the "
                          f"database: {last_error}")

    def migrate(self, url: str, base: Path) -> list[Migration]:
        target = PgTarget.parse(url)
        with connect_sync(target) as conn:
            return pg_migrate(conn, target.display)

    def schema_version(self, url: str, base: Path) -> int:
        with connect_sync(PgTarget.parse(url)) as conn:
            return pg_version(conn)

    def inspect(self, url: str, base: Path) -> PgInspector:
        return PgInspector(PgTarget.parse(url))


class PgInspector:
    """:class:`~.backends.Inspector` on a PostgreSQL registry (a read-only session)."""

    def __init__(self, target: PgTarget) -> None:
        self._conn = connect_sync(target)
        self._conn.read_only = True

    def execute(self, sql: str, params: tuple[Any, ...] = ()
                ) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = self._conn.execute(sql.replace("?", "%s"), params)
        rows = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                for r in cur.fetchall()]
        return [d.name for d in cur.description or ()], rows

    def tables(self) -> list[str]:
        _, rows = self.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name")
        return [r[0] for r in rows]

    def close(self) -> None:
        self._conn.close()


BACKEND = PgBackend()
