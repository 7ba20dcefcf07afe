"""CPU per tree growth with N caught-up watches, in one process (no network, no store).

    python -m bench.watch_wakeups [--watches 2000] [--growths 200] [--rounds 3]

What the log's growth costs the event loop when it concerns none of the watchers'
subjects (the common case: 2,000 portal watches, records about everyone else), for the
two ways a caught-up watch can wait, alternating within one run:

* ``each``: every watch waits on the process's ``LogNotifier`` and, woken, asks the
  shared scans (one read per cursor) and waits again: the watch loop before the
  per-portal followers;
* ``parked``: every watch parks with its portal's follower (``log/fanout.py``); the
  follower alone wakes, scans once, and wakes nobody.

The "store" answers at once with leaves no watch may see, so the figure is the loop's
own work per growth. CPU time of the process (``time.process_time``), so a loaded
machine slows it less than wall time would; the ratio within a round is the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

from symbolsvc.log.fanout import PortalFollowers, SharedScans
from symbolsvc.log.sequencer import LogNotifier

POLL = 3600.0


async def _round(mode: str, watches: int, growths: int) -> float:
    notifier = LogNotifier()
    size = [1]
    scanned: list[int] = [0]

    async def fetch(portal: str, after: int) -> tuple[list[int], list[bool]]:
        scanned[0] += 1
        leaves = list(range(after + 1, size[0]))
        return leaves, [False] * len(leaves)

    scans: SharedScans[tuple[list[int], list[bool]]] = SharedScans(fetch)
    notifier.advance(1)

    async def each() -> None:
        after = 0
        while not notifier.closed:
            leaves, _ = await scans.get("p", after, notifier.size)
            if leaves:
                after = leaves[-1]
            await notifier.wait_for_growth(after + 1, POLL)

    async def scan(portal: str, after: int, sz: int) -> tuple[list[int], list[bool]]:
        return await scans.get(portal, after, sz)

    followers = PortalFollowers(notifier, scan, POLL)
    far = asyncio.get_running_loop().time() + 3600

    async def parked() -> None:
        after = 0
        while not notifier.closed:
            after, _ = await followers.park("p", after, far)

    tasks = [asyncio.ensure_future(each() if mode == "each" else parked())
             for _ in range(watches)]
    for _ in range(20):
        await asyncio.sleep(0)
    start = time.process_time()
    for _ in range(growths):
        size[0] += 1
        notifier.advance(size[0])
        for _ in range(5):  # every woken coroutine runs (a wake-up takes a few loop turns)
            await asyncio.sleep(0)
    spent = time.process_time() - start
    notifier.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    return spent / growths * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.watch_wakeups", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--watches", type=int, default=2000)
    p.add_argument("--growths", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    out: dict[str, list[float]] = {"each": [], "parked": []}
    for _ in range(args.rounds):
        for mode in ("each", "parked"):
            out[mode].append(asyncio.run(_round(mode, args.watches, args.growths)))
    med = {m: statistics.median(v) for m, v in out.items()}
    print(json.dumps({"watches": args.watches, "growths": args.growths,
                      "cpu_us_per_growth": {m: [round(x, 1) for x in v] for m, v in out.items()},
                      "median_us": {m: round(v, 1) for m, v in med.items()},
                      "ratio_each_over_parked": round(med["each"] / med["parked"], 1)},
                     indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
