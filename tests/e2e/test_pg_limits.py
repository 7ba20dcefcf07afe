"""The PostgreSQL connection as a bounded resource, on a private cluster of this module.

* A lock held on ``holdings``: issuance fails after ``lock_timeout`` with UNAVAILABLE /
  STORAGE_TIMEOUT (logged), health stays SERVING (the database is up), and once the lock
  goes everything acknowledged before is still there and issuance works again.
* A flood of slow reads: they fill the read pool only; further reads get
  RESOURCE_EXHAUSTED / STORAGE_SATURATED, issuance keeps succeeding on the write pool,
  health stays SERVING, and the stuck reads complete once the lock goes.
* Each pool's sessions carry their role's statement, lock and idle-in-transaction timeouts.
* The filesystem holding the registry's tables (a tablespace on a small tmpfs) fills up:
  RESOURCE_EXHAUSTED / STORAGE_FULL, logged once, health NOT_SERVING until a write fits
  again, nothing acknowledged lost.

"In flight" is made true by construction: the test holds a table lock in its own session
and waits until ``pg_stat_activity`` shows the server's reads waiting on it.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import subprocess
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
from helpers.postgres import PrivateCluster
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


class SmallTablespace:
    """A tablespace of the private cluster on a tmpfs of ``size_mb`` (mounted here, as
    root), and a migrated database whose default tablespace it is: every table, index
    and temporary table of that database lives on the small filesystem, the WAL does not.
    :meth:`fill` writes a file there until the filesystem is full."""

    def __init__(self, cluster: PrivateCluster, size_mb: int) -> None:
        self._cluster = cluster
        self.mount = cluster.dir / f"small-{secrets.token_hex(3)}"
        self.mount.mkdir()
        pw = pwd.getpwnam("postgres")
        subprocess.run(["mount", "-t", "tmpfs", "-o",
                   f"size={size_mb}m,mode=0700,uid={pw.pw_uid},gid={pw.pw_gid}", "tmpfs",
                   str(self.mount)], check=True)
        self.filler = self.mount / "filler"
        self.name = f"small_{secrets.token_hex(3)}"
        admin = PgTarget.parse(cluster.url)
        location = self.mount / "ts"  # PostgreSQL wants an empty directory it owns
        location.mkdir()
        os.chown(location, pw.pw_uid, pw.pw_gid)
        with connect_sync(admin) as conn:
            conn.execute(f"CREATE TABLESPACE {self.name} LOCATION '{location}'")
            conn.execute(f'CREATE DATABASE "{self.name}" TABLESPACE {self.name}')
        self.url = admin.with_dbname(self.name).conninfo
        with connect_sync(PgTarget.parse(self.url)) as conn:
            pg_migrate(conn, "disk-full test")

    def fill(self) -> None:
        with self.filler.open("wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def destroy(self) -> None:
        self.free()
        with connect_sync(PgTarget.parse(self._cluster.url)) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f"DROP TABLESPACE IF EXISTS {self.name}")
        subprocess.run(["umount", "-l", str(self.mount)], check=False)


def test_disk_full_is_resource_exhausted_not_serving_and_recovers(
        cluster: PrivateCluster, deployment_template: Path, tmp_path: Path,
        numbers: NumberSource) -> None:
    """Issue 11 on PostgreSQL: the filesystem holding the registry's tables fills up. Writes
    get RESOURCE_EXHAUSTED / STORAGE_FULL (logged once, not per call), health turns
    NOT_SERVING until a write fits again, nothing acknowledged is lost, and once room is
    made health is SERVING and issuance works, by itself."""
    small = SmallTablespace(cluster, size_mb=24)
    server: ServerProcess | None = None
    try:
        directory = copy_deployment(deployment_template, tmp_path / "dep")
        set_storage_url(directory, small.url)
        server = ServerProcess(directory / "config.toml", tmp_path / "server.log").start()
        c = Clients(Deployment(directory), server.address)
        agency = c.agency("city-chiyoda")
        agency.timeout = 60
        acked = {n: agency.issue(n).symbol for n in numbers.many(20)}
        small.fill()
        codes = set()
        for _ in range(50):  # until a commit needs a page the filesystem cannot give
            try:
                agency.issue_batch(numbers.many(500))
            except CallError as err:
                codes.add((err.code, err.reason))
                break
        assert codes == {(Code.RESOURCE_EXHAUSTED, "STORAGE_FULL")}, codes
        server.wait_for_log(r"disk full; writes refused with RESOURCE_EXHAUSTED")
        wait_until(lambda: agency.health() != SERVING, 30, "health NOT_SERVING")
        # Still full: a second refused write says the same, and is not logged again.
        err = call_error(agency.issue_batch, numbers.many(500))
        assert (err.code, err.reason) == (Code.RESOURCE_EXHAUSTED, "STORAGE_FULL")
        small.free()
        wait_until(lambda: agency.health() == SERVING, 60, "health SERVING again")
        assert agency.issue(numbers.one()).newly_registered
        for n, symbol in acked.items():  # nothing acknowledged was lost
            reply = agency.issue(n)
            assert (reply.symbol, reply.newly_registered) == (symbol, False)
        log = server.log_text()
        assert log.count("disk full; writes refused") == 1, log[-3000:]
        assert "unreachable" not in log.lower()
        assert server.stop() == 0
        c.close()
    finally:
        if server is not None and server.running:
            server.kill()
        small.destroy()
