"""The PostgreSQL connection as a bounded resource, on a private cluster of this module.

* A lock held on ``holdings``: issuance fails after ``lock_timeout`` with UNAVAILABLE /
  STORAGE_TIMEOUT (logged), health stays SERVING (the database is up), and once the lock
  goes everything acknowledged before is still there and issuance works again.
* A flood of slow reads: they fill the read pool only; further reads get
  RESOURCE_EXHAUSTED / STORAGE_SATURATED, issuance keeps succeeding on the write pool,
  health stays SERVING, and the stuck reads complete once the lock goes.
* Each pool's sessions carry their role's statement, lock and idle-in-transaction timeouts.

"In flight" is made true by construction: the test holds a table lock in its own session
and waits until ``pg_stat_activity`` shows the server's reads waiting on it.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from helpers import (
    SERVING,
    Clients,
    NumberSource,
    ServerProcess,
    call_error,
    copy_deployment,
    set_storage_url,
    wait_until,
)
from postgres_fixtures import PrivateCluster
from symbolsvc_client import CallError, Deployment

from symbolsvc.registry.migrations import pg_migrate
from symbolsvc.registry.postgres import PgRegistry, connect_sync
from symbolsvc.registry.url import PgTarget

Code = grpc.StatusCode


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    why = PrivateCluster.available()
    if why:
        pytest.skip(f"{why}; these tests hold locks on a PostgreSQL server of their own")
    server = PrivateCluster()
    try:
        yield server
    finally:
        server.destroy()


def new_database(cluster: PrivateCluster) -> str:
    """A migrated database on the private cluster; its URL (no parameters)."""
    name = f"limits_{secrets.token_hex(4)}"
    target = PgTarget.parse(cluster.url)
    with connect_sync(target) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = target.with_dbname(name).conninfo
    with connect_sync(PgTarget.parse(url)) as conn:
        pg_migrate(conn, "limits test")
    return url


@pytest.fixture
def serve(cluster: PrivateCluster, deployment_template: Path, tmp_path: Path
          ) -> Iterator[Any]:
    started: list[ServerProcess] = []

    def start(params: str) -> tuple[ServerProcess, str]:
        url = new_database(cluster)
        directory = copy_deployment(deployment_template, tmp_path / f"dep{len(started)}")
        set_storage_url(directory, f"{url}?{params}")
        server = ServerProcess(directory / "config.toml", tmp_path / f"server{len(started)}.log")
        started.append(server)
        return server.start(), url

    try:
        yield start
    finally:
        for s in started:
            if s.running:
                s.stop()


class TableLock:
    """``LOCK TABLE ... IN ACCESS EXCLUSIVE MODE`` held by a session of the test until
    :meth:`release`."""

    def __init__(self, url: str, table: str) -> None:
        self.conn = psycopg.connect(url)
        self.conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


def waiting_on_locks(url: str, role: str) -> int:
    """How many of the server's ``role`` sessions wait on a lock right now."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
            "AND wait_event_type = 'Lock'", (f"symbolsvc-{role}",)).fetchone()
    return int(row[0]) if row else 0


def test_a_lock_held_on_holdings_fails_writes_cleanly(serve: Any,
                                                       numbers: NumberSource) -> None:
    server, url = serve("pool_max=4&lock_timeout_ms=500")
    c = Clients(Deployment(server.directory), server.address)
    agency = c.agency("city-chiyoda")
    agency.timeout = 60
    acked = {n: agency.issue(n).symbol for n in numbers.many(3)}
    lock = TableLock(url, "holdings")
    try:
        mark = server.log_size()
        err = call_error(agency.issue, numbers.one())
        assert (err.code, err.reason) == (Code.UNAVAILABLE, "STORAGE_TIMEOUT"), err
        assert "nothing was changed" in err.message
        server.wait_for_log(r"registry write exceeded its lock wait timeout", since=mark)
        # The database is up: health says so; no session stays stuck behind the lock.
        assert c.auditor().health("") == SERVING
        wait_until(lambda: waiting_on_locks(url, "write") == 0, 30,
                   "the server's writes to stop waiting on the lock")
    finally:
        lock.release()
    late = numbers.one()
    assert agency.issue(late).newly_registered
    for n, symbol in acked.items():
        reply = agency.issue(n)
        assert (reply.symbol, reply.newly_registered) == (symbol, False)
    assert "database unreachable" not in server.log_text()
    assert server.stop() == 0
    c.close()


