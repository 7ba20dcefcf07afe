"""Set-up before a run: caller identities, and the subjects registered beforehand.

Translate, resolve and the portal need subjects that are already held:
``register`` issues each subject to every agency that holds it (and to the
portal, when the mix lists portal calls) with BatchIssueSymbols, and returns
each subject's symbols, which the client processes then draw from.
"""

from __future__ import annotations

import tomllib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from .plan import Subject, nth_number


def identity(deployment: Path, name: str) -> tuple[bytes, bytes]:
    pki = deployment / "pki"
    return (pki / f"{name}.crt").read_bytes(), (pki / f"{name}.key").read_bytes()


def ca(deployment: Path) -> bytes:
    return (deployment / "pki" / "ca.crt").read_bytes()


def deployment_agencies(deployment: Path) -> list[str]:
    """The agencies of a deployment, in config order (principals with the agency role)."""
    config = tomllib.loads((deployment / "config.toml").read_text())
    return [name for name, p in config.get("principals", {}).items()
            if "agency" in p.get("roles", []) and name != "portal"]


async def register(deployment: Path, target: str, holders: Sequence[Sequence[str]],
                   base: int, portal: bool) -> tuple[Subject, ...]:
    """Issue subject ``i`` (number ``base + i``) to each agency in ``holders[i]`` (and to
    the portal if ``portal``); return the subjects with their symbols."""
    import grpc

    from symbolsvc.v1 import symbol_service_pb2 as spb
    from symbolsvc.v1 import symbol_service_pb2_grpc as sgrpc

    numbers = [nth_number(base + i) for i in range(len(holders))]
    by_agency: dict[str, list[int]] = defaultdict(list)
    for i, hs in enumerate(holders):
        for a in hs:
            by_agency[a].append(i)
        if portal:
            by_agency["portal"].append(i)
    symbols: dict[tuple[int, str], str] = {}
    for agency, subjects in by_agency.items():
        cert, key = identity(deployment, agency)
        creds = grpc.ssl_channel_credentials(ca(deployment), key, cert)
        async with grpc.aio.secure_channel(target, creds) as channel:
            stub = sgrpc.SymbolServiceStub(channel)
            for j in range(0, len(subjects), 1000):
                chunk = subjects[j:j + 1000]
                reply = await stub.BatchIssueSymbols(
                    spb.BatchIssueSymbolsRequest(individual_numbers=[numbers[i] for i in chunk]),
                    timeout=120)
                for i, r in zip(chunk, reply.results, strict=True):
                    if r.WhichOneof("outcome") != "issued":
                        raise SystemExit(f"bench.load: registering the population failed "
                                         f"at {agency}: {r.error.reason}")
                    symbols[(i, agency)] = r.issued.symbol
    return tuple(
        Subject(numbers[i], tuple((a, symbols[(i, a)]) for a in hs),
                symbols.get((i, "portal"), ""))
        for i, hs in enumerate(holders))
