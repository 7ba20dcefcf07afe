"""Process CPU time of ``Core.issue_many`` (1,000 new numbers) with one accepted symbol-key
version vs two, in alternating batches (``python -m bench.rotation_cpu [ROUNDS]``).

CPU time rather than wall time: on a shared machine the wall time of a durable batch is
mostly waiting for the CPU and the disk, which hides the work the second version adds.
"""

from __future__ import annotations

import asyncio
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


async def measure(rounds: int, directory: Path) -> dict[str, list[float]]:
    policy = directory / "policy.toml"
    policy.write_text(POLICY)
    cores = {v: Core(_deriver(v), SqliteRegistry(directory / f"{v}.db"), PolicyHolder(policy))
             for v in ("one", "two")}
    cpu: dict[str, list[float]] = {"one": [], "two": []}
    n = 0
    for _ in range(rounds):
        for v, core in cores.items():
            numbers = [nth_number(n + i) for i in range(1000)]
            n += 1000
            start = time.process_time()
            await core.issue_many("city-chiyoda", numbers)
            cpu[v].append(time.process_time() - start)
    for core in cores.values():
        await core.registry.close()
    return cpu


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 12
    with tempfile.TemporaryDirectory() as d:
        cpu = asyncio.run(measure(rounds, Path(d)))
    for v, times in cpu.items():
        print(f"{v} version(s): median CPU {statistics.median(times) * 1000:.1f} ms "
              f"per 1,000 issues ({rounds} batches)")


if __name__ == "__main__":
    main()