def test_slow_reads_saturate_the_read_pool_not_issuance(serve: Any,
                                                        numbers: NumberSource) -> None:
    # 4 connections: 2 for writes, 2 for reads; reads may wait a minute on a lock.
    server, url = serve("pool_max=4&read_timeout_ms=120000")
    dep = Deployment(server.directory)
    c = Clients(dep, server.address)
    agency = c.agency("city-minato")
    agency.timeout = 60
    acked = {n: agency.issue(n).symbol for n in numbers.many(3)}
    assert c.auditor().checkpoint()
    outcomes: list[str | CallError] = []

    def slow_read() -> None:
        reader = Clients(dep, server.address)
        auditor = reader.auditor()
        auditor.timeout = 120
        try:
            outcomes.append(auditor.checkpoint())
        except CallError as exc:
            outcomes.append(exc)
        finally:
            reader.close()

    lock = TableLock(url, "checkpoints")
    threads: list[threading.Thread] = []
    try:
        for _ in range(2):
            t = threading.Thread(target=slow_read, daemon=True)
            t.start()
            threads.append(t)
        wait_until(lambda: waiting_on_locks(url, "read") == 2, 60,
                   "both read connections to be stuck behind the lock")
        # The read pool is full: one more read is refused as saturation, not an outage.
        auditor = c.auditor()
        auditor.timeout = 60
        err = call_error(auditor.checkpoint)
        assert (err.code, err.reason) == (Code.RESOURCE_EXHAUSTED, "STORAGE_SATURATED"), err
        # Issuance has its own connections; health stays SERVING.
        fresh = {n: agency.issue(n) for n in numbers.many(3)}
        assert all(r.newly_registered for r in fresh.values())
        assert c.auditor().health("") == SERVING
        assert all(t.is_alive() for t in threads)
    finally:
        lock.release()
    for t in threads:
        t.join(timeout=120)
    assert len(outcomes) == 2 and all(isinstance(o, str) and o for o in outcomes), outcomes
    for n, symbol in acked.items():
        assert agency.issue(n).symbol == symbol
    for n, reply in fresh.items():
        assert agency.issue(n).symbol == reply.symbol
    log = server.log_text()
    assert "read pool saturated" in log
    assert "unavailable" not in log.lower() and "unreachable" not in log.lower()
    assert server.stop() == 0
    c.close()


def test_each_pool_has_its_roles_timeouts(cluster: PrivateCluster) -> None:
    url = new_database(cluster)
    reg = PgRegistry(f"{url}?pool_max=4&read_timeout_ms=7000&write_timeout_ms=3000"
                     "&lock_timeout_ms=1500&idle_in_transaction_timeout_ms=9000")

    async def show(pool: Any) -> tuple[str, ...]:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), "
                "current_setting('idle_in_transaction_session_timeout'), "
                "current_setting('synchronous_commit'), current_setting('application_name')")
            row = await cur.fetchone()
            return tuple(row)

    async def run() -> dict[str, tuple[str, ...]]:
        await reg.ping()
        pools = reg._pools
        out = {"write": await show(pools.write), "read": await show(pools.read),
               "probe": await show(pools.probe)}
        await reg.close()
        return out

    got = asyncio.run(run())
    assert got["write"] == ("3s", "1500ms", "9s", "on", "symbolsvc-write")
    assert got["read"] == ("7s", "7s", "9s", "on", "symbolsvc-read")
    assert got["probe"][4] == "symbolsvc-probe"
    assert (reg._pools.write_max, reg._pools.read_max) == (2, 2)
