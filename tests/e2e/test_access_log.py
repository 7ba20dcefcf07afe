"""The access log end to end: a real `symbolsvc serve` over mTLS (docs/ACCESS_LOG.md).

Checkpoints verify with the production verifier and with the independent one of
tests/helpers/notes.py; proofs verify with symbolsvc.log.verification's RFC 9162
verifiers; the leaves ListEntries returns hash to the checkpoint's root. Crash
recovery (kill -9), the portal's watch across reconnects and restarts, roles,
and two server processes (two sequencers) on one registry. Every test runs on both
registry backends (SQLite, PostgreSQL).
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from helpers import NumberSource, RegistryReader, ServerProcess, StartServer
from helpers.notes import independent_verify
from symbolsvc_client.channel import Deployment
from symbolsvc_client.clients import AuditorClient, CallError, PortalClient

from symbolsvc.log.checkpoint import parse_checkpoint_body, verify_checkpoint
from symbolsvc.log.hashing import leaf_hash, root_from_leaf_hashes
from symbolsvc.log.verification import verify_consistency, verify_inclusion
from symbolsvc.records import AccessRecord
from symbolsvc.v1 import disclosure_service_pb2 as disclosure_pb

ORIGIN = "symbolsvc.local/access-log"
# helpers.TEST_POLICY: pension-service may obtain resident-tax-income from the
# municipalities for survivor-pension.
REQUESTER, PROVIDERS = "pension-service", ("city-chiyoda", "city-minato")
AGENCIES = (REQUESTER, *PROVIDERS)
OFFICE, ITEM = "survivor-pension", "resident-tax-income"
INTERVAL_MS = 50  # the test servers that restart integrate fast, so the tests wait little
LEASE_MS = 600  # and a crashed sequencer's lease expires quickly
FAST_LOG = {"access_log": {"integrate_interval_ms": INTERVAL_MS, "lease_ms": LEASE_MS}}
POLL = 0.05


class LogClients:
    """Every principal's client for one server, and what these tests need of them."""

    def __init__(self, dep: Deployment, address: str, numbers: NumberSource) -> None:
        self.dep = dep
        self.target = address
        self.numbers = numbers
        self.broker = dep.broker(address)
        self.portal = dep.portal(address)
        self.auditor = dep.auditor(address)
        self.agencies = {a: dep.agency(a, address) for a in AGENCIES}
        self.vkey = (dep.pki / "log.vkey").read_text().strip()

    def close(self) -> None:
        for c in (self.broker, self.portal, self.auditor, *self.agencies.values()):
            c.close()

    def subject(self, *, portal: bool = True) -> dict[str, str]:
        """A new subject issued to every agency (and the portal unless told not to);
        its number under the key "number"."""
        number = self.numbers.one()
        out = {a: c.issue(number).symbol for a, c in self.agencies.items()}
        if portal:
            out["portal"] = self.portal.agency.issue(number).symbol
        out["number"] = number
        return out

    def translate(self, symbols: dict[str, str], exchange_id: str,
                  provider: str = PROVIDERS[0]) -> int:
        reply = self.broker.translate(REQUESTER, symbols[REQUESTER], provider, OFFICE, ITEM,
                                      exchange_id)
        assert reply.provider_symbol == symbols[provider]
        return reply.record_id

    def checkpoint(self) -> tuple[str, int, bytes]:
        note = self.auditor.checkpoint()
        cp = verify_checkpoint(note, self.vkey, ORIGIN)
        return note, cp.size, cp.root_hash

    def wait_for_size(self, size: int, timeout: float = 20) -> tuple[str, int, bytes]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                note, n, root = self.checkpoint()
            except CallError as err:
                if err.code != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                n = -1
            if n >= size:
                return note, n, root
            if time.monotonic() > deadline:
                raise AssertionError(f"the log did not reach {size} leaves (at {n})")
            time.sleep(POLL)

    def all_leaves(self, size: int) -> list[bytes]:
        leaves: list[bytes] = []
        while len(leaves) < size:
            got = self.auditor.entries(len(leaves), size)
            assert got, "ListEntries returned nothing below the checkpoint's size"
            for e in got:
                assert e.index == len(leaves)
                leaves.append(e.leaf)
        return leaves


