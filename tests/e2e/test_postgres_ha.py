"""PostgreSQL high availability: a primary with a synchronous standby, kill -9, promote
(issue 16; docs/SCALING.md §1a).

Both servers are started by the test from Debian's PostgreSQL 15 binaries (separate
data directories and ports). The service's ``[storage] url`` is libpq's multi-host
form with ``target_session_attrs=read-write``, so after the promotion new connections
find the new primary by themselves. Nothing here depends on speed: every wait is a
poll for a condition with a generous bound, and "the primary dies while calls are in
flight" is true by construction (the loaders run until they see the failure).
"""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from helpers import number_for
from helpers.postgres import PrivateCluster, Replica, init_deployment
from symbolsvc_client.channel import Deployment
from symbolsvc_client.clients import AuditorClient, CallError

from symbolsvc.log.checkpoint import verify_checkpoint
from symbolsvc.log.hashing import leaf_hash, root_from_leaf_hashes
from symbolsvc.log.verification import verify_consistency, verify_inclusion
from symbolsvc.records import AccessRecord
from symbolsvc.registry.migrations import pg_migrate
from symbolsvc.registry.postgres import connect_sync
from symbolsvc.registry.url import PgTarget

pytestmark = pytest.mark.slow
AGENCIES = ["city-a", "city-b"]
ORIGIN = "symbolsvc.local/access-log"


class Pair:
    """A primary and its synchronous hot standby, each a private PostgreSQL 15 server."""

    def __init__(self) -> None:
        self.primary = PrivateCluster(settings={"synchronous_standby_names": "'standby1'",
                                                "synchronous_commit": "on"})
        try:
            self.standby = PrivateCluster(standby_of=self.primary, name="standby1")
        except BaseException:
            self.primary.destroy()
            raise
        with connect_sync(PgTarget.parse(self.primary.url)) as conn:
            conn.execute('CREATE DATABASE "symbolsvc"')
        with connect_sync(PgTarget.parse(self.url_of(self.primary))) as conn:
            pg_migrate(conn, "failover test")
            # The standby is synchronous from here on: every commit waits for its flush.
            _wait_for(lambda: conn.execute(
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = "
                "'standby1' AND sync_state = 'sync'").fetchone() == (1,), 60,
                "the standby to be synchronous")

    @staticmethod
    def url_of(server: PrivateCluster, extra: str = "") -> str:
        return f"postgresql://postgres@127.0.0.1:{server.port}/symbolsvc{extra}"

    @property
    def service_url(self) -> str:
        """Both hosts; libpq connects to whichever accepts writes now."""
        return (f"postgresql://postgres@127.0.0.1:{self.primary.port},127.0.0.1:"
                f"{self.standby.port}/symbolsvc?target_session_attrs=read-write"
                "&connect_timeout=2")

    def destroy(self) -> None:
        self.standby.destroy()
        self.primary.destroy()


@pytest.fixture
def pair() -> Iterator[Pair]:
    why = PrivateCluster.available()
    if why:
        pytest.skip(f"{why}; the failover drill starts its own primary and standby")
    p = Pair()
    try:
        yield p
    finally:
        p.destroy()


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Load:
    """Unary issues and translations from two threads; what was acknowledged, when."""

    def __init__(self, dep: Deployment, address: str, symbols: list[str]) -> None:
        self.agency = dep.agency("city-a", address)
        self.broker = dep.broker(address)
        self.symbols = symbols
        self.issued: dict[str, str] = {}
        self.translated: set[str] = set()
        self.records: dict[int, str] = {}  # acknowledged record id -> exchange id
        self.receipts: list[str] = []  # receipts of acknowledged translations (if any)
        self.successes: list[float] = []
        self.failures: list[tuple[float, grpc.StatusCode]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._issue),
                        threading.Thread(target=self._translate)]
        self.lock = threading.Lock()

    def _done(self, ok: bool, code: grpc.StatusCode | None = None) -> None:
        with self.lock:
            if ok:
                self.successes.append(time.monotonic())
            else:
                assert code is not None
                self.failures.append((time.monotonic(), code))

    def _issue(self) -> None:
        i = 0
        while not self.stop.is_set():
            number = number_for(80_000 + i)
            i += 1
            try:
                self.issued[number] = self.agency.issue(number).symbol
                self._done(True)
            except CallError as err:
                self._done(False, err.code)
                time.sleep(0.02)

    def _translate(self) -> None:
        i = 0
        while not self.stop.is_set():
            exchange = f"fo-{i}"
            i += 1
            try:
                reply = self.broker.translate("city-a", self.symbols[i % len(self.symbols)],
                                              "city-b", "demo-exchange", "demo-record",
                                              exchange)
                self.translated.add(exchange)
                self.records[reply.record_id] = exchange
                if reply.receipt:
                    self.receipts.append(reply.receipt)
                self._done(True)
            except CallError as err:
                self._done(False, err.code)
                time.sleep(0.02)

    def successes_after(self, t: float) -> int:
        with self.lock:
            return sum(1 for s in self.successes if s > t)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()
        self.agency.close()
        self.broker.close()


