"""Micro-benchmarks of issue 11's per-call pieces (``python -m pytest bench -k isolation``).

Each runs beside its "off" twin in the same session, so docs/BENCHMARKS.md can
quote the cost of admission control, the lenient deserializer and the peer
certificate check per call.
"""

from __future__ import annotations

from pathlib import Path

from symbolsvc.bodies import lenient
from symbolsvc.limits import Limiter, parse_limits
from symbolsvc.pki import issue_leaf, make_ca, spiffe_id
from symbolsvc.revocation import PeerCheck
from symbolsvc.v1 import symbol_service_pb2 as pb

AGENCY = frozenset({"agency"})
METHOD = "/symbolsvc.v1.SymbolService/IssueSymbol"


def test_isolation_admit_release(benchmark) -> None:
    limiter = Limiter(parse_limits({"roles": {"agency": {"rate": 1e12, "burst": 10**12}}},
                                   Path("bench")), 2000)

    def call() -> None:
        limiter.admit("city-chiyoda", AGENCY, METHOD, stream=False, items=1).release()

    benchmark(call)
    assert limiter.in_flight == 0


def test_isolation_decode_plain(benchmark) -> None:
    body = pb.IssueSymbolRequest(individual_number="123456789018").SerializeToString()
    benchmark(pb.IssueSymbolRequest.FromString, body)


def test_isolation_decode_lenient(benchmark) -> None:
    body = pb.IssueSymbolRequest(individual_number="123456789018").SerializeToString()
    decode = lenient(pb.IssueSymbolRequest.FromString)
    assert decode is not None
    benchmark(decode, body)


def test_isolation_peer_check_cached(benchmark) -> None:
    from cryptography.hazmat.primitives import serialization

    ca = make_ca()
    pem = issue_leaf(ca, "a", spiffe_id("agency", "a")).cert.public_bytes(
        serialization.Encoding.PEM)
    peers = PeerCheck(ca.cert.public_bytes(serialization.Encoding.PEM), None)
    peers.check(pem, METHOD)

    def call() -> None:
        peers.check(bytes(pem), METHOD)  # a fresh bytes object per call, as gRPC hands over

    benchmark(call)