@pytest.fixture(scope="module")
def live(dep: Deployment, server: ServerProcess, numbers: NumberSource) -> Iterator[LogClients]:
    """Clients of the shared server (default integration interval: 200 ms)."""
    clients = LogClients(dep, server.address, numbers)
    yield clients
    clients.close()


@pytest.fixture
def fast_server(fresh_deployment: Path, start_server: StartServer) -> ServerProcess:
    """A server of its own (a fresh registry) that integrates every 50 ms."""
    return start_server(fresh_deployment, FAST_LOG)


def code_of(fn: Callable[[], Any]) -> grpc.StatusCode:
    with pytest.raises(CallError) as info:
        fn()
    return info.value.code


# ------------------------------------------------------------------- checkpoints


def test_checkpoint_verifies_with_both_verifiers(live: LogClients) -> None:
    s = live.subject()
    for i in range(5):
        live.translate(s, f"cp-{i}")
    note, size, root = live.wait_for_size(5)
    text = independent_verify(note, live.vkey)  # C2SP text alone, no production code
    origin, size_line, root_line = text.splitlines()
    assert (origin, int(size_line), base64.b64decode(root_line)) == (ORIGIN, size, root)
    assert parse_checkpoint_body(text).size == size


def test_entries_proofs_and_consistency(live: LogClients) -> None:
    s = live.subject()
    seen: list[tuple[int, bytes]] = []
    for rnd in range(4):
        before = live.checkpoint()[1]  # read first: the sequencer may integrate at once
        for i in range(7):
            live.translate(s, f"round-{rnd}-{i}")
        _, size, root = live.wait_for_size(before + 7)
        seen.append((size, root))
    _, size, root = live.wait_for_size(seen[-1][0])
    leaves = live.all_leaves(size)
    hashes = [leaf_hash(leaf) for leaf in leaves]
    assert root_from_leaf_hashes(hashes) == root  # exact leaves
    for i, h in enumerate(hashes):
        verify_inclusion(h, i, size, live.auditor.inclusion_proof(i, size), root)
    for (m, root_m), (n, root_n) in itertools.pairwise(seen):
        verify_consistency(m, n, live.auditor.consistency_proof(m, n), root_m, root_n)
        # and an inclusion proof in an older, smaller checkpoint's tree
        verify_inclusion(hashes[m - 1], m - 1, m, live.auditor.inclusion_proof(m - 1, m), root_m)
    for leaf in leaves:
        AccessRecord.decode(leaf)  # every leaf is canonical


@pytest.mark.parametrize("call", [
    lambda a, n: a.inclusion_proof(n, n),
    lambda a, n: a.inclusion_proof(0, n + 10**6),  # beyond the latest checkpoint
    lambda a, n: a.consistency_proof(0, n),
    lambda a, n: a.consistency_proof(2, 1),
    lambda a, n: a.consistency_proof(1, n + 10**6),
    lambda a, n: a.entries(3, 3),
    lambda a, n: a.entries(n + 10**6, n + 10**6 + 5),
])
def test_bad_audit_requests(live: LogClients, call: Callable[[Any, int], Any]) -> None:
    live.translate(live.subject(), f"bad-requests-{uuid.uuid4()}")  # one exchange each
    _, size, _ = live.wait_for_size(1)
    assert code_of(lambda: call(live.auditor, size)) == grpc.StatusCode.INVALID_ARGUMENT


def test_entries_page_is_bounded(live: LogClients) -> None:
    _, size, _ = live.wait_for_size(1)
    # start at the checkpoint's size is the end of the log, not an error (empty unless
    # the log grew meanwhile)
    assert all(e.index >= size for e in live.auditor.entries(size, size + 10))
    assert min(size, 1000) <= len(live.auditor.entries(0, 10**6)) <= 1000


