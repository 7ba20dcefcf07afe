"""Batch issuance against its storage floor (issue 4: items/s >= 0.7 of the floor).

``test_floor_batch_1000`` writes the rows of one 1,000-item batch issuance
straight into the registry's schema with the registry's durability
(:mod:`bench.floor`); ``test_issue_many_1000`` runs ``Core.issue_many`` for
1,000 new numbers through the real ``SqliteRegistry`` (validation, three
keyed derivations and a seal per number, the group-commit writer thread).
Each round is a new batch of new numbers. The ratio is the floor's mean time
over issue_many's; pytest-benchmark prints both, docs/BENCHMARKS.md quotes it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.floor import fake_rows, insert_batch, open_floor
from symbolsvc.core import Core
from symbolsvc.policy import PolicyHolder
from symbolsvc.registry.sqlite import SqliteRegistry
from symbolsvc.symbols import Deriver

BATCH = 1000
ROUNDS = 30


def test_floor_batch_1000(benchmark, tmp_path: Path) -> None:
    conn = open_floor(tmp_path / "floor.db")
    batches = iter([fake_rows("city-chiyoda", BATCH) for _ in range(ROUNDS + 1)])

    def setup() -> tuple[tuple[list[tuple[str, str, bytes]]], dict]:
        return (next(batches),), {}

    fresh = benchmark.pedantic(lambda rows: insert_batch(conn, rows), setup=setup,
                               rounds=ROUNDS, warmup_rounds=1)
    assert all(fresh)
    conn.close()


def test_issue_many_1000(benchmark, tmp_path: Path, deriver: Deriver, numbers,
                         policy_file: Path, loop: asyncio.AbstractEventLoop) -> None:
    registry = loop.run_until_complete(_open(tmp_path / "registry.db"))
    core = Core(deriver, registry, PolicyHolder(policy_file))
    batches = iter([numbers.take(BATCH) for _ in range(ROUNDS + 1)])

    def setup() -> tuple[tuple[list[str]], dict]:
        return (next(batches),), {}

    outcomes = benchmark.pedantic(
        lambda nums: loop.run_until_complete(core.issue_many("city-chiyoda", nums)),
        setup=setup, rounds=ROUNDS, warmup_rounds=1)
    assert all(o.newly_registered for o in outcomes)
    loop.run_until_complete(registry.close())


async def _open(path: Path) -> SqliteRegistry:
    return SqliteRegistry(path)


@pytest.mark.parametrize("size", [1, 100])
def test_floor_small_batches(benchmark, tmp_path: Path, size: int) -> None:
    """The fsync floor itself: one commit of 1 and of 100 rows."""
    conn = open_floor(tmp_path / "floor.db")
    batches = iter([fake_rows("city-chiyoda", size) for _ in range(ROUNDS + 1)])
    benchmark.pedantic(lambda rows: insert_batch(conn, rows),
                       setup=lambda: ((next(batches),), {}), rounds=ROUNDS, warmup_rounds=1)
    conn.close()
