"""CONTRACT §3 over real mTLS: every role x every RPC, and callers that are not principals.

Only the contract's combinations pass the role check; every other one is PERMISSION_DENIED and
the denial is written to DIR/logs/security.jsonl. A client with no certificate or with one
from another CA never gets past the TLS handshake; a certificate from the deployment CA
whose URI SAN is no configured principal is UNAUTHENTICATED.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from helpers import (
    Clients,
    NumberSource,
    ServerProcess,
    call_rows,
    wait_until,
)

from symbolsvc.pki import Issued, issue_leaf, load_ca, make_ca
from symbolsvc.v1 import audit_service_pb2 as audit_pb
from symbolsvc.v1 import audit_service_pb2_grpc as audit_grpc
from symbolsvc.v1 import broker_service_pb2 as broker_pb
from symbolsvc.v1 import broker_service_pb2_grpc as broker_grpc
from symbolsvc.v1 import disclosure_service_pb2 as disclosure_pb
from symbolsvc.v1 import disclosure_service_pb2_grpc as disclosure_grpc
from symbolsvc.v1 import symbol_service_pb2 as symbol_pb
from symbolsvc.v1 import symbol_service_pb2_grpc as symbol_grpc

Code = grpc.StatusCode
OK = Code.OK

# principal -> roles, as `symbolsvc init` configures them (checked in test_cli.py).
PRINCIPALS = {
    "city-chiyoda": {"agency"},
    "broker": {"broker"},
    "portal": {"portal", "agency"},
    "auditor": {"auditor"},
}


@dataclass
class Subject:
    """One subject held by city-chiyoda, city-minato, tax-office, pension-service, portal."""

    chiyoda: str
    tax: str
    pension: str
    portal: str


@dataclass(frozen=True)
class Rpc:
    service: str
    method: str
    role: str | None  # None: any authenticated principal; "a|b": either role
    # Codes that show the call passed the role check, for a caller with the role.
    allowed: frozenset[Code]

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.method}"

    def __str__(self) -> str:
        return f"{self.service.rsplit('.', 1)[-1]}.{self.method}"


def _rpc(service: str, method: str, role: str | None, *extra: Code) -> Rpc:
    return Rpc(service, method, role, frozenset({OK, *extra}))


SYM, BRK = "symbolsvc.v1.SymbolService", "symbolsvc.v1.BrokerService"
DSC, AUD = "symbolsvc.v1.DisclosureService", "symbolsvc.v1.AuditService"
# The access-log RPCs may answer UNIMPLEMENTED until that work lands; beyond that, each
# allowed caller may get only the codes the .proto documents for the request sent here.
RPCS = [
    _rpc(SYM, "IssueSymbol", "agency"),
    _rpc(SYM, "BatchIssueSymbols", "agency"),
    _rpc(SYM, "StreamIssueSymbols", "agency"),
    _rpc(SYM, "ReleaseSymbol", "agency"),
    _rpc(SYM, "UpgradeSymbols", "agency"),
    _rpc(BRK, "TranslateSymbol", "broker"),
    _rpc(BRK, "BatchTranslateSymbols", "broker"),
    _rpc(BRK, "ResolveProviders", "broker"),
    _rpc(DSC, "ListAccessRecords", "portal"),
    # A watch never ends by itself: a deadline with no record yet also passed the check.
    _rpc(DSC, "WatchAccessRecords", "portal", Code.UNIMPLEMENTED, Code.DEADLINE_EXCEEDED),
    _rpc(DSC, "GetRecordProof", "portal", Code.UNIMPLEMENTED, Code.FAILED_PRECONDITION,
         Code.NOT_FOUND),
    _rpc(DSC, "ListHoldings", "portal"),
    # The published permission tables are for the person and the auditor alike.
    _rpc(DSC, "GetPolicy", "auditor|portal"),
    _rpc(AUD, "GetCheckpoint", "auditor", Code.UNIMPLEMENTED, Code.FAILED_PRECONDITION),
    _rpc(AUD, "GetConsistencyProof", "auditor", Code.UNIMPLEMENTED, Code.INVALID_ARGUMENT),
    _rpc(AUD, "GetInclusionProof", "auditor", Code.UNIMPLEMENTED, Code.INVALID_ARGUMENT),
    _rpc(AUD, "ListEntries", "auditor", Code.UNIMPLEMENTED, Code.INVALID_ARGUMENT),
    _rpc("grpc.health.v1.Health", "Check", None),
    _rpc("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo", None),
]


def test_rpc_table_covers_every_rpc_of_the_proto() -> None:
    """The matrix below is only as good as its list: it must name every RPC of CONTRACT §3."""
    declared = set()
    for module in (symbol_pb, broker_pb, disclosure_pb, audit_pb):
        for service in module.DESCRIPTOR.services_by_name.values():
            declared |= {(service.full_name, m.name) for m in service.methods}
    listed = {(r.service, r.method) for r in RPCS if r.service.startswith("symbolsvc.")}
    assert listed == declared
    assert len(declared) == 17  # CONTRACT §3: 4 + 3 + 5 + 4, and §9's UpgradeSymbols


@pytest.fixture(scope="module")
def subject(clients: Clients, numbers: NumberSource) -> Subject:
    n = numbers.one()
    clients.agency("city-minato").issue(n)
    return Subject(clients.agency("city-chiyoda").issue(n).symbol,
                   clients.agency("tax-office").issue(n).symbol,
                   clients.agency("pension-service").issue(n).symbol,
                   clients.portal().agency.issue(n).symbol)


def _invoke(rpc: Rpc, channel: grpc.Channel, subject: Subject, numbers: NumberSource,
            own_symbol: str) -> Any:
    """Call ``rpc`` with a request that succeeds for a caller with the role.

    ``own_symbol`` is a live holding of the caller (when it is an agency), to release."""
    t = 5.0
    translate = broker_pb.TranslateSymbolRequest(
        requester_agency="city-chiyoda", symbol=subject.chiyoda, provider_agency="tax-office",
        office_work="resident-tax", info_item="national-tax-income", exchange_id="roles-1")
    sym = symbol_grpc.SymbolServiceStub(channel)
    brk = broker_grpc.BrokerServiceStub(channel)
    dsc = disclosure_grpc.DisclosureServiceStub(channel)
    aud = audit_grpc.AuditServiceStub(channel)
    calls: dict[str, Callable[[], Any]] = {
        "IssueSymbol": lambda: sym.IssueSymbol(
            symbol_pb.IssueSymbolRequest(individual_number=numbers.one()), timeout=t),
        "BatchIssueSymbols": lambda: sym.BatchIssueSymbols(
            symbol_pb.BatchIssueSymbolsRequest(individual_numbers=numbers.many(2)), timeout=t),
        "StreamIssueSymbols": lambda: list(sym.StreamIssueSymbols(iter([
            symbol_pb.StreamIssueSymbolsRequest(chunk_id=7, individual_numbers=numbers.many(2))
        ]), timeout=t)),
        "ReleaseSymbol": lambda: sym.ReleaseSymbol(
            symbol_pb.ReleaseSymbolRequest(symbol=own_symbol), timeout=t),
        "UpgradeSymbols": lambda: sym.UpgradeSymbols(
            symbol_pb.UpgradeSymbolsRequest(symbols=[subject.chiyoda]), timeout=t),
        "TranslateSymbol": lambda: brk.TranslateSymbol(translate, timeout=t),
        "BatchTranslateSymbols": lambda: brk.BatchTranslateSymbols(
            broker_pb.BatchTranslateSymbolsRequest(requests=[translate]), timeout=t),
        "ResolveProviders": lambda: brk.ResolveProviders(broker_pb.ResolveProvidersRequest(
            requester_agency="pension-service", symbol=subject.pension,
            office_work="survivor-pension", info_item="resident-tax-income",
            exchange_id="roles-2"), timeout=t),
        "ListAccessRecords": lambda: dsc.ListAccessRecords(
            disclosure_pb.ListAccessRecordsRequest(symbol=subject.portal), timeout=t),
        "WatchAccessRecords": lambda: next(iter(dsc.WatchAccessRecords(
            disclosure_pb.WatchAccessRecordsRequest(), timeout=1.5)), None),
        "GetRecordProof": lambda: dsc.GetRecordProof(
            disclosure_pb.GetRecordProofRequest(symbol=subject.portal), timeout=t),
        "ListHoldings": lambda: dsc.ListHoldings(
            disclosure_pb.ListHoldingsRequest(symbol=subject.portal), timeout=t),
        "GetPolicy": lambda: dsc.GetPolicy(disclosure_pb.GetPolicyRequest(), timeout=t),
        "GetCheckpoint": lambda: aud.GetCheckpoint(audit_pb.GetCheckpointRequest(), timeout=t),
        "GetConsistencyProof": lambda: aud.GetConsistencyProof(
            audit_pb.GetConsistencyProofRequest(first_size=1, second_size=1), timeout=t),
        "GetInclusionProof": lambda: aud.GetInclusionProof(
            audit_pb.GetInclusionProofRequest(leaf_index=0, tree_size=1), timeout=t),
        "ListEntries": lambda: aud.ListEntries(
            audit_pb.ListEntriesRequest(start=0, end=1), timeout=t),
        "Check": lambda: health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=t),
        "ServerReflectionInfo": lambda: next(iter(
            reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=t))),
    }
    return calls[rpc.method]()



def _code_of(fn: Callable[[], Any]) -> tuple[Code, Any]:
    try:
        return OK, fn()
    except grpc.RpcError as err:
        return err.code(), err


def _security_events(server: ServerProcess, since: int) -> list[dict[str, Any]]:
    data = server.security_log_path.read_bytes()[since:] if server.security_log_path.exists() \
        else b""
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


@pytest.mark.parametrize("rpc", RPCS, ids=str)
@pytest.mark.parametrize("principal", list(PRINCIPALS))
def test_role_matrix(principal: str, rpc: Rpc, server: ServerProcess, clients: Clients,
                     subject: Subject, numbers: NumberSource) -> None:
    allowed = rpc.role is None or any(r in PRINCIPALS[principal] for r in rpc.role.split("|"))
    mark = server.security_log_path.stat().st_size if server.security_log_path.exists() else 0
    own_symbol = subject.chiyoda  # not the caller's: released only if the role check fails
    if rpc.method == "ReleaseSymbol" and "agency" in PRINCIPALS[principal]:
        issuer = clients.portal().agency if principal == "portal" else clients.agency(principal)
        own_symbol = issuer.issue(numbers.one()).symbol
    with server.deployment.channel(principal, server.address) as channel:
        code, reply = _code_of(lambda: _invoke(rpc, channel, subject, numbers, own_symbol))
    if not allowed:
        assert code == Code.PERMISSION_DENIED, f"{principal} called {rpc}: {code} {reply!r}"
        assert principal in reply.details() and rpc.path in reply.details()

        def logged() -> list[dict[str, Any]]:
            return [e for e in _security_events(server, mark)
                    if e.get("event") == "role_denied" and e.get("principal") == principal
                    and e.get("method") == rpc.path]

        (event,) = wait_until(logged, 5, f"the security log entry for {principal} -> {rpc}")
        assert event["needs_role"] == rpc.role
        return
    assert code in rpc.allowed, f"{principal} may call {rpc} but got {code}: {reply!r}"
    if rpc.method == "Check":
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    if rpc.method == "ServerReflectionInfo":
        names = {s.name for s in reply.list_services_response.service}
        assert {SYM, BRK, DSC, AUD, "grpc.health.v1.Health"} <= names
    if rpc.method == "TranslateSymbol":
        assert reply.provider_symbol == subject.tax
    if rpc.method == "ReleaseSymbol":
        assert reply.was_held
    # An allowed call is not a denial: nothing about it in the security log.
    assert not [e for e in _security_events(server, mark) if e.get("principal") == principal
                and e.get("method") == rpc.path]


# -- callers that are not principals ----------------------------------------------------------


def _pem(issued: Issued) -> tuple[bytes, bytes]:
    key = issued.key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    return key, issued.cert.public_bytes(serialization.Encoding.PEM)


def _channel(server: ServerProcess, issued: Issued | None) -> grpc.Channel:
    ca = (server.directory / "pki" / "ca.crt").read_bytes()
    if issued is None:
        creds = grpc.ssl_channel_credentials(root_certificates=ca)
    else:
        key, cert = _pem(issued)
        creds = grpc.ssl_channel_credentials(ca, key, cert)
    return grpc.secure_channel(server.address, creds)


def _health(channel: grpc.Channel) -> Code:
    return _code_of(lambda: health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(), timeout=5))[0]


def _issue(channel: grpc.Channel, number: str) -> Code:
    return _code_of(lambda: symbol_grpc.SymbolServiceStub(channel).IssueSymbol(
        symbol_pb.IssueSymbolRequest(individual_number=number), timeout=5))[0]


def _translate(channel: grpc.Channel, symbol: str) -> Code:
    return _code_of(lambda: broker_grpc.BrokerServiceStub(channel).TranslateSymbol(
        broker_pb.TranslateSymbolRequest(
            requester_agency="city-chiyoda", symbol=symbol, provider_agency="tax-office",
            office_work="resident-tax", info_item="national-tax-income", exchange_id="x"),
        timeout=5))[0]


def test_client_without_certificate_is_refused(server: ServerProcess, numbers: NumberSource,
                                               subject: Subject) -> None:
    with _channel(server, None) as channel:
        assert _health(channel) == Code.UNAVAILABLE
        assert _issue(channel, numbers.one()) == Code.UNAVAILABLE
        assert _translate(channel, subject.chiyoda) == Code.UNAVAILABLE
    assert server.running


@pytest.mark.parametrize("uri", ["spiffe://symbolsvc.local/broker",
                                 "spiffe://symbolsvc.local/agency/city-chiyoda"])
def test_certificate_from_another_ca_is_refused(server: ServerProcess, numbers: NumberSource,
                                                subject: Subject, uri: str) -> None:
    """Even with a configured principal's exact identity, a foreign CA's certificate fails."""
    other = make_ca("an attacker's CA")
    leaf = issue_leaf(other, uri.rsplit("/", 1)[-1], uri)
    with _channel(server, leaf) as channel:
        assert _health(channel) == Code.UNAVAILABLE
        assert _issue(channel, numbers.one()) == Code.UNAVAILABLE
        assert _translate(channel, subject.chiyoda) == Code.UNAVAILABLE
    assert server.running


def test_deployment_ca_certificate_of_no_principal_is_unauthenticated(
        server: ServerProcess, numbers: NumberSource, subject: Subject) -> None:
    """The CA signed it, but its URI SAN is no principal; a CN naming one does not help."""
    ca = load_ca(server.directory / "pki")
    uri = "spiffe://symbolsvc.local/agency/intruder"
    leaf = issue_leaf(ca, "broker", uri)  # CN "broker": identity is never taken from the CN
    before = call_rows(server.config)  # the sequencer may integrate the fixture's records
    mark = server.security_log_path.stat().st_size
    with _channel(server, leaf) as channel:
        assert _health(channel) == Code.UNAUTHENTICATED
        assert _issue(channel, numbers.one()) == Code.UNAUTHENTICATED
        assert _translate(channel, subject.chiyoda) == Code.UNAUTHENTICATED

    def logged() -> list[dict[str, Any]]:
        return [e for e in _security_events(server, mark) if e.get("event") == "unknown_identity"
                and uri in e.get("identities", [])]

    events = wait_until(lambda: len(logged()) >= 3 and logged(), 5,
                        "three unknown_identity entries in the security log")
    assert {e["method"] for e in events} == {
        "/grpc.health.v1.Health/Check", f"/{SYM}/IssueSymbol", f"/{BRK}/TranslateSymbol"}
    assert call_rows(server.config) == before


def test_security_log_is_json_lines_with_events(server: ServerProcess) -> None:
    """Every line of the security log is one JSON object naming its event."""
    path: Path = server.security_log_path
    with server.deployment.channel("auditor", server.address) as channel:
        code, _ = _code_of(lambda: symbol_grpc.SymbolServiceStub(channel).IssueSymbol(
            symbol_pb.IssueSymbolRequest(individual_number="123456789018"), timeout=5))
    assert code == Code.PERMISSION_DENIED
    wait_until(lambda: path.exists() and path.stat().st_size > 0, 5, "a security log")
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    assert lines
    for line in lines:
        doc = json.loads(line)
        assert isinstance(doc, dict) and doc.get("event"), line
        assert "123456789018" not in line