def test_leaves_hold_no_number_and_no_symbol(live: LogClients) -> None:
    s = live.subject()
    number = s.pop("number").encode()
    before = live.checkpoint()[1]  # read first: the sequencer may integrate at once
    live.translate(s, "privacy", provider=PROVIDERS[1])
    live.broker.resolve(REQUESTER, s[REQUESTER], OFFICE, ITEM, "privacy-resolve")
    _, size, _ = live.wait_for_size(before + 2)
    secrets = [number, *(sym.encode() for sym in s.values())]
    for sym in s.values():  # the symbol's raw HMAC as well as its text
        body = sym.split(".", 1)[1].upper()
        secrets.append(base64.b32decode(body + "=" * (-len(body) % 8))[:32])
    for leaf in live.all_leaves(size):
        for secret in secrets:
            assert secret not in leaf


# ------------------------------------------------------------------------ roles


def test_only_the_auditor_reads_the_audit_log(live: LogClients) -> None:
    d = live.dep
    for name in (*AGENCIES, "broker", "portal"):
        intruder = AuditorClient(d.channel(name, live.target))
        assert code_of(intruder.checkpoint) == grpc.StatusCode.PERMISSION_DENIED
        assert code_of(lambda c=intruder: c.entries(0, 1)) == grpc.StatusCode.PERMISSION_DENIED
        intruder.close()


def test_portal_reads_only_through_its_own_symbols(live: LogClients) -> None:
    s = live.subject()
    rid = live.translate(s, "own-symbols")
    other = live.subject()
    other_rid = live.translate(other, "someone-else")
    # another agency's symbol for the same subject is not the portal's: NOT_FOUND
    for sym in (s[REQUESTER], s[PROVIDERS[0]]):
        assert code_of(lambda x=sym: live.portal.list_records(x)) == grpc.StatusCode.NOT_FOUND
        assert code_of(lambda x=sym: live.portal.record_proof(x, rid)) == \
            grpc.StatusCode.NOT_FOUND
    # a record about another subject, through the portal's own symbol: NOT_FOUND
    assert code_of(lambda: live.portal.record_proof(s["portal"], other_rid)) == \
        grpc.StatusCode.NOT_FOUND
    # an agency cannot call the portal's service
    agency_as_portal = PortalClient(live.dep.channel(REQUESTER, live.target))
    assert code_of(lambda: agency_as_portal.list_records(s[REQUESTER])) == \
        grpc.StatusCode.PERMISSION_DENIED
    agency_as_portal.close()


def test_record_proof_verifies_against_the_signed_checkpoint(live: LogClients) -> None:
    s = live.subject()
    ids = [live.translate(s, f"proof-{i}") for i in range(3)]
    live.broker.resolve(REQUESTER, s[REQUESTER], OFFICE, ITEM, "proof-resolve")
    deadline = time.monotonic() + 20
    while True:
        records = live.portal.all_records(s["portal"])
        if all(r.integrated for r in records) or time.monotonic() > deadline:
            break
        time.sleep(POLL)
    assert [r.record_id for r in records][1:] == sorted(ids, reverse=True)  # newest first
    assert all(r.integrated and r.subject_symbol == s["portal"] for r in records)
    for r in records:
        p = live.portal.record_proof(s["portal"], r.record_id)
        cp = verify_checkpoint(p.checkpoint, live.vkey, ORIGIN)
        assert p.leaf_index == r.leaf_index
        verify_inclusion(leaf_hash(p.leaf), p.leaf_index, cp.size, list(p.hashes), cp.root_hash)
        decoded = AccessRecord.decode(p.leaf)
        assert decoded.exchange_id == r.exchange_id
    assert code_of(lambda: live.portal.record_proof(s["portal"], 10**12)) == \
        grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: live.portal.record_proof("k1.bad", ids[0])) == \
        grpc.StatusCode.INVALID_ARGUMENT


