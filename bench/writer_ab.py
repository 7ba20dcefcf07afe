"""A/B of the SQLite writer's levers in one process (``python -m bench.writer_ab [ROUNDS]``).

"on": adaptive group gathering, WAL checkpoints in their own thread, a 64 MiB writer
cache (registry/groupcommit.py, registry/sqlite_wal.py; ``tuned_writer=True``). "off": the
same registry with SQLite's defaults and groups of whatever is queued. "wal": "on"
without the adaptive gathering, to tell the two levers apart. Each round runs all
three, rotating which goes first, on registries that grow through the run:

* ``unary``: 64 concurrent callers, each ``Core.issue`` of one new number in a closed
  loop, 3,000 calls: wall time and process CPU per call, and the mean group size;
* ``batch``: ``Core.issue_many`` of 1,000 new numbers, 5 batches: wall ms per batch.

The gRPC layer is left out on purpose: these levers act on the writer path only, and
the end-to-end ratio (bench.load) is too noisy on a shared machine to show them.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.plan import nth_number
from bench.test_rotation import _deriver
from symbolsvc.core import Core
from symbolsvc.policy import PolicyHolder
from symbolsvc.registry.sqlite import SqliteRegistry

POLICY = ('[groups]\nagencies = ["city-chiyoda"]\n\n[[allow]]\nrequester = "@agencies"\n'
          'office_work = "x"\ninfo_item = "y"\nproviders = ["@agencies"]\n')
CALLERS, UNARY_CALLS, BATCHES = 64, 3000, 5
VARIANTS = ["on", "off", "wal"]


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def take(self, k: int) -> list[str]:
        out = [nth_number(self.n + i) for i in range(k)]
        self.n += k
        return out


async def unary(core: Core, numbers: Counter) -> tuple[float, float, float]:
    todo = iter(numbers.take(UNARY_CALLS))
    registry = core.registry
    groups0, units0 = registry.commit_stats  # type: ignore[attr-defined]

    async def caller() -> None:
        for number in todo:
            await core.issue("city-chiyoda", number)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    groups, units = registry.commit_stats  # type: ignore[attr-defined]
    return wall / UNARY_CALLS * 1e6, cpu / UNARY_CALLS * 1e6, (units - units0) / max(
        1, groups - groups0)


async def batch(core: Core, numbers: Counter) -> float:
    times = []
    for _ in range(BATCHES):
        nums = numbers.take(1000)
        start = time.perf_counter()
        await core.issue_many("city-chiyoda", nums)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def measure(rounds: int, directory: Path) -> dict[str, dict[str, list[float]]]:
    policy = directory / "policy.toml"
    policy.write_text(POLICY)
    cores = {v: Core(_deriver("one"), SqliteRegistry(directory / f"{v}.db",
                                                      tuned_writer=(v != "off")),
                     PolicyHolder(policy)) for v in VARIANTS}
    for v in ("wal", "off"):  # the adaptive gathering is on by default
        cores[v].registry._writer._adaptive = False  # type: ignore[attr-defined]
    numbers = {v: Counter() for v in cores}
    out: dict[str, dict[str, list[float]]] = {
        v: {"unary_us": [], "unary_cpu_us": [], "group": [], "batch_ms": []} for v in cores}
    for r in range(rounds):
        order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
        for v in order:
            wall, cpu, group = await unary(cores[v], numbers[v])
            out[v]["unary_us"].append(wall)
            out[v]["unary_cpu_us"].append(cpu)
            out[v]["group"].append(group)
        for v in order:
            out[v]["batch_ms"].append(await batch(cores[v], numbers[v]))
    for core in cores.values():
        await core.registry.close()
    return out


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as d:
        out = asyncio.run(measure(rounds, Path(d)))
    print(f"load average {os.getloadavg()[0]:.1f}; medians of {rounds} alternating rounds")
    print("| figure | on | wal only | off | on/off | wal/off |\n|---|---:|---:|---:|---:|---:|")
    for key, label in (("unary_us", "unary issue, wall µs per call (64 callers)"),
                       ("unary_cpu_us", "unary issue, process CPU µs per call"),
                       ("group", "unary issue, mean units per group"),
                       ("batch_ms", "issue_many(1,000), wall ms per batch")):
        on, off, wal = (statistics.median(out[v][key]) for v in ("on", "off", "wal"))
        print(f"| {label} | {on:.1f} | {wal:.1f} | {off:.1f} | {on / off:.2f} | "
              f"{wal / off:.2f} |")


if __name__ == "__main__":
    main()
