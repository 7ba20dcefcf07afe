"""Signed receipts, the maximum merge delay and authenticated queued records, end to end
(docs/ACCESS_LOG.md "Receipts", docs/QUEUE_AUTH.md): a real `symbolsvc serve` over mTLS on
each registry backend.

Receipts are checked with the independent verifier of tests/helpers/receipts.py (C2SP
signed-note text alone), and found in the log by their leaf hash. Someone with database
write access is played by helpers.registry.tamper_deployment: they park the sequencer
lease, delete an acknowledged record, forge a queued row — and each is seen (health,
security log, metrics, `symbolsvc audit receipts`).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from helpers import NumberSource, ServerProcess, StartServer, wait_until
from helpers.receipts import independent_receipt, rfc9162_leaf_hash
from helpers.registry import tamper_deployment
from symbolsvc_client import CallError, Deployment

from symbolsvc.cli import main
from symbolsvc.log.checkpoint import verify_checkpoint
from symbolsvc.log.verification import verify_inclusion
from symbolsvc.v1 import broker_service_pb2 as broker_pb

ORIGIN = "symbolsvc.local/access-log"
REQUESTER, PROVIDER, OTHER = "pension-service", "city-chiyoda", "city-minato"
OFFICE, ITEM = "survivor-pension", "resident-tax-income"
DELAY = 1.0  # [access_log] max_merge_delay of the servers started here (the minimum)
FAST = {"access_log": {"integrate_interval_ms": 50, "lease_ms": 600, "max_merge_delay": DELAY}}
BROKER = "symbolsvc.v1.BrokerService"
ACCESS_LOG = "symbolsvc.access_log"
SERVING, NOT_SERVING = 1, 2
FAR = 2**62  # a lease expiry nobody reaches


def _subject(dep: Deployment, address: str, number: str) -> dict[str, str]:
    out = {}
    for agency in (REQUESTER, PROVIDER, OTHER):
        with dep.agency(agency, address) as c:
            out[agency] = c.issue(number).symbol
    return out


def _request(symbols: dict[str, str], xid: str, provider: str = PROVIDER
             ) -> broker_pb.TranslateSymbolRequest:
    return broker_pb.TranslateSymbolRequest(
        requester_agency=REQUESTER, symbol=symbols[REQUESTER], provider_agency=provider,
        office_work=OFFICE, info_item=ITEM, exchange_id=xid)


def _vkey(dep: Deployment) -> str:
    return (dep.pki / "log.vkey").read_text().strip().splitlines()[-1]


def _tree_size(dep: Deployment, address: str) -> int:
    with dep.auditor(address) as auditor:
        try:
            return verify_checkpoint(auditor.checkpoint(), _vkey(dep), ORIGIN).size
        except CallError:
            return -1


def _audit_receipts(capsys: pytest.CaptureFixture[str], server: ServerProcess, file: Path
                    ) -> tuple[int, str]:
    rc = main(["audit", "receipts", "--deployment", str(server.directory),
               "--target", server.address, str(file)])
    out, err = capsys.readouterr()
    return rc, out + err


def _events(server: ServerProcess, name: str) -> list[dict[str, object]]:
    return [e for e in map(json.loads, server.security_log_text().splitlines())
            if e.get("event") == name]


def _health(dep: Deployment, address: str, service: str) -> int:
    with dep.broker(address) as c:
        return c.health(service)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(name + " ") or line.startswith(name + "{")]
    return max(values) if values else 0.0


def test_receipts_on_every_reply_verify_independently_and_are_included(
        server: ServerProcess, dep: Deployment, numbers: NumberSource, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    s = _subject(dep, server.address, numbers.one())
    before = time.time()
    with dep.broker(server.address) as broker:
        one = broker.translate(REQUESTER, s[REQUESTER], PROVIDER, OFFICE, ITEM, "rc-1")
        batch = broker.translate_batch([_request(s, "rc-2"), _request(s, "rc-3", OTHER),
                                        _request({REQUESTER: "k1." + "a" * 52}, "rc-4")])
        resolved = broker.resolve(REQUESTER, s[REQUESTER], OFFICE, ITEM, "rc-5")
    after = time.time()
    assert batch[2].WhichOneof("outcome") == "error"  # a failed item carries no receipt
    receipts = [one.receipt, batch[0].translated.receipt, batch[1].translated.receipt,
                resolved.receipt]
    parsed = [independent_receipt(r, _vkey(dep)) for r in receipts]  # C2SP text alone
    for p in parsed:
        # the default maximum merge delay (10 s), rounded up to the second
        assert before + 10 <= p.integrate_by <= after + 11
    assert len({p.leaf_hash for p in parsed}) == 4

    # Each receipt's leaf is in the log: found by its hash, proved against a checkpoint.
    size = wait_until(lambda: (n := _tree_size(dep, server.address)) >= 0 and all(
        _found(dep, server.address, p.leaf_hash, n) for p in parsed) and n, 30,
        "the receipts' records integrated")
    with dep.auditor(server.address) as auditor:
        cp = verify_checkpoint(auditor.checkpoint(), _vkey(dep), ORIGIN)
        for p in parsed:
            index, proof = auditor.inclusion_proof_by_hash(p.leaf_hash, cp.size)
            (entry,) = auditor.entries(index, index + 1)
            assert rfc9162_leaf_hash(entry.leaf) == p.leaf_hash
            verify_inclusion(p.leaf_hash, index, cp.size, proof, cp.root_hash)
        with pytest.raises(CallError) as absent:
            auditor.inclusion_proof_by_hash(rfc9162_leaf_hash(b"never logged"), cp.size)
        assert absent.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(CallError) as short:
            auditor.inclusion_proof_by_hash(b"short", cp.size)
        assert short.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert size > 0

    file = tmp_path / "receipts.txt"
    file.write_text("\n".join(receipts))  # notes one after another, blank lines between
    rc, out = _audit_receipts(capsys, server, file)
    assert rc == 0, out
    assert "OK: all 4 receipt(s) included" in out
    # a receipt whose text was changed (another record's hash) no longer verifies
    other = base64.b64encode(rfc9162_leaf_hash(b"another record")).decode()
    forged = receipts[0].replace(base64.b64encode(parsed[0].leaf_hash).decode(), other)
    file.write_text("\n\n".join([*receipts, forged]))
    rc, out = _audit_receipts(capsys, server, file)
    assert rc == 1 and "receipt 5: INVALID: no valid signature by the log key" in out, out


def _found(dep: Deployment, address: str, leaf_hash: bytes, size: int) -> bool:
    if size <= 0:
        return False
    with dep.auditor(address) as auditor:
        try:
            auditor.inclusion_proof_by_hash(leaf_hash, size)
        except CallError as err:
            if err.code == grpc.StatusCode.NOT_FOUND:
                return False
            raise
    return True


def test_parked_lease_is_reported_and_a_deleted_acknowledged_record_caught(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()
    server = start_server(fresh_deployment, {**FAST, "server": {
        "metrics_listen": f"127.0.0.1:{port}"}})
    dep = server.deployment
    s = _subject(dep, server.address, numbers.one())
    with dep.broker(server.address) as broker:
        kept = broker.translate(REQUESTER, s[REQUESTER], PROVIDER, OFFICE, ITEM, "kept")
        wait_until(lambda: _tree_size(dep, server.address) >= 1, 30, "the first record")
        # Someone with write access parks the lease for a made-up holder ...
        assert tamper_deployment(fresh_deployment, "UPDATE sequencer_lease SET holder = ?, "
                                 "expires_us = ? WHERE id = 1", ("parked-by-insider", FAR)) == 1
        lost = broker.translate(REQUESTER, s[REQUESTER], OTHER, OFFICE, ITEM, "lost")
        assert lost.record_id and lost.receipt
        # ... and deletes the acknowledged record while it waits in the queue.
        assert tamper_deployment(fresh_deployment, "DELETE FROM access_records WHERE id = ?",
                                 (lost.record_id,)) == 1
        waiting = broker.translate(REQUESTER, s[REQUESTER], PROVIDER, OFFICE, ITEM, "waiting")

    # The stall is seen: BrokerService NOT_SERVING, the lag metric, security events.
    wait_until(lambda: _health(dep, server.address, BROKER) == NOT_SERVING, 30,
               "BrokerService NOT_SERVING while the lag exceeds the maximum merge delay")
    assert _health(dep, server.address, ACCESS_LOG) == NOT_SERVING
    assert _metric(port, "symbolsvc_log_integration_lag_seconds") > DELAY
    wait_until(lambda: _events(server, "sequencer_lease_stalled"), 30, "a stalled-lease event")
    (stalled,) = _events(server, "sequencer_lease_stalled")
    assert stalled["holder"] == "parked-by-insider"
    assert _events(server, "merge_delay_exceeded")
    assert _metric(port, "symbolsvc_log_lease_stalls_total") >= 1
    assert _tree_size(dep, server.address) == 1  # nothing integrated meanwhile

    # The lease is freed: integration resumes, health and the events say so.
    tamper_deployment(fresh_deployment, "UPDATE sequencer_lease SET expires_us = 0")
    wait_until(lambda: _health(dep, server.address, BROKER) == SERVING, 30,
               "BrokerService SERVING again")
    wait_until(lambda: _events(server, "merge_delay_restored"), 30, "a restored event")
    wait_until(lambda: _events(server, "sequencer_lease_resumed"), 30, "a resumed event")
    assert _tree_size(dep, server.address) == 2  # kept and waiting; lost is gone

    # The broker kept its receipts: `audit receipts` names the missing one.
    file = tmp_path / "receipts.txt"
    file.write_text("\n\n".join([kept.receipt, lost.receipt, waiting.receipt]))
    rc, out = _audit_receipts(capsys, server, file)
    assert rc == 1, out
    lost_hash = base64.b64encode(independent_receipt(lost.receipt, _vkey(dep)).leaf_hash)
    (line,) = [ln for ln in out.splitlines() if "MISSING" in ln]
    assert line.startswith("receipt 2 (") and lost_hash.decode() in line
    assert "1 of 3 receipt(s) not included" in out
    # once its integrate-by time has passed, the missing receipt is proof of misbehaviour
    by = independent_receipt(lost.receipt, _vkey(dep)).integrate_by
    wait_until(lambda: time.time() > by + 0.1, 30, "the lost receipt's integrate-by time")
    rc, out = _audit_receipts(capsys, server, file)
    assert rc == 1 and "the log broke its promise" in out


def test_forged_queued_row_is_quarantined_reported_and_never_integrated(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource) -> None:
    port = _free_port()
    server = start_server(fresh_deployment, {**FAST, "server": {
        "metrics_listen": f"127.0.0.1:{port}"}})
    dep = server.deployment
    s = _subject(dep, server.address, numbers.one())
    with dep.broker(server.address) as broker:
        first = broker.translate(REQUESTER, s[REQUESTER], PROVIDER, OFFICE, ITEM, "x-1")
        wait_until(lambda: _tree_size(dep, server.address) >= 1, 30, "the first record")
        # a copy of the genuine record under a new id (tag and all), and a made-up row
        tamper_deployment(fresh_deployment,
                          "INSERT INTO access_records (id, pseudonym, sealed_subject, leaf, mac)"
                          " SELECT ?, pseudonym, sealed_subject, leaf, mac FROM access_records "
                          "WHERE id = ?", (10_000, first.record_id))
        tamper_deployment(fresh_deployment,
                          "INSERT INTO access_records (id, pseudonym, sealed_subject, leaf) "
                          "VALUES (?, ?, ?, ?)", (10_001, bytes(32), b"s", b"forged"))
        wait_until(lambda: _events(server, "queued_record_quarantined"), 30,
                   "a quarantine event")
        after = broker.translate(REQUESTER, s[REQUESTER], OTHER, OFFICE, ITEM, "x-2")
    wait_until(lambda: _found(dep, server.address, independent_receipt(
        after.receipt, _vkey(dep)).leaf_hash, _tree_size(dep, server.address)), 30,
        "the next genuine record integrated")
    assert _tree_size(dep, server.address) == 2  # neither forged row entered the tree
    assert sum(int(e["count"]) for e in _events(server, "queued_record_quarantined")) == 2
    assert _metric(port, "symbolsvc_log_quarantined_records_total") == 2
    wait_until(lambda: _health(dep, server.address, ACCESS_LOG) == NOT_SERVING, 30,
               "the access log's health degraded while the quarantine is unreviewed")
    assert _health(dep, server.address, BROKER) == SERVING


def test_kill9_during_translations_every_receipt_included_after_restart(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = start_server(fresh_deployment, FAST)
    dep = server.deployment
    subjects = [_subject(dep, server.address, numbers.one()) for _ in range(4)]
    receipts: list[str] = []
    failures: list[CallError] = []
    stop = threading.Event()

    def load(k: int) -> None:
        """Open-ended: translates until the server goes away, keeping every receipt."""
        with dep.broker(server.address) as broker:
            n = 0
            while not stop.is_set():
                n += 1
                batch = [_request(subjects[(k + i) % 4], f"k9-{k}-{n}-{i}") for i in range(20)]
                try:
                    results = broker.translate_batch(batch)
                except CallError as err:
                    failures.append(err)
                    return
                receipts.extend(r.translated.receipt for r in results)

    threads = [threading.Thread(target=load, args=(k,), daemon=True) for k in range(3)]
    for t in threads:
        t.start()
    wait_until(lambda: len(receipts) >= 600, 120, "a few hundred acknowledged translations")
    server.kill()
    for t in threads:
        t.join(60)
    stop.set()
    assert failures, "the kill did not land in the middle of the load"
    kept = list(receipts)

    server.restart()
    wait_until(lambda: _tree_size(dep, server.address) >= len(kept), 60,
               "the queued records integrated after the restart")
    file = tmp_path / "receipts.txt"
    file.write_text("\n\n".join(kept))
    rc, out = _audit_receipts(capsys, server, file)
    assert rc == 0, out[-2000:]
    assert f"OK: all {len(kept)} receipt(s) included" in out
