"""The revocation check on the per-call path (``python -m pytest bench -k revocation``).

A/B in one run: ``auth.identify`` for a client certificate with no revocation list (the
check is skipped) and with a list of 10,000 entries (hash look-up, cached per certificate).
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization

from symbolsvc import auth
from symbolsvc.config import Principal
from symbolsvc.pki import issue_leaf, make_ca, spiffe_id

IDENTITY = spiffe_id("agency", "city-chiyoda")


@pytest.fixture(scope="module")
def context() -> dict[str, list[bytes]]:
    leaf = issue_leaf(make_ca(), "city-chiyoda", IDENTITY)
    pem = leaf.cert.public_bytes(serialization.Encoding.PEM)
    return {"peer_spiffe_id": [IDENTITY.encode()], "x509_pem_cert": [pem]}


@pytest.mark.parametrize("entries", [0, 10_000], ids=["off", "on-10k"])
def test_micro_revocation_identify(benchmark, context: dict[str, list[bytes]],
                                   entries: int) -> None:
    principals = {IDENTITY: Principal("city-chiyoda", IDENTITY, frozenset({"agency"}))}
    auth.revoked = frozenset(
        f"sha256:{hashlib.sha256(i.to_bytes(4, 'big')).hexdigest()}" for i in range(entries))
    try:
        p = benchmark(auth.identify, context, principals, "/symbolsvc.v1.SymbolService/X")
    finally:
        auth.revoked = frozenset()
    assert p.name == "city-chiyoda"
