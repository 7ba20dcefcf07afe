"""Issue 14, items 1-2, end to end: a compromised broker against signed inquiries and blind
translation (docs/SIGNED_INQUIRIES.md, docs/BLIND_TRANSLATION.md), on both backends.

One server per backend with ``[broker] require_signed_inquiries`` and ``blind_translation``.
The "compromised broker" is the real broker certificate with no agency's key: it cannot get
a provider symbol (unsigned, forged, altered, stale or replayed inquiries are refused and
write nothing); what it relays for real agencies is ciphertext, which the provider opens,
with the client library and with an independent HPKE open, to exactly the symbol
IssueSymbol gives it. ``audit verify`` then checks every stored signature.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import (
    Clients,
    NumberSource,
    Registries,
    ServerProcess,
    call_error,
    config_with,
    copy_deployment,
    wait_until,
)
from helpers.hpke_open import open_independently
from helpers.hpke_open import public_line as hpke_public_line
from helpers.registry import RegistryReader, row_counts
from symbolsvc_client import Deployment
from symbolsvc_client.trust import open_sealed_symbol, sign_inquiry
from symbolsvc_client.v1 import broker_service_pb2 as broker_pb

from symbolsvc.records import AccessKind, AccessRecord

Code = grpc.StatusCode
# requester, provider, office work, info item (TEST_POLICY)
CHIYODA_TAX = ("city-chiyoda", "tax-office", "resident-tax", "national-tax-income")
PENSION = ("pension-service", "survivor-pension", "resident-tax-income")  # -> municipalities
TAX = ("tax-office", "city-chiyoda", "tax-investigation", "resident-record")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "symbolsvc", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def trust_dep(deployment_template: Path, tmp_path_factory: pytest.TempPathFactory,
              session_registries: Registries) -> Path:
    d = session_registries.provision(
        copy_deployment(deployment_template, tmp_path_factory.mktemp("trust") / "dep"))
    # city-minato replaces its pair with an X25519 one (init made ML-KEM-768+X25519 pairs):
    # both suites are exercised.
    r = _cli("agency", "hpke-key", "--config", str(d / "config.toml"), "city-minato",
             "--suite", "x25519")
    assert r.returncode == 0, r.stderr
    return d


@pytest.fixture(scope="module")
def trust_server(trust_dep: Path) -> Iterator[ServerProcess]:
    config = config_with(trust_dep / "config.toml", {"broker": {
        "require_signed_inquiries": True, "blind_translation": True,
        "inquiry_window_seconds": 600}}, "trust")
    proc = ServerProcess(config, trust_dep.parent / "trust.log").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def tc(trust_dep: Path, trust_server: ServerProcess) -> Iterator[Clients]:
    c = Clients(Deployment(trust_dep), trust_server.address)
    try:
        yield c
    finally:
        c.close()


def _key(dep: Path, name: str) -> Path:
    return dep / "pki" / f"{name}.key"


def _events(server: ServerProcess, since: int) -> list[dict[str, Any]]:
    path = server.security_log_path
    data = path.read_bytes()[since:] if path.exists() else b""
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def _mark(server: ServerProcess) -> int:
    path = server.security_log_path
    return path.stat().st_size if path.exists() else 0


def _records(dep: Path) -> int:
    return row_counts(dep)["access_records"]


def _exchange_records(dep: Path) -> int:
    """The records of exchanges (TRANSLATE, RESOLVE): the ones a signed inquiry asks for;
    ISSUE and POLICY records (docs/DISCLOSURE.md) carry none."""
    with RegistryReader(dep) as db:
        leaves = db.query("SELECT leaf FROM access_records")
    return sum(AccessRecord.decode(bytes(leaf)).kind in (AccessKind.TRANSLATE, AccessKind.RESOLVE)
               for (leaf,) in leaves)


def _all_verified(dep: Path, server: ServerProcess) -> str:
    """``audit verify``'s output once it has checked as many signatures as there are records
    (every exchange record of this server is of a signed inquiry), else "" (not yet
    integrated)."""
    total = _exchange_records(dep)
    r = _cli("audit", "verify", "--deployment", str(dep), "--target", server.address)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"(\d+) signed inquiries verified", r.stdout)
    return r.stdout if m and int(m.group(1)) == total else ""


def test_compromised_broker_obtains_no_provider_symbol(
        trust_dep: Path, trust_server: ServerProcess, tc: Clients,
        numbers: NumberSource) -> None:
    requester, provider, ow, item = CHIYODA_TAX
    n = numbers.one()
    sym = tc.agency(requester).issue(n).symbol
    tc.agency(provider).issue(n)
    broker = tc.broker()
    before, mark = _records(trust_dep), _mark(trust_server)

    # unsigned: as today's broker would ask
    err = call_error(broker.translate, requester, sym, provider, ow, item, "cb-unsigned")
    assert (err.code, err.reason) == (Code.PERMISSION_DENIED, "INQUIRY_NOT_SIGNED")
    err = call_error(broker.resolve, PENSION[0], sym, PENSION[1], PENSION[2], "cb-resolve")
    assert (err.code, err.reason) == (Code.PERMISSION_DENIED, "INQUIRY_NOT_SIGNED")
    # forged with the broker's own certificate key
    forged = sign_inquiry(_key(trust_dep, "broker"), requester=requester, symbol=sym,
                          provider=provider, office_work=ow, info_item=item,
                          exchange_id="cb-forged")
    err = call_error(broker.translate_signed, forged)
    assert (err.code, err.reason) == (Code.PERMISSION_DENIED, "BAD_INQUIRY_SIGNATURE")
    # a fresh key that is no certificate's
    stranger = sign_inquiry(ec.generate_private_key(ec.SECP256R1()), requester=requester,
                            symbol=sym, provider=provider, office_work=ow, info_item=item,
                            exchange_id="cb-stranger")
    err = call_error(broker.translate_signed, stranger)
    assert err.reason == "BAD_INQUIRY_SIGNATURE"
    # a genuine signature, re-aimed: another provider, office work or symbol
    genuine = sign_inquiry(_key(trust_dep, requester), requester=requester, symbol=sym,
                           provider=provider, office_work=ow, info_item=item,
                           exchange_id="cb-genuine")
    other_symbol = tc.agency(requester).issue(numbers.one()).symbol
    before += 1  # its ISSUE record (docs/DISCLOSURE.md)
    for change in ({"provider": "city-minato"}, {"office_work": "child-allowance"},
                   {"exchange_id": "cb-other"}, {"symbol": other_symbol}):
        err = call_error(broker.translate_signed, replace(genuine, **change))
        assert (err.code, err.reason) == (Code.PERMISSION_DENIED, "BAD_INQUIRY_SIGNATURE"), \
            change
    # stale: signed long before the window
    stale = sign_inquiry(_key(trust_dep, requester), requester=requester, symbol=sym,
                         provider=provider, office_work=ow, info_item=item,
                         exchange_id="cb-stale", issued_at_us=genuine.issued_at_us - 3_600_000_000)
    err = call_error(broker.translate_signed, stale)
    assert (err.code, err.reason) == (Code.PERMISSION_DENIED, "INQUIRY_EXPIRED")

    assert _records(trust_dep) == before, "a refused inquiry wrote a record"
    # every refusal is a security event naming the requester and exchange, never the symbol
    wanted = {"inquiry_not_signed": 2, "bad_inquiry_signature": 6, "inquiry_expired": 1}

    def logged() -> list[dict[str, Any]]:
        ev = [e for e in _events(trust_server, mark) if e.get("event") in wanted]
        return ev if len(ev) >= sum(wanted.values()) else []

    events = wait_until(logged, 60, "the security log's inquiry refusals")
    assert {e["event"] for e in events} == set(wanted)
    assert not any(sym in json.dumps(e) for e in events)


def test_blind_translation_provider_opens_what_issue_gives(
        trust_dep: Path, tc: Clients, numbers: NumberSource) -> None:
    requester, provider, ow, item = CHIYODA_TAX
    n = numbers.one()
    sym = tc.agency(requester).issue(n).symbol
    expected = tc.agency(provider).issue(n).symbol
    inq = sign_inquiry(_key(trust_dep, requester), requester=requester, symbol=sym,
                       provider=provider, office_work=ow, info_item=item, exchange_id="bt-1")
    reply = tc.broker().translate_signed(inq)
    assert reply.provider_symbol == "" and reply.sealed_provider_symbol
    assert expected.encode() not in reply.sealed_provider_symbol
    hpke_key = trust_dep / "pki" / f"{provider}.hpke.key"
    assert open_sealed_symbol(reply.sealed_provider_symbol, hpke_key, exchange_id="bt-1",
                              requester=requester) == expected
    assert open_independently(reply.sealed_provider_symbol, hpke_key.read_text(),
                              "bt-1", requester) == expected
    # bound to its exchange and requester: the broker cannot pass it off as another's
    with pytest.raises(ValueError):
        open_sealed_symbol(reply.sealed_provider_symbol, hpke_key, exchange_id="bt-2",
                           requester=requester)
    # a captured signed inquiry replayed by the broker is refused
    err = call_error(tc.broker().translate_signed, inq)
    assert (err.code, err.reason) == (Code.PERMISSION_DENIED, "INQUIRY_REPLAYED")
    (again,) = tc.broker().translate_batch([inq.translate_request()])
    assert (again.error.reason, again.error.field) == ("INQUIRY_REPLAYED",
                                                       "requests[0].exchange_id")


def test_blind_batch_per_item_both_suites(
        trust_dep: Path, tc: Clients, numbers: NumberSource) -> None:
    requester, ow, item = PENSION
    n = numbers.one()
    sym = tc.agency(requester).issue(n).symbol
    want = {p: tc.agency(p).issue(n).symbol for p in ("city-chiyoda", "city-minato")}
    key = _key(trust_dep, requester)
    good = [sign_inquiry(key, requester=requester, symbol=sym, provider=p, office_work=ow,
                         info_item=item, exchange_id=f"bb-{p}") for p in want]
    bad = good[0].translate_request()
    bad.exchange_id = "bb-altered"
    reqs: list[broker_pb.TranslateSymbolRequest] = [
        good[0].translate_request(), bad, good[1].translate_request()]
    results = tc.broker().translate_batch(reqs)
    assert results[1].WhichOneof("outcome") == "error"
    assert results[1].error.reason == "BAD_INQUIRY_SIGNATURE"
    assert results[1].error.field == "requests[1].inquiry_signature"
    for r, inq in ((results[0], good[0]), (results[2], good[1])):
        assert r.WhichOneof("outcome") == "translated", r
        sealed = r.translated.sealed_provider_symbol
        assert r.translated.provider_symbol == "" and sealed
        assert inq.provider is not None
        line = (trust_dep / "pki" / f"{inq.provider}.hpke.key").read_text()
        assert sealed[0] == (1 if line.split()[1] == "x25519" else 2)
        assert open_independently(sealed, line, inq.exchange_id, requester) == \
            want[inq.provider]


def test_signed_records_verified_by_audit(
        trust_dep: Path, trust_server: ServerProcess, tc: Clients,
        numbers: NumberSource) -> None:
    requester, ow, item = PENSION
    n = numbers.one()
    sym = tc.agency(requester).issue(n).symbol
    tc.agency("city-chiyoda").issue(n)
    inq = sign_inquiry(_key(trust_dep, requester), requester=requester, symbol=sym,
                       office_work=ow, info_item=item, exchange_id="au-resolve")
    reply = tc.broker().resolve_signed(inq)
    assert list(reply.provider_agencies) == ["city-chiyoda"]
    err = call_error(tc.broker().resolve_signed, inq)
    assert (err.code, err.reason) == (Code.PERMISSION_DENIED, "INQUIRY_REPLAYED")

    out = wait_until(lambda: _all_verified(trust_dep, trust_server), 60,
                     "audit verify checking every signed inquiry")
    assert "NOT checked" not in out
    # certificates asked for but not there: cannot verify (exit 2), never a pass
    r = _cli("audit", "verify", "--deployment", str(trust_dep), "--target",
             trust_server.address, "--agency-certs", str(trust_dep / "no-such-dir"))
    assert r.returncode == 2 and "not a directory" in r.stderr


def test_agency_replaces_its_hpke_key(deployment_template: Path, tmp_path: Path) -> None:
    """``agency hpke-key --public``: the agency's own public key is registered and the
    deployment's copy of the old private key goes; a bad file or unknown agency changes
    nothing."""
    d = copy_deployment(deployment_template, tmp_path / "dep")
    config, pki = str(d / "config.toml"), d / "pki"
    own = tmp_path / "own.pub"
    own.write_text(hpke_public_line())
    r = _cli("agency", "hpke-key", "--config", config, "tax-office", "--public", str(own))
    assert r.returncode == 0, r.stderr
    assert (pki / "tax-office.hpke.pub").read_text() == own.read_text()
    assert not (pki / "tax-office.hpke.key").exists()
    before = (pki / "city-chiyoda.hpke.pub").read_text()
    own.write_text("symbolsvc-hpke-v1 x25519 not-base64\n")
    for args in (("city-chiyoda", "--public", str(own)), ("no-such-agency",),
                 ("broker",)):
        r = _cli("agency", "hpke-key", "--config", config, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
    assert (pki / "city-chiyoda.hpke.pub").read_text() == before


def test_reissued_certificate_old_signatures_stay_verifiable(
        trust_dep: Path, trust_server: ServerProcess, tc: Clients,
        numbers: NumberSource) -> None:
    """After ``cert reissue`` the server checks new inquiries against the new certificate
    (the old key is refused at once, no reload), and ``audit verify`` still verifies what the
    old key signed (the old certificate is kept under pki/retired/)."""
    requester, provider, ow, item = TAX
    n = numbers.one()
    sym = tc.agency(requester).issue(n).symbol
    tc.agency(provider).issue(n)
    old_key = _key(trust_dep, requester).read_bytes()

    def ask(xid: str) -> Any:
        return sign_inquiry(_key(trust_dep, requester), requester=requester, symbol=sym,
                            provider=provider, office_work=ow, info_item=item,
                            exchange_id=xid)

    before = ask("rc-before")
    assert tc.broker().translate_signed(before).sealed_provider_symbol
    stale_key = trust_dep / "old.key"
    stale_key.write_bytes(old_key)
    r = _cli("cert", "reissue", "--config", str(trust_dep / "config.toml"), requester)
    assert r.returncode == 0, r.stderr
    assert list((trust_dep / "pki" / "retired").glob(f"{requester}-*.crt"))
    old = sign_inquiry(stale_key, requester=requester, symbol=sym, provider=provider,
                       office_work=ow, info_item=item, exchange_id="rc-old-key")
    err = call_error(tc.broker().translate_signed, old)
    assert (err.code, err.reason) == (Code.PERMISSION_DENIED, "BAD_INQUIRY_SIGNATURE")
    assert tc.broker().translate_signed(ask("rc-after")).sealed_provider_symbol

    wait_until(lambda: _all_verified(trust_dep, trust_server), 60,
               "audit verify over records signed by the old and the new key")
