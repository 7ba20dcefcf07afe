"""A/B: the core's hot paths with one accepted symbol-key version (steady state) vs two (the
window between `symbolsvc keys rotate` and `keys retire`), same run, SQLite registry.

``python -m pytest bench/test_rotation.py``: compare the ``[one]`` and ``[two]`` medians.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from symbolsvc.core import Core, TranslateRequest
from symbolsvc.keys import Keyring
from symbolsvc.policy import PolicyHolder
from symbolsvc.registry.sqlite import SqliteRegistry
from symbolsvc.symbols import Deriver

BATCH = 1000
ROUNDS = 20


def _deriver(versions: str) -> Deriver:
    keyring = Keyring.generate()
    if versions == "two":
        keyring.symbol_keys[2] = os.urandom(32)
        keyring.current_version = 2
    return Deriver(keyring)


def _core(loop: asyncio.AbstractEventLoop, path: Path, versions: str, policy: Path) -> Core:
    async def make() -> SqliteRegistry:
        return SqliteRegistry(path)

    return Core(_deriver(versions), loop.run_until_complete(make()), PolicyHolder(policy))


@pytest.mark.parametrize("versions", ["one", "two"])
def test_rotation_issue_many_1000(benchmark, tmp_path: Path, numbers, policy_file: Path,
                                  loop: asyncio.AbstractEventLoop, versions: str) -> None:
    """New subjects: one multi-row upsert (one version) vs a read-then-write per item (two)."""
    core = _core(loop, tmp_path / "r.db", versions, policy_file)
    batches = iter([numbers.take(BATCH) for _ in range(ROUNDS + 1)])
    outcomes = benchmark.pedantic(
        lambda nums: loop.run_until_complete(core.issue_many("city-chiyoda", nums)),
        setup=lambda: ((next(batches),), {}), rounds=ROUNDS, warmup_rounds=1)
    assert all(o.newly_registered for o in outcomes)
    loop.run_until_complete(core.registry.close())


@pytest.mark.parametrize("versions", ["one", "two"])
def test_rotation_translate_100(benchmark, tmp_path: Path, numbers, policy_file: Path,
                                loop: asyncio.AbstractEventLoop, versions: str) -> None:
    """A batch of 100 translations: one write unit each (one version) plus one batched read
    of the requester's and the provider's rows (two)."""
    core = _core(loop, tmp_path / "r.db", versions, policy_file)
    nums = numbers.take(100)
    mine = loop.run_until_complete(core.issue_many("city-chiyoda", nums))
    loop.run_until_complete(core.issue_many("city-minato", nums))
    rounds = iter(range(ROUNDS + 1))

    def fresh() -> tuple[tuple[list[TranslateRequest]], dict[str, object]]:
        r = next(rounds)  # new exchange ids each round: a repeated id would be a replay
        return ([TranslateRequest("city-chiyoda", o.symbol, "city-minato", "demo-exchange",
                                  "demo-record", f"x{r}-{i}") for i, o in enumerate(mine)],), {}

    out = benchmark.pedantic(lambda reqs: loop.run_until_complete(core.translate_many(reqs)),
                             setup=fresh, rounds=ROUNDS, warmup_rounds=1)
    assert all(hasattr(o, "provider_symbol") for o in out)
    loop.run_until_complete(core.registry.close())
