"""A/B of building a 1,000-item ``BatchIssueSymbolsResponse`` (``python -m bench.replies_ab``).

**copy**: one ``IssueResult`` (and ``IssueSymbolResponse``) built per item and the list
passed to the reply, which copies each message in (before issue 16's second pass);
**in place**: ``services.symbol._fill``, which sets the fields of ``results.add()``.
Both build and serialise the same reply (checked equal); best of 5 x 50, alternating.
"""

from __future__ import annotations

import timeit

from symbolsvc.core import Issued
from symbolsvc.services.symbol import _fill
from symbolsvc.v1 import symbol_service_pb2 as pb

OUTCOMES = [Issued(symbol="A" * 32, newly_registered=True, key_version=1)] * 1000


def copy() -> bytes:
    return pb.BatchIssueSymbolsResponse(results=[
        pb.IssueResult(issued=pb.IssueSymbolResponse(
            symbol=o.symbol, newly_registered=o.newly_registered, key_version=o.key_version))
        for o in OUTCOMES]).SerializeToString()


def in_place() -> bytes:
    reply = pb.BatchIssueSymbolsResponse()
    _fill(reply.results, list(OUTCOMES))
    return reply.SerializeToString()


def main() -> None:
    assert copy() == in_place()
    for _ in range(2):
        for f in (copy, in_place):
            best = min(timeit.repeat(f, number=50, repeat=5)) / 50
            print(f"{f.__name__:>8}: {best * 1000:.2f} ms per 1,000 items")


if __name__ == "__main__":
    main()