def test_bad_watch_cursor(live: LogClients) -> None:
    assert code_of(lambda: next(live.portal.watch("X12", timeout=5))) == \
        grpc.StatusCode.INVALID_ARGUMENT


# ---------------------------------------------------------- watch across restarts


class Watcher:
    """Reads a portal's watch stream into `records` in a thread, keeping the cursor."""

    def __init__(self, clients: LogClients, cursor: str = "") -> None:
        self.cursor = cursor
        self.records: list[Any] = []
        self.error: CallError | None = None
        self._call = clients.portal.stub.WatchAccessRecords(
            disclosure_pb.WatchAccessRecordsRequest(cursor=cursor))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for msg in self._call:
                if msg.HasField("record"):
                    self.records.append(msg.record)
                self.cursor = msg.cursor
        except grpc.RpcError as err:
            self.error = CallError.from_rpc_error(err)

    def wait_for(self, n: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.records) < n:
            assert time.monotonic() < deadline, f"watch got {len(self.records)} of {n}"
            time.sleep(0.02)

    def stop(self) -> None:
        self._call.cancel()
        self._thread.join(10)


def test_watch_resumes_without_loss_or_duplicate_across_restart(
    fast_server: ServerProcess, numbers: NumberSource
) -> None:
    server, dep = fast_server, fast_server.deployment
    c = LogClients(dep, server.address, numbers)
    held = [c.subject(), c.subject()]
    not_held = c.subject(portal=False)
    expected: dict[int, str] = {}
    got: list[Any] = []

    def burst(tag: str, n: int) -> None:
        for i in range(n):
            s = held[i % 2]
            expected[c.translate(s, f"{tag}-{i}")] = s["portal"]
            c.translate(not_held, f"{tag}-x-{i}")  # not the portal's subject: never streamed

    def settle(w: Watcher) -> None:
        w.wait_for(len(expected) - len(got))
        time.sleep(0.3)  # a duplicate, if any, would arrive now

    try:
        burst("a", 10)
        w = Watcher(c)
        w.wait_for(4)
        w.stop()  # disconnect mid-stream
        got += w.records
        burst("b", 6)
        w = Watcher(c, w.cursor)
        settle(w)
        burst("c", 4)  # acknowledged, perhaps not yet integrated nor streamed
        server.stop()  # graceful: final integration; the stream ends UNAVAILABLE
        w.stop()
        assert w.error is not None and w.error.code == grpc.StatusCode.UNAVAILABLE
        got += w.records
        c.close()

        server.start()
        c = LogClients(dep, server.address, numbers)
        burst("d", 6)
        w = Watcher(c, w.cursor)
        settle(w)
        burst("e", 4)
        server.kill()  # kill -9 with the stream open
        w.stop()
        got += w.records
        c.close()

        server.start()
        c = LogClients(dep, server.address, numbers)
        w = Watcher(c, w.cursor)
        settle(w)
        w.stop()
        got += w.records
        ids = [r.record_id for r in got]
        assert len(ids) == len(set(ids)), "a record was streamed twice"
        assert set(ids) == set(expected), "records were lost, or foreign ones streamed"
        leaf_order = [r.leaf_index for r in got]
        assert leaf_order == sorted(leaf_order)
        for r in got:
            assert r.subject_symbol == expected[r.record_id] and r.integrated
    finally:
        c.close()


# ------------------------------------------------------------------ crash (kill -9)


