"""Records bound to their subjects (issue 10 item 4), on both backends.

Someone with write access to the database swaps two access records' sealed subject
references (or copies one onto another record). The reference's associated data holds
the record's leaf hash, and an opened reference must give the leaf's pseudonym, so
neither record is delivered to the other's subject by WatchAccessRecords; each is
reported (security log, ``symbolsvc_security_events_total{event="record_subject_mismatch"}``),
and ListAccessRecords and GetRecordProof (matched by the leaf's pseudonym) still show each
record to its own subject only.
"""

from __future__ import annotations

import json
import socket
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import grpc
from helpers import (
    Clients,
    NumberSource,
    RegistryReader,
    ServerProcess,
    StartServer,
    call_error,
    wait_until,
)
from helpers.deployments import storage_url

from symbolsvc.registry.backends import backend_for
from symbolsvc.v1 import disclosure_service_pb2 as disclosure_pb

REQUESTER, PROVIDER = "pension-service", "city-chiyoda"
OFFICE, ITEM = "survivor-pension", "resident-tax-income"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_registry(directory: Path, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Run ``statements`` (``?`` placeholders) in one transaction on the deployment's live
    registry, as an insider with database write access would."""
    url = storage_url(directory)
    if backend_for(url).name == "sqlite":
        import sqlite3

        conn = sqlite3.connect(directory / url.removeprefix("sqlite:"), timeout=30)
        with conn:
            for sql, params in statements:
                conn.execute(sql, params)
        conn.close()
        return
    from symbolsvc.registry.postgres import connect_sync
    from symbolsvc.registry.url import PgTarget

    with connect_sync(PgTarget.parse(url)) as pg, pg.transaction():
        for sql, params in statements:
            pg.execute(sql.replace("?", "%s"), params)


def _mismatches(port: int) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith('symbolsvc_security_events_total{event="record_subject_mismatch"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_swapped_or_copied_sealed_reference_is_delivered_to_nobody(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource) -> None:
    port = _free_port()
    server: ServerProcess = start_server(fresh_deployment, {
        "server": {"metrics_listen": f"127.0.0.1:{port}"},
        "access_log": {"integrate_interval_ms": 50, "retention_years": 10}})
    clients = Clients(server.deployment, server.address)
    # [access_log] retention_years is shown at start-up (issue 10 item 10)
    server.wait_for_log("records are kept for at least 10 years")
    try:
        broker, portal = clients.broker(), clients.portal()
        subjects = []
        for n in numbers.many(4):
            req = clients.agency(REQUESTER).issue(n).symbol
            clients.agency(PROVIDER).issue(n)
            subjects.append((portal.agency.issue(n).symbol, req))
        ids = [broker.translate(REQUESTER, req, PROVIDER, OFFICE, ITEM, f"x-{uuid.uuid4()}"
                                ).record_id for _, req in subjects[:3]]
        a, b, c = ids
        with RegistryReader(fresh_deployment) as db:
            ref = dict(db.query("SELECT id, sealed_subject FROM access_records"))
        write_registry(fresh_deployment, [  # swap a's and b's references, copy a's onto c
            ("UPDATE access_records SET sealed_subject = ? WHERE id = ?", (bytes(ref[b]), a)),
            ("UPDATE access_records SET sealed_subject = ? WHERE id = ?", (bytes(ref[a]), b)),
            ("UPDATE access_records SET sealed_subject = ? WHERE id = ?", (bytes(ref[a]), c)),
        ])
        # a translation refused because the provider holds nothing is recorded and watched
        # with its outcome (issue 10 item 5)
        (lonely,) = numbers.many(1)
        lonely_req = clients.agency(REQUESTER).issue(lonely).symbol
        lonely_portal = portal.agency.issue(lonely).symbol
        err = call_error(broker.translate, REQUESTER, lonely_req, PROVIDER, OFFICE, ITEM,
                         f"x-{uuid.uuid4()}")
        assert (err.code, err.reason) == (grpc.StatusCode.NOT_FOUND, "PROVIDER_NOT_HOLDING")
        # a marker record after the tampered ones: the watch has passed them when it arrives
        marker = broker.translate(REQUESTER, subjects[3][1], PROVIDER, OFFICE, ITEM,
                                  f"x-{uuid.uuid4()}").record_id
        delivered: dict[int, tuple[str, int]] = {}
        for msg in portal.watch("", timeout=60):
            if msg.HasField("record"):
                delivered[msg.record.record_id] = (msg.record.subject_symbol,
                                                   msg.record.outcome)
                if msg.record.record_id == marker:
                    break
        refused = [rid for rid, (sym, _) in delivered.items() if sym == lonely_portal]
        assert delivered == {  # tampered records reach nobody
            marker: (subjects[3][0], disclosure_pb.ACCESS_OUTCOME_ANSWERED),
            **{rid: (lonely_portal, disclosure_pb.ACCESS_OUTCOME_PROVIDER_NOT_HOLDING)
               for rid in refused}}
        assert len(refused) == 1
        events = [e for e in map(json.loads, server.security_log_text().splitlines())
                  if e.get("event") == "record_subject_mismatch"]
        assert {e["record_id"] for e in events} == {a, b, c}
        assert _mismatches(port) >= 3
        # list and proof go by the leaf's pseudonym: each record to its own subject only
        for (psym, _), rid in zip(subjects, ids, strict=False):
            listed = [r.record_id for r in portal.all_records(psym)]
            assert listed == [rid]
            wait_until(lambda psym=psym, rid=rid: _proved(portal, psym, rid), 30,
                       "the record's proof")
    finally:
        clients.close()


def _proved(portal: Any, symbol: str, record_id: int) -> bool:
    from symbolsvc_client import CallError

    try:
        return bool(portal.record_proof(symbol, record_id).leaf)
    except CallError as err:
        if err.reason == "NOT_YET_INTEGRATED":
            return False
        raise
