"""Stateless replicas over one PostgreSQL database (CONTRACT §7, issue 5).

Real processes: two ``symbolsvc serve`` on different ports, one deployment
directory, one database; clients balance over both with gRPC's ``round_robin``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2
from helpers import number_for
from helpers.postgres import (
    PrivateCluster,
    Replica,
    fresh_database,
    init_deployment,
    require_postgres,
)
from symbolsvc_client.channel import Deployment
from symbolsvc_client.clients import AgencyClient, CallError

from symbolsvc.records import AccessKind, AccessRecord
from symbolsvc.registry.migrations import pg_migrate
from symbolsvc.registry.postgres import connect_sync
from symbolsvc.registry.url import PgTarget

AGENCIES = ["city-a", "city-b"]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass
class Cluster:
    url: str
    dir: Path
    replicas: list[Replica] = field(default_factory=list)

    @property
    def addresses(self) -> list[str]:
        return [r.address for r in self.replicas]

    def deployment(self) -> Deployment:
        return Deployment(self.dir)

    def rows(self, sql: str, *params: object) -> list[tuple]:
        with connect_sync(PgTarget.parse(self.url)) as conn:
            return conn.execute(sql, params).fetchall()


@contextmanager
def _replicas(url: str, tmp_path: Path, n: int = 2) -> Iterator[Cluster]:
    config = init_deployment(tmp_path / "dep", url, AGENCIES)
    # A short lease so a takeover after kill -9 happens within a couple of seconds.
    text = config.read_text().replace(
        "[access_log]\n", "[access_log]\nintegrate_interval_ms = 100\nlease_ms = 1500\n", 1)
    config.write_text(text)
    c = Cluster(url, tmp_path / "dep")
    try:
        for i in range(n):
            c.replicas.append(Replica(config, tmp_path / f"replica{i}.log"))
        yield c
    finally:
        for r in c.replicas:
            r.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    require_postgres()
    with fresh_database() as url, _replicas(url, tmp_path) as c:
        yield c


@pytest.fixture
def private_pg() -> Iterator[PrivateCluster]:
    """A PostgreSQL server of this test alone: stopping it disturbs no other test run."""
    why = PrivateCluster.available()
    if why:
        pytest.skip(f"{why}; the outage test stops and restarts a real PostgreSQL server")
    server = PrivateCluster()
    try:
        yield server
    finally:
        server.destroy()


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_concurrent_overlapping_issuance_over_two_replicas(cluster: Cluster) -> None:
    dep = cluster.deployment()
    clients = {a: dep.agency(a, cluster.addresses) for a in AGENCIES}
    numbers = [number_for(1000 + i) for i in range(240)]
    seen: dict[tuple[str, str], list[tuple[str, bool]]] = defaultdict(list)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            agency = AGENCIES[t % 2]
            client = clients[agency]
            mine = numbers[(t * 20) % 200:(t * 20) % 200 + 60]  # overlaps 2 neighbours each way
            if t % 4 < 2:
                mine = mine[::-1]
            for start in range(0, len(mine), 10):
                chunk = mine[start:start + 10]
                if t % 3 == 0:
                    out = [(n, r.issued.symbol, r.issued.newly_registered)
                           for n, r in zip(chunk, client.issue_batch(chunk), strict=True)]
                else:
                    out = [(n, *_unary(client, n)) for n in chunk]
                with lock:
                    for n, symbol, new in out:
                        seen[(agency, n)].append((symbol, new))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for key, answers in seen.items():
        assert len({s for s, _ in answers}) == 1, f"one symbol per {key}"
        assert sum(new for _, new in answers) == 1, f"newly_registered once for {key}"
    total, distinct = cluster.rows(
        "SELECT count(*), count(DISTINCT (agency, symbol)) FROM holdings")[0]
    assert total == distinct == len(seen)
    for c in clients.values():
        c.close()


def _unary(client: AgencyClient, number: str) -> tuple[str, bool]:
    reply = client.issue(number)
    return reply.symbol, reply.newly_registered


def test_database_outage_unavailable_not_serving_and_recovery(
    private_pg: PrivateCluster, tmp_path: Path
) -> None:
    """pg_ctl stop -m fast under load (the server of this test alone), then start."""
    target = PgTarget.parse(private_pg.url)
    with connect_sync(target) as conn:
        conn.execute('CREATE DATABASE "symbolsvc"')
    url = target.with_dbname("symbolsvc").conninfo
    with connect_sync(PgTarget.parse(url)) as conn:
        pg_migrate(conn, "outage test")
    with _replicas(url, tmp_path) as cluster:
        _outage(cluster, private_pg)


def _outage(cluster: Cluster, server: PrivateCluster) -> None:
    dep = cluster.deployment()
    agency = dep.agency("city-a", cluster.addresses)
    probes = [dep.agency("city-a", addr) for addr in cluster.addresses]
    acked: dict[str, str] = {}
    failures: list[grpc.StatusCode] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            number = number_for(50_000 + i)
            i += 1
            try:
                acked[number] = agency.issue(number).symbol
            except CallError as err:
                failures.append(err.code)
                time.sleep(0.05)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        _wait_for(lambda: len(acked) > 20, 20, "load to start")
        server.stop()
        try:
            down = _wait_for(lambda: all(p.health() == NOT_SERVING for p in probes), 10,
                             "both replicas NOT_SERVING")
            _wait_for(lambda: len(failures) >= 3, 15, "calls failing during the outage")
            during = len(acked)
            time.sleep(1)
            assert len(acked) == during, "no call succeeds while the database is down"
        finally:
            server.start()
        up = _wait_for(lambda: all(p.health() == SERVING for p in probes), 15,
                       "both replicas SERVING again")
        after = len(acked)
        _wait_for(lambda: len(acked) > after + 20, 20, "calls succeeding again")
    finally:
        stop.set()
        loader.join()
    assert set(failures) == {grpc.StatusCode.UNAVAILABLE}, failures
    stored = {s for (s,) in cluster.rows("SELECT symbol FROM holdings WHERE agency = 'city-a'")}
    lost = [n for n, s in acked.items() if s not in stored]
    assert not lost, f"{len(lost)} acknowledged issues missing after the outage"
    print(f"NOT_SERVING after {down:.1f} s, SERVING {up:.1f} s after restart; "
          f"{len(acked)} acknowledged, {len(failures)} UNAVAILABLE")
    for c in (agency, *probes):
        c.close()


def test_kill_9_of_the_sequencer_replica_during_translations(cluster: Cluster) -> None:
    """The other replica takes the lease within a bounded time; every acknowledged
    translation has its leaf, none twice; ``symbolsvc audit verify`` passes."""
    dep = cluster.deployment()
    subjects = [number_for(7000 + i) for i in range(40)]
    symbols = [r.issued.symbol for r in dep.agency("city-a", cluster.addresses)
               .issue_batch(subjects)]
    dep.agency("city-b", cluster.addresses).issue_batch(subjects)
    broker = dep.broker(cluster.addresses)
    acked: set[str] = set()
    failures: list[grpc.StatusCode] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            exchange = f"x-{i}"
            i += 1
            try:
                broker.translate("city-a", symbols[i % len(symbols)], "city-b",
                                 "demo-exchange", "demo-record", exchange)
                acked.add(exchange)
            except CallError as err:
                failures.append(err.code)

    def holder_pid() -> int | None:
        rows = cluster.rows("SELECT holder, expires_us FROM sequencer_lease")
        return int(rows[0][0].split("/")[1]) if rows else None

    loader = threading.Thread(target=load)
    loader.start()
    try:
        _wait_for(lambda: len(acked) > 50 and holder_pid() is not None, 30, "load and a leader")
        pid = holder_pid()
        (victim,) = [r for r in cluster.replicas if r.proc.pid == pid]
        (survivor,) = [r for r in cluster.replicas if r is not victim]
        victim.kill()  # SIGKILL: no final integration, no lease release
        before = len(acked)
        takeover = _wait_for(lambda: holder_pid() == survivor.proc.pid, 15,
                             "the surviving replica to take the sequencer lease")
        _wait_for(lambda: len(acked) > before + 50, 30, "translations continuing")
    finally:
        stop.set()
        loader.join()
    assert set(failures) <= {grpc.StatusCode.UNAVAILABLE}, failures
    _wait_for(lambda: cluster.rows(
        "SELECT count(*) FROM access_records WHERE leaf_index IS NULL")[0][0] == 0, 15,
        "every record integrated")
    rows = cluster.rows("SELECT leaf_index, leaf FROM access_records ORDER BY leaf_index")
    assert [i for i, _ in rows] == list(range(len(rows))), "leaf indices 0..n-1, each once"
    # exchanges only: ISSUE and POLICY records carry no exchange id (docs/DISCLOSURE.md)
    decoded = [AccessRecord.decode(bytes(leaf)) for _, leaf in rows]
    logged = [r.exchange_id for r in decoded if r.kind in (AccessKind.TRANSLATE,
                                                           AccessKind.RESOLVE)]
    assert len(logged) == len(set(logged)), "no record integrated twice"
    missing = acked - set(logged)
    assert not missing, f"{len(missing)} acknowledged translations have no leaf"
    verify = subprocess.run(
        [sys.executable, "-m", "symbolsvc", "audit", "verify", "--deployment", str(cluster.dir),
         "--target", survivor.address], capture_output=True, text=True, timeout=300)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    print(f"takeover {takeover:.1f} s after kill -9; {len(acked)} translations acknowledged, "
          f"{len(failures)} UNAVAILABLE, {len(rows)} leaves")
    broker.close()


def test_a_watch_on_one_replica_gets_what_another_integrates(tmp_path: Path) -> None:
    """Issue 11: watches across replicas through LISTEN/NOTIFY. Replica A sequences (its
    lease is long, so B can never take it); replica B reads the store on its own only once
    an hour, both as a sequencer (``integrate_interval_ms``) and as a watch's safety net
    (``watch_poll_ms``). A watch open and waiting on B therefore sees a record integrated by
    A promptly only if A's commit notifies B: no polling can deliver it within the bound."""
    require_postgres()
    with fresh_database() as url:
        config = init_deployment(tmp_path / "dep", url, AGENCIES)
        base = config.read_text()
        config.write_text(base.replace("[access_log]\n", "[access_log]\nlease_ms = 600000\n", 1))
        config_b = config.with_name("config.b.toml")
        config_b.write_text(base.replace(
            "[access_log]\n", "[access_log]\nintegrate_interval_ms = 3600000\n"
            "lease_ms = 7200000\nwatch_poll_ms = 3600000\nmax_merge_delay = 7200\n", 1))
        a = Replica(config, tmp_path / "a.log")
        b = None
        try:
            b = Replica(config_b, tmp_path / "b.log")
            dep = Deployment(tmp_path / "dep")
            c = Cluster(url, tmp_path / "dep")
            (holder,) = c.rows("SELECT holder FROM sequencer_lease WHERE id = 1")[0]
            assert f"/{a.proc.pid}/" in holder, holder  # A sequences, B never does
            n_mine, n_other = number_for(7001), number_for(7002)
            with dep.agency("portal", a.address) as portal_agency:
                portal_agency.issue(n_mine)  # the portal holds this subject
            symbols = {}
            for agency in AGENCIES:
                with dep.agency(agency, a.address) as client:
                    symbols[agency] = {n: client.issue(n).symbol for n in (n_mine, n_other)}

            def translate(n: str, exchange: str) -> None:
                with dep.broker(a.address) as broker:
                    broker.translate("city-a", symbols["city-a"][n], "city-b",
                                     "demo-exchange", "demo-record", exchange)

            translate(n_other, "w-other")  # a record about someone the portal does not hold
            _wait_for(lambda: c.rows("SELECT COUNT(*) FROM access_records WHERE leaf_index "
                                     "IS NULL")[0][0] == 0, 60, "A to integrate the record")
            items: list[object] = []
            first = threading.Event()
            arrived = threading.Event()

            def watch() -> None:
                with dep.portal(b.address) as portal:
                    for item in portal.watch(timeout=300):
                        items.append(item)
                        first.set()
                        # the subject's ISSUE records come first; wait for the exchange
                        if item.HasField("record") and item.record.exchange_id == "w-mine":
                            arrived.set()
                            return

            t = threading.Thread(target=watch, daemon=True)
            t.start()
            # The watch's first step read the log (a progress item past the other record):
            # it is now waiting on B's notifier.
            assert first.wait(120), "the watch on B never started"
            assert not arrived.is_set()
            translate(n_mine, "w-mine")
            assert arrived.wait(120), "B's watch never saw the record A integrated"
            record = items[-1].record  # type: ignore[attr-defined]
            assert record.exchange_id == "w-mine"
            assert record.subject_symbol == symbols_of_portal(dep, a.address, n_mine)
        finally:
            if b is not None:
                b.stop()
            a.stop()


def symbols_of_portal(dep: Deployment, address: str, n: str) -> str:
    with dep.agency("portal", address) as portal_agency:
        return portal_agency.issue(n).symbol
