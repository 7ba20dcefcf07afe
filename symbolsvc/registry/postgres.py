"""The production registry: PostgreSQL (or Citus, CockroachDB, YugabyteDB) via psycopg 3.

Same interface and semantics as :mod:`.sqlite`, proven by the same conformance
suite (tests/test_registry.py). Differences that matter:

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
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pgerrors
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import ConfigError, Unavailable
from ..log.merkle import Frontier, leaf_hash
from . import (
    BuildRecord,
    Integration,
    LogStatus,
    NewHolding,
    NewRecord,
    SignFn,
    StoredCheckpoint,
    StoredRecord,
    build_records,
)
from .keyversions import PgKeyVersions
from .migrations import pg_version, require_current
from .open import PgTarget

T = TypeVar("T")
log = logging.getLogger("symbolsvc.registry")

_CHUNK = 1000  # rows per multi-row statement (3-4 parameters a row, far below 65,535)
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
        self._pool = AsyncConnectionPool(
            self.target.conninfo,
            kwargs=kwargs,
            min_size=self.target.pool_min,
            max_size=self.target.pool_max,
            open=False,
            timeout=timeout,
            configure=_configure,
            name="symbolsvc-registry",
            reconnect_timeout=24 * 3600,  # keep trying through long outages
        )
        self._timeout = timeout
        self._opened = False
        self._open_lock: asyncio.Lock | None = None
        self._available = True
        self._group = _GroupWriter(self, lanes=max(1, self.target.pool_max // 2))
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
                await self._pool.open(wait=False)
                self._opened = True

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
            self._opened = False

    async def ping(self) -> None:
        """Round trip to the database; after an outage, also replace dead pooled connections."""
        await self._ensure_open()
        if not self._available:
            await self._pool.check()
        await self._read(_ping)
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

    async def _read(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Run a read in autocommit mode; retried once on a dead pooled connection."""
        await self._ensure_open()
        for attempt in (1, 2):
            try:
                async with self._pool.connection(timeout=self._wait()) as conn:
                    return await fn(conn)
            except PoolTimeout as exc:
                raise self._unavailable(exc, "no connection") from None
            except psycopg.OperationalError as exc:
                if attempt == 2:
                    raise self._unavailable(exc, "read") from None
        raise AssertionError("unreachable")

    async def _write(self, fn: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        """Run ``fn`` in one transaction; retried whole on serialization failure or deadlock.

        Never retried after a connection failure: the COMMIT may have happened.
        """
        await self._ensure_open()
        for attempt in range(1, _RETRIES + 1):
            try:
                async with self._pool.connection(timeout=self._wait()) as conn:
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
                raise self._unavailable(exc, "no connection") from None
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
        unique = {}
        for h in items:
            unique.setdefault((h.agency, h.symbol), h.sealed_subject)
        rows = sorted((a, s, sealed) for (a, s), sealed in unique.items())
        if not rows:
            return []
        fresh = await self._group.submit(lambda conn: _issue(conn, rows))
        # The first occurrence of a key carries the database's answer; a repeat of
        # it in the same batch finds the holding live (as on SQLite).
        out, seen = [], set()
        for key in keys:
            out.append(key in fresh and key not in seen)
            seen.add(key)
        return out

    async def release(self, agency: str, symbol: str) -> bool | None:
        return await self._group.submit(lambda conn: _release(conn, agency, symbol))

    async def lookup(self, agency: str, symbol: str) -> bytes | None:
        return await self._read(lambda conn: _lookup(conn, agency, symbol))

    async def lookup_many(self, keys: Sequence[tuple[str, str]]) -> list[bytes | None]:
        if len(keys) == 1:
            return [await self.lookup(*keys[0])]
        unique = sorted(set(keys))
        if not unique:
            return []
        found = await self._read(lambda conn: _lookup_many(conn, unique))
        return [found.get(key) for key in keys]

    # -- access records --------------------------------------------------------

    async def append_records(self, records: Sequence[NewRecord]) -> list[int | None]:
        recs = list(records)
        if not recs:
            return []
        return await self._group.submit(lambda conn: _append(conn, recs))

    async def append_for_holdings(
        self, items: Sequence[tuple[tuple[str, str], BuildRecord]]
    ) -> list[tuple[bool, int | None]]:
        todo = list(items)
        if not todo:
            return []
        return await self._group.submit(lambda conn: _append_for(conn, todo))

    # -- the access log (docs/ACCESS_LOG.md) ------------------------------------

    async def integrate(
        self, batch: int, holder: str, lease_ms: int, sign_fn: SignFn
    ) -> Integration:
        return await self._write(lambda conn: _integrate(conn, batch, holder, lease_ms, sign_fn))

    async def release_lease(self, holder: str) -> None:
        await self._write(lambda conn: _execute(
            conn, "UPDATE sequencer_lease SET expires_us = 0 WHERE id = 1 AND holder = %s",
            (holder,)))

    async def log_status(self) -> LogStatus:
        return await self._read(_log_status)

    async def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        wanted = list(ids)
        if not wanted:
            return []
        found = await self._read(lambda conn: _get_nodes(conn, sorted(set(wanted))))
        return [found[node] for node in wanted]  # KeyError names a missing node

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        return await self._read(lambda conn: _checkpoint(
            conn, "SELECT tree_size, note, signed_at_us FROM checkpoints "
            "ORDER BY tree_size DESC LIMIT 1", ()))

    async def checkpoint_at(self, tree_size: int) -> StoredCheckpoint | None:
        return await self._read(lambda conn: _checkpoint(
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
        rows = await self._read(lambda conn: _select_records(
            conn, _RECORD_COLUMNS + "WHERE id = %s", (record_id,)))
        return rows[0] if rows else None

    async def integrated_after(self, after_leaf: int, limit: int) -> list[StoredRecord]:
        return await self._read(lambda conn: _select_records(
            conn, _RECORD_COLUMNS + "WHERE leaf_index > %s ORDER BY leaf_index LIMIT %s",
            (after_leaf, limit)))

    async def records_for_subject(
        self, pseudonym: bytes, before_id: int | None, limit: int
    ) -> list[StoredRecord]:
        before = before_id if before_id is not None else _MAX_ID
        return await self._read(lambda conn: _select_records(
            conn, _RECORD_COLUMNS + "WHERE pseudonym = %s AND id < %s ORDER BY id DESC LIMIT %s",
            (pseudonym, before, limit)))

    async def records_after(self, after_id: int, limit: int) -> list[StoredRecord]:
        return await self._read(lambda conn: _select_records(
            conn, _RECORD_COLUMNS + "WHERE id > %s ORDER BY id LIMIT %s",
            (after_id, limit)))


class _GroupWriter:
    """Group commit across concurrent calls: up to ``lanes`` transactions in flight, each
    carrying every unit of work queued when it began (at most ``max_group``).

    PostgreSQL already shares WAL flushes between concurrent commits; this also shares
    the BEGIN/COMMIT round trips and the flush wait, which is what bounds a replica's
    write rate when each commit waits a few milliseconds for the disk. If a group
    fails for a reason other than the connection, its units are retried one
    transaction each, so a bad unit fails alone.
    """

    def __init__(self, registry: PgRegistry, lanes: int, max_group: int = 256) -> None:
        self._registry = registry
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
            try:
                outcomes: list[tuple[bool, Any]] = [
                    (True, r) for r in await self._registry._write(lambda c: _run_all(c, fns))]
            except Unavailable as exc:
                outcomes = [(False, exc)] * len(group)
            except Exception:  # noqa: BLE001 - isolate the failing unit below
                outcomes = []
                for fn in fns:
                    try:
                        outcomes.append((True, await self._registry._write(fn)))
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


# -- connection set-up and statements --------------------------------------------


def connect_sync(target: PgTarget, connect_timeout: int = 5) -> psycopg.Connection[Any]:
    """A plain synchronous autocommit connection (start-up checks, ``symbolsvc db``)."""
    try:
        return psycopg.connect(target.conninfo, password=target.password, autocommit=True,
                               connect_timeout=connect_timeout)
    except psycopg.Error as exc:
        raise ConfigError(target.scrub(
            f"cannot connect to {target.display}: {_first_line(exc)}")) from None


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    """Every pooled connection: commits wait for the WAL flush."""
    try:
        await conn.execute("SET synchronous_commit = on")
    except (pgerrors.UndefinedObject, pgerrors.FeatureNotSupported,
            pgerrors.InvalidParameterValue):
        # Engines without the setting (CockroachDB) always commit durably.
        pass


async def _ping(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("SELECT 1")


def _values(n: int, width: int) -> str:
    row = "(" + ", ".join(["%s"] * width) + ")"
    return ", ".join([row] * n)


def _chunks(seq: Sequence[T], size: int = _CHUNK) -> list[Sequence[T]]:
    return [seq[i:i + size] for i in range(0, len(seq), size)]


async def _issue(
    conn: psycopg.AsyncConnection[Any], rows: list[tuple[str, str, bytes]]
) -> set[tuple[str, str]]:
    fresh: set[tuple[str, str]] = set()
    for chunk in _chunks(rows):
        cur = await conn.execute(
            "INSERT INTO holdings (agency, symbol, sealed_subject) VALUES "  # noqa: S608 - placeholders only
            + _values(len(chunk), 3)
            + " ON CONFLICT (agency, symbol) DO UPDATE SET released = false "
            "WHERE holdings.released RETURNING agency, symbol",
            [v for row in chunk for v in row],
        )
        fresh.update((a, s) for a, s in await cur.fetchall())
    return fresh


async def _release(conn: psycopg.AsyncConnection[Any], agency: str, symbol: str) -> bool | None:
    cur = await conn.execute(
        "UPDATE holdings SET released = true "
        "WHERE agency = %s AND symbol = %s AND NOT released RETURNING 1",
        (agency, symbol),
    )
    if await cur.fetchone() is not None:
        return True
    cur = await conn.execute(
        "SELECT 1 FROM holdings WHERE agency = %s AND symbol = %s", (agency, symbol)
    )
    return False if await cur.fetchone() is not None else None


async def _lookup(conn: psycopg.AsyncConnection[Any], agency: str, symbol: str) -> bytes | None:
    cur = await conn.execute(
        "SELECT sealed_subject FROM holdings WHERE agency = %s AND symbol = %s AND NOT released",
        (agency, symbol),
    )
    row = await cur.fetchone()
    return bytes(row[0]) if row else None


async def _lookup_many(
    conn: psycopg.AsyncConnection[Any], keys: list[tuple[str, str]]
) -> dict[tuple[str, str], bytes]:
    found: dict[tuple[str, str], bytes] = {}
    for chunk in _chunks(keys):
        cur = await conn.execute(
            "SELECT agency, symbol, sealed_subject FROM holdings "  # noqa: S608 - placeholders only
            "WHERE NOT released AND (agency, symbol) IN (" + _values(len(chunk), 2) + ")",
            [v for key in chunk for v in key],
        )
        for agency, symbol, sealed in await cur.fetchall():
            found[(agency, symbol)] = bytes(sealed)
    return found


_INSERT_RECORD = (
    "INSERT INTO access_records (pseudonym, sealed_subject, leaf) VALUES (%s, %s, %s) RETURNING id"
)
# The required holdings' rows are share-locked until COMMIT, so a concurrent release
# waits and no record is appended against a holding released before the record commits.
def _insert_record_if_live(n: int) -> str:
    """The insert of a record that needs ``n`` live holdings: one row only when all are."""
    tables = ", ".join(f"holdings h{i}" for i in range(n))
    where = " AND ".join(
        f"h{i}.agency = %s AND h{i}.symbol = %s AND NOT h{i}.released" for i in range(n))
    return ("INSERT INTO access_records (pseudonym, sealed_subject, leaf) "  # noqa: S608
            f"SELECT %s, %s, %s FROM {tables} WHERE {where} FOR SHARE RETURNING id")


_INSERT_RECORD_IF_LIVE = {n: _insert_record_if_live(n) for n in (1, 2)}


async def _append(
    conn: psycopg.AsyncConnection[Any], records: list[NewRecord]
) -> list[int | None]:
    cursors = []
    async with conn.pipeline():
        for r in records:
            cur = conn.cursor()
            if not r.require:
                await cur.execute(_INSERT_RECORD, (r.pseudonym, r.sealed_subject, r.leaf))
            else:
                n = len(r.require)
                sql = _INSERT_RECORD_IF_LIVE.get(n) or _insert_record_if_live(n)
                await cur.execute(sql, (r.pseudonym, r.sealed_subject, r.leaf,
                                        *(v for key in r.require for v in key)))
            cursors.append(cur)
    out: list[int | None] = []
    for cur in cursors:
        row = await cur.fetchone()
        out.append(int(row[0]) if row else None)
    return out


async def _append_for(
    conn: psycopg.AsyncConnection[Any], items: list[tuple[tuple[str, str], BuildRecord]]
) -> list[tuple[bool, int | None]]:
    """append_for_holdings in the group's transaction: read the holdings, build, append
    (the append re-checks and share-locks every required holding)."""
    found = await _lookup_many(conn, sorted({key for key, _ in items}))
    results, records, slots = build_records(
        [build for _, build in items], [found.get(key) for key, _ in items])
    if records:
        for j, rid in zip(slots, await _append(conn, records), strict=True):
            results[j] = (True, rid)
    return results


_RECORD_COLUMNS = "SELECT id, leaf, sealed_subject, leaf_index FROM access_records "


async def _select_records(
    conn: psycopg.AsyncConnection[Any], sql: Any, params: tuple[Any, ...]
) -> list[StoredRecord]:
    cur = await conn.execute(sql, params)
    return [StoredRecord(int(i), bytes(leaf), bytes(sealed), None if li is None else int(li))
            for i, leaf, sealed, li in await cur.fetchall()]


async def _execute(conn: psycopg.AsyncConnection[Any], sql: Any, params: tuple[Any, ...]) -> None:
    await conn.execute(sql, params)


# -- the access log ---------------------------------------------------------------
# The lease is a row (holder, expiry) taken and renewed by a conditional UPDATE, the
# first statement of every integration transaction: the UPDATE row-locks the lease
# until COMMIT, so a second replica's integration waits on it and then re-evaluates
# its condition against the committed row (READ COMMITTED; under CockroachDB's
# SERIALIZABLE one of the two aborts and retries). A holder whose lease was taken
# over therefore writes nothing. Expiry is judged by the database's clock, the one
# clock all replicas share. No advisory locks.


async def _db_now_us(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute(
        "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def _take_lease(conn: psycopg.AsyncConnection[Any], holder: str, lease_ms: int) -> bool:
    now = await _db_now_us(conn)
    expires = now + lease_ms * 1000
    await conn.execute(
        "INSERT INTO sequencer_lease (id, holder, expires_us) VALUES (1, %s, %s) "
        "ON CONFLICT (id) DO NOTHING", (holder, expires))
    cur = await conn.execute(
        "UPDATE sequencer_lease SET holder = %s, expires_us = %s "
        "WHERE id = 1 AND (holder = %s OR expires_us <= %s) RETURNING 1",
        (holder, expires, holder, now))
    return await cur.fetchone() is not None


async def _stored_size(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute("SELECT tree_size FROM log_state WHERE id = 1")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _integrate(
    conn: psycopg.AsyncConnection[Any], batch: int, holder: str, lease_ms: int, sign_fn: SignFn
) -> Integration:
    """One sequencer step inside one transaction: all of it commits, or none."""
    if not await _take_lease(conn, holder, lease_ms):
        return Integration(False, 0, await _stored_size(conn), None)
    cur = await conn.execute("SELECT tree_size, frontier FROM log_state WHERE id = 1")
    row = await cur.fetchone()
    frontier = Frontier() if row is None else Frontier.from_bytes(bytes(row[1]))
    if row is not None and frontier.size != row[0]:
        raise RuntimeError(
            f"log_state is inconsistent: tree_size {row[0]} but a frontier of {frontier.size}")
    # Every record still unsequenced, lowest id first. Never "ids above the last one
    # integrated": ids are not commit order, and a late commit must not be skipped.
    cur = await conn.execute(
        "SELECT id, leaf FROM access_records WHERE leaf_index IS NULL ORDER BY id LIMIT %s",
        (batch,))
    rows = await cur.fetchall()
    if rows:
        assign: list[tuple[int, int]] = []
        nodes: list[tuple[int, int, bytes]] = []
        for record_id, leaf in rows:
            assign.append((frontier.size, int(record_id)))
            nodes.extend(frontier.append(leaf_hash(bytes(leaf))))
        updated = 0
        for chunk in _chunks(assign):
            # Leaf indices are consecutive in id order: one statement per 1,000 rows,
            # no VALUES list to plan. id = ANY(...) and array_position are accepted by
            # PostgreSQL, CockroachDB, YugabyteDB and Citus (pruned to id's shards).
            ids = [record_id for _, record_id in chunk]
            cur = await conn.execute(
                "UPDATE access_records SET leaf_index = %s + array_position(%s, id) - 1 "
                "WHERE id = ANY(%s) AND leaf_index IS NULL", (chunk[0][0], ids, ids))
            updated += cur.rowcount
        if updated != len(assign):  # cannot happen under the lease; never half-apply
            raise RuntimeError("a record was integrated concurrently; integration rolled back")
        # COPY: several times faster than multi-row INSERTs here, and supported by
        # CockroachDB, YugabyteDB and Citus alike. A duplicate node fails the PK.
        async with conn.cursor() as cur, cur.copy(
                "COPY tree_nodes (level, idx, hash) FROM STDIN") as copy:
            for node in nodes:
                await copy.write_row(node)
        await conn.execute(
            "INSERT INTO log_state (id, tree_size, frontier) VALUES (1, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET tree_size = excluded.tree_size, "
            "frontier = excluded.frontier", (frontier.size, frontier.to_bytes()))
    cur = await conn.execute("SELECT MAX(tree_size) FROM checkpoints")
    row = await cur.fetchone()
    latest = None if row is None or row[0] is None else int(row[0])
    if latest is not None and latest > frontier.size:
        raise RuntimeError(
            f"a checkpoint of size {latest} exists but the stored tree has {frontier.size} leaves")
    note = None
    if latest is None or latest < frontier.size:
        note = sign_fn(frontier.size, frontier.root())
        await conn.execute(
            "INSERT INTO checkpoints (tree_size, note, signed_at_us) VALUES (%s, %s, %s)",
            (frontier.size, note, await _db_now_us(conn)))
    return Integration(True, len(rows), frontier.size, note)


async def _log_status(conn: psycopg.AsyncConnection[Any]) -> LogStatus:
    size = await _stored_size(conn)
    cur = await conn.execute("SELECT holder, expires_us FROM sequencer_lease WHERE id = 1")
    row = await cur.fetchone()
    return LogStatus(size, row[0], int(row[1])) if row else LogStatus(size, None, 0)


async def _get_nodes(
    conn: psycopg.AsyncConnection[Any], ids: list[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    found: dict[tuple[int, int], bytes] = {}
    for chunk in _chunks(ids, 500):
        cur = await conn.execute(
            "SELECT level, idx, hash FROM tree_nodes "  # noqa: S608 - placeholders only
            "WHERE (level, idx) IN (" + _values(len(chunk), 2) + ")",
            [v for node in chunk for v in node])
        for level, idx, h in await cur.fetchall():
            found[(int(level), int(idx))] = bytes(h)
    return found


async def _checkpoint(
    conn: psycopg.AsyncConnection[Any], sql: Any, params: tuple[Any, ...]
) -> StoredCheckpoint | None:
    cur = await conn.execute(sql, params)
    row = await cur.fetchone()
    return StoredCheckpoint(int(row[0]), row[1], int(row[2])) if row else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
