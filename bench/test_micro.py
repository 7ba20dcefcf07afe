"""Micro-benchmarks of the per-item hot paths (``python -m pytest bench -k micro``)."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from symbolsvc.numbers import validate_individual_number
from symbolsvc.policy import Policy
from symbolsvc.records import AccessKind, AccessRecord
from symbolsvc.registry import NewHolding
from symbolsvc.registry.sqlite import SqliteRegistry
from symbolsvc.symbols import Deriver


def test_micro_validate_number(benchmark, numbers) -> None:
    number = numbers.take(1)[0]
    assert benchmark(validate_individual_number, number) == number.encode()


def test_micro_derive_one_symbol(benchmark, deriver: Deriver, numbers) -> None:
    raw = numbers.take(1)[0].encode()

    def derive() -> str:
        return deriver.symbol("city-chiyoda", deriver.subject_id(raw))

    assert benchmark(derive).startswith("k1.")


def test_micro_derive_batch_1000(benchmark, deriver: Deriver, numbers) -> None:
    raws = [n.encode() for n in numbers.take(1000)]

    def derive() -> list[str]:
        return [deriver.symbol("city-chiyoda", deriver.subject_id(r)) for r in raws]

    assert len(benchmark(derive)) == 1000


def test_micro_seal(benchmark, deriver: Deriver) -> None:
    sid = deriver.subject_id(b"123456789018")
    symbol = deriver.symbol("city-chiyoda", sid)
    assert len(benchmark(deriver.seal, sid, "city-chiyoda", symbol)) == 61


def test_micro_unseal(benchmark, deriver: Deriver) -> None:
    sid = deriver.subject_id(b"123456789018")
    symbol = deriver.symbol("city-chiyoda", sid)
    sealed = deriver.seal(sid, "city-chiyoda", symbol)
    assert benchmark(deriver.unseal, sealed, "city-chiyoda", symbol) == sid


def _registry(loop: asyncio.AbstractEventLoop, path: Path) -> SqliteRegistry:
    async def make() -> SqliteRegistry:
        return SqliteRegistry(path)

    return loop.run_until_complete(make())


def test_micro_registry_insert(benchmark, tmp_path: Path, deriver: Deriver,
                               loop: asyncio.AbstractEventLoop) -> None:
    """One holding, one durable commit (so mostly the fsync: the group commit's floor)."""
    registry = _registry(loop, tmp_path / "r.db")
    counter = itertools.count()

    def insert() -> list[bool]:
        sid = deriver.subject_id(f"{next(counter):012d}".encode())
        symbol = deriver.symbol("city-chiyoda", sid)
        holding = NewHolding("city-chiyoda", symbol, deriver.seal(sid, "city-chiyoda", symbol))
        return loop.run_until_complete(registry.issue([holding]))

    assert benchmark.pedantic(insert, rounds=200, warmup_rounds=5) == [True]
    loop.run_until_complete(registry.close())


def test_micro_registry_lookup(benchmark, tmp_path: Path, deriver: Deriver,
                               loop: asyncio.AbstractEventLoop) -> None:
    registry = _registry(loop, tmp_path / "r.db")
    holdings = []
    for i in range(1000):
        sid = deriver.subject_id(f"{i:012d}".encode())
        symbol = deriver.symbol("city-chiyoda", sid)
        holdings.append(NewHolding("city-chiyoda", symbol,
                                   deriver.seal(sid, "city-chiyoda", symbol)))
    loop.run_until_complete(registry.issue(holdings))
    key = ("city-chiyoda", holdings[500].symbol)

    def lookup() -> bytes | None:
        return loop.run_until_complete(registry.lookup(*key))

    assert benchmark(lookup) == holdings[500].sealed_subject
    loop.run_until_complete(registry.close())


def test_micro_policy_check(benchmark, policy_file: Path) -> None:
    policy = Policy.load(policy_file)
    assert benchmark(policy.allows, "city-chiyoda", "demo-exchange", "demo-record",
                     "city-minato")


def test_micro_record_encode(benchmark) -> None:
    record = AccessRecord(AccessKind.TRANSLATE, 1_764_000_000_000_000, "city-chiyoda",
                          "demo-exchange", "demo-record", "exchange-0001", ("city-minato",),
                          bytes(32))
    leaf = benchmark(record.encode)
    assert AccessRecord.decode(leaf) == record


def test_micro_symbol_text(benchmark) -> None:
    """The base32 text of a symbol (symbols._b32_lower), checked against the stdlib's."""
    import base64
    import os

    from symbolsvc.symbols import _b32_lower

    digests = [os.urandom(32) for _ in range(2000)]
    for d in digests:
        assert _b32_lower(d) == base64.b32encode(d).decode("ascii").rstrip("=").lower()
    assert len(benchmark(_b32_lower, digests[0])) == 52