def test_failover_kill_9_primary_promote_standby_nothing_acknowledged_lost(
    pair: Pair, tmp_path: Path
) -> None:
    config = init_deployment(tmp_path / "dep", pair.service_url, AGENCIES)
    config.write_text(config.read_text().replace(
        "[access_log]\n", "[access_log]\nintegrate_interval_ms = 100\nlease_ms = 1500\n", 1))
    dep = Deployment(tmp_path / "dep")
    replica = Replica(config, tmp_path / "replica.log")
    try:
        subjects = [number_for(9000 + i) for i in range(30)]
        with dep.agency("city-a", replica.address) as a, \
                dep.agency("city-b", replica.address) as b:
            symbols = [r.issued.symbol for r in a.issue_batch(subjects)]
            b.issue_batch(subjects)
        with Load(dep, replica.address, symbols) as load:
            _wait_for(lambda: len(load.issued) > 30 and len(load.translated) > 30, 120,
                      "load to start")
            crashed = time.monotonic()
            pair.primary.crash()
            # Callers see the outage before the standby is promoted: true by construction.
            _wait_for(lambda: len(load.failures) >= 2, 60, "calls failing after the crash")
            promoted_at = time.monotonic()
            pair.standby.promote()
            promoted = time.monotonic()
            _wait_for(lambda: load.successes_after(promoted) > 40, 120,
                      "calls succeeding against the promoted standby")
        first_after = min(s for s in load.successes if s > promoted_at)
        codes = {code for _, code in load.failures}
        assert codes == {grpc.StatusCode.UNAVAILABLE}, codes
        new = PgTarget.parse(pair.url_of(pair.standby))
        with connect_sync(new) as conn:
            stored = {s for (s,) in conn.execute(
                "SELECT symbol FROM holdings WHERE agency = 'city-a' AND NOT released")}
            lost = [n for n, s in load.issued.items() if s not in stored]
            assert not lost, f"{len(lost)} acknowledged issues missing after the failover"
            _wait_for(lambda: conn.execute("SELECT count(*) FROM access_records WHERE "
                                           "leaf_index IS NULL").fetchone() == (0,), 120,
                      "every record integrated on the new primary")
            rows = conn.execute(
                "SELECT id, leaf_index, leaf FROM access_records ORDER BY leaf_index").fetchall()
        assert [i for _, i, _ in rows] == list(range(len(rows))), "leaf indices 0..n-1, once"
        logged = {AccessRecord.decode(bytes(leaf)).exchange_id for _, _, leaf in rows}
        missing = load.translated - logged
        assert not missing, f"{len(missing)} acknowledged translations have no record"
        by_id = {int(i): AccessRecord.decode(bytes(leaf)).exchange_id for i, _, leaf in rows}
        wrong = {r: x for r, x in load.records.items() if by_id.get(r) != x}
        assert not wrong, f"{len(wrong)} acknowledged record ids missing or not theirs"
        # Every receipt promises a leaf hash (docs/ACCESS_LOG.md): each one is in the log.
        hashes = {base64.b64encode(leaf_hash(bytes(leaf))).decode() for _, _, leaf in rows}
        unkept = [r for r in load.receipts if not hashes & set(r.splitlines())]
        assert not unkept, f"{len(unkept)} receipts name a leaf the new primary lacks"
        verify = subprocess.run(
            [sys.executable, "-m", "symbolsvc", "audit", "verify", "--deployment",
             str(tmp_path / "dep"), "--target", replica.address],
            capture_output=True, text=True, timeout=600)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        if load.receipts:  # the log's signed promises, checked independently
            file = tmp_path / "receipts.txt"
            file.write_text("\n\n".join(load.receipts))
            kept = subprocess.run(
                [sys.executable, "-m", "symbolsvc", "audit", "receipts", "--deployment",
                 str(tmp_path / "dep"), "--target", replica.address, str(file)],
                capture_output=True, text=True, timeout=600)
            assert kept.returncode == 0, kept.stdout + kept.stderr
        print(f"failover: {first_after - crashed:.2f} s from kill -9 to the first success "
              f"(of which {promoted_at - crashed:.2f} s until the test saw failures and "
              f"promoted, pg_ctl promote {promoted - promoted_at:.2f} s, first success "
              f"{first_after - promoted:.2f} s after it returned); "
              f"{len(load.issued)} issues and {len(load.translated)} translations "
              f"acknowledged ({len(load.receipts)} receipts), {len(load.failures)} UNAVAILABLE")
    finally:
        replica.stop()


# -- read scaling: portal and auditor reads from the hot standby ------------------------


def _size(auditor: AuditorClient) -> int:
    return int(auditor.checkpoint().split("\n")[1])


def _with_standby(config: Path, name: str, read_url: str, max_lag_ms: int) -> Path:
    out = config.with_name(name)
    out.write_text(config.read_text().replace(
        "[storage]\n", f'[storage]\nread_url = "{read_url}"\nread_max_lag_ms = {max_lag_ms}\n',
        1))
    out.chmod(0o600)
    return out