def test_kill9_during_translations_loses_no_acknowledged_record(
    fast_server: ServerProcess, numbers: NumberSource
) -> None:
    server, dep = fast_server, fast_server.deployment
    c = LogClients(dep, server.address, numbers)
    s = c.subject()
    acked: list[str] = []
    stop = threading.Event()

    def translate_forever(tag: int) -> None:
        i = 0
        while not stop.is_set():
            xid = f"crash-{tag}-{i}"
            try:
                c.translate(s, xid)
            except CallError:
                return  # the server died mid-call: not acknowledged
            acked.append(xid)
            i += 1

    workers = [threading.Thread(target=translate_forever, args=(t,), daemon=True)
               for t in range(4)]
    for t in workers:
        t.start()
    # watch checkpoints go by; keep the last one seen before the crash
    last_seen = c.wait_for_size(1)
    while len(acked) < 300:
        last_seen = c.checkpoint()
        time.sleep(0.01)
    server.kill()
    stop.set()
    for t in workers:
        t.join(30)
    c.close()

    server.start()
    c = LogClients(dep, server.address, numbers)
    try:
        _, before_size, before_root = verify_parts(last_seen, c.vkey)
        _, size, root = c.wait_for_size(len(acked))
        verify_consistency(before_size, size, c.auditor.consistency_proof(before_size, size),
                           before_root, root)
        leaves = c.all_leaves(size)
        assert root_from_leaf_hashes([leaf_hash(x) for x in leaves]) == root
        xids = [AccessRecord.decode(x).exchange_id for x in leaves]
        assert len(xids) == len(set(xids)), "a record was integrated twice"
        assert set(acked) <= set(xids), "an acknowledged translation has no leaf"
    finally:
        c.close()


def verify_parts(seen: tuple[str, int, bytes], vkey: str) -> tuple[str, int, bytes]:
    note = seen[0]
    cp = verify_checkpoint(note, vkey, ORIGIN)
    return note, cp.size, cp.root_hash


# ------------------------------------------- two sequencers, one registry


def test_two_servers_never_integrate_a_record_twice(
    fresh_deployment: Path, start_server: StartServer, numbers: NumberSource
) -> None:
    one, two = start_server(fresh_deployment, FAST_LOG), start_server(fresh_deployment, FAST_LOG)
    dep = one.deployment
    c1, c2 = LogClients(dep, one.address, numbers), LogClients(dep, two.address, numbers)
    subjects = [c1.subject() for _ in range(4)]
    acked: list[str] = []
    lock = threading.Lock()

    def drive(c: LogClients, tag: str) -> None:
        for i in range(120):
            xid = f"{tag}-{i}"
            c.translate(subjects[i % 4], xid)
            with lock:
                acked.append(xid)

    # a watcher on each server: one wakes in-process, the other by polling
    watchers = [Watcher(c1), Watcher(c2)]
    threads = [threading.Thread(target=drive, args=(c, t)) for c, t in ((c1, "one"), (c2, "two"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        _, size, root = c2.wait_for_size(len(acked))
        assert size == len(acked)
        leaves = c1.all_leaves(size)
        assert root_from_leaf_hashes([leaf_hash(x) for x in leaves]) == root
        xids = [AccessRecord.decode(x).exchange_id for x in leaves]
        assert sorted(xids) == sorted(acked)
        for w in watchers:
            w.wait_for(len(acked))
        time.sleep(0.3)
        for w in watchers:
            assert sorted(r.exchange_id for r in w.records) == sorted(acked)
        # the leader goes away (kill -9): the other takes over after the lease expires
        db = RegistryReader(fresh_deployment)
        holder = db.one("SELECT holder FROM sequencer_lease")[0]
        pid = int(holder.split("/")[1])
        assert one.proc is not None
        leader, follower = (one, c2) if pid == one.proc.pid else (two, c1)
        leader.kill()
        follower.translate(subjects[0], "after-failover")
        _, size2, root2 = follower.wait_for_size(size + 1, timeout=20)
        verify_consistency(size, size2, follower.auditor.consistency_proof(size, size2),
                           root, root2)
        assert db.one("SELECT COUNT(*), COUNT(DISTINCT leaf_index) FROM access_records "
                      "WHERE leaf_index IS NOT NULL") == (size2, size2)
        db.close()
    finally:
        for w in watchers:
            w.stop()
        for c in (c1, c2):
            c.close()