def test_standby_reads_bounded_staleness_and_proofs_against_its_own_checkpoint(
    pair: Pair, tmp_path: Path
) -> None:
    """Replica ``lax`` may read an hour-stale standby, ``strict`` at most 400 ms stale.
    With the standby's replay paused (stale by construction), ``lax`` serves the
    standby's own older checkpoint, with proofs that verify against it, and ``strict``
    the primary's; after resuming, ``lax`` catches up; a stopped standby fails nothing."""
    config = init_deployment(tmp_path / "dep", pair.service_url, AGENCIES)
    config.write_text(config.read_text().replace(
        "[access_log]\n", "[access_log]\nintegrate_interval_ms = 100\nlease_ms = 1500\n", 1))
    standby_url = pair.url_of(pair.standby)
    lax = Replica(_with_standby(config, "lax.toml", standby_url, 3_600_000),
                  tmp_path / "lax.log")
    strict = Replica(_with_standby(config, "strict.toml", standby_url, 400),
                     tmp_path / "strict.log")
    dep = Deployment(tmp_path / "dep")
    vkey = (dep.pki / "log.vkey").read_text().strip()
    clients = []
    try:
        number = number_for(4242)
        a, b, broker = dep.agency("city-a", lax.address), dep.agency("city-b", lax.address), \
            dep.broker(lax.address)
        portals = {r: dep.portal(r.address) for r in (lax, strict)}
        auditors = {r: dep.auditor(r.address) for r in (lax, strict)}
        clients = [a, b, broker, *portals.values(), *auditors.values()]
        mine = portals[lax].agency.issue(number).symbol
        symbol = a.issue(number).symbol
        b.issue(number)

        def translate(tag: str, n: int) -> None:
            for i in range(n):
                broker.translate("city-a", symbol, "city-b", "demo-exchange", "demo-record",
                                 f"{tag}-{i}")

        primary = connect_sync(PgTarget.parse(pair.url_of(pair.primary)))
        standby = connect_sync(PgTarget.parse(standby_url))
        clients.append(primary)
        clients.append(standby)

        def top(conn: Any) -> int:
            return int(conn.execute("SELECT COALESCE(MAX(tree_size), 0) FROM checkpoints")
                       .fetchone()[0])

        def records(conn: Any) -> int:
            return int(conn.execute("SELECT count(*) FROM access_records").fetchone()[0])

        translate("before", 3)
        _wait_for(lambda: top(primary) == records(primary) >= 3, 60, "records integrated")
        _wait_for(lambda: top(standby) == top(primary), 60, "the standby to replay them")
        _wait_for(lambda: _size(auditors[lax]) == top(primary), 60, "lax to see them")
        old = top(primary)

        standby.execute("SELECT pg_wal_replay_pause()")
        translate("after", 3)
        _wait_for(lambda: top(primary) == records(primary) >= old + 3, 60,
                  "the new records integrated on the primary")
        new = top(primary)
        assert top(standby) == old, "replay is paused"

        # lax: the standby's own checkpoint, and proofs against it.
        assert _size(auditors[lax]) == old
        cp = verify_checkpoint(auditors[lax].checkpoint(), vkey, ORIGIN)
        leaves = [leaf_hash(e.leaf) for e in auditors[lax].entries(0, old)]
        assert root_from_leaf_hashes(leaves) == cp.root_hash
        for i in range(old):
            verify_inclusion(leaves[i], i, old, auditors[lax].inclusion_proof(i, old),
                             cp.root_hash)
        listed = portals[lax].all_records(mine)
        # (ISSUE records, with no exchange id, are listed too: only exchanges counted)
        assert {r.exchange_id for r in listed if r.exchange_id} == \
            {f"before-{i}" for i in range(3)}
        for r in listed:
            p = portals[lax].record_proof(mine, r.record_id)
            pcp = verify_checkpoint(p.checkpoint, vkey, ORIGIN)
            assert pcp.size == old
            verify_inclusion(leaf_hash(p.leaf), p.leaf_index, old, list(p.hashes), pcp.root_hash)
        with pytest.raises(CallError) as refused:  # a size the standby has no checkpoint of
            auditors[lax].inclusion_proof(0, new)
        assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT

        # strict: the standby is over its bound by construction, so the primary answers.
        _wait_for(lambda: _size(auditors[strict]) == new, 60, "strict to read the primary")
        cp_new = verify_checkpoint(auditors[strict].checkpoint(), vkey, ORIGIN)
        verify_consistency(old, new, auditors[strict].consistency_proof(old, new),
                           cp.root_hash, cp_new.root_hash)
        assert len([r for r in portals[strict].all_records(mine) if r.exchange_id]) == 6

        standby.execute("SELECT pg_wal_replay_resume()")
        _wait_for(lambda: _size(auditors[lax]) >= new, 60, "lax to catch up")

        # A stopped standby fails no read: the primary answers. (Writes wait for a
        # synchronous standby, so it is started again before anything is written.)
        standby.close()
        clients.remove(standby)
        pair.standby.stop()
        try:
            assert _size(auditors[lax]) >= new
            assert len([r for r in portals[lax].all_records(mine) if r.exchange_id]) == 6
        finally:
            pair.standby.start()
    finally:
        for c in clients:
            c.close()
        lax.stop()
        strict.stop()
