"""The cost of the ISSUE record per new holding (issue 13), A/B within one run.

Each round issues one batch of new subjects through ``rotation.issue_subjects`` (what
``Core.issue_many`` calls after validation: derivation, sealing, one group commit),
alternating A = without linkage records and B = with the ISSUE record built and
appended in the same transaction. Medians of the rounds per side, and their ratio.

    python -m bench.linkage_cost [--storage URL] [--batch 1000] [--rounds 9]

``--storage`` defaults to a fresh SQLite file in a temporary directory; a
``postgresql://`` URL must name an empty database (it is migrated first).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from symbolsvc import rotation
from symbolsvc.keys import Keyring
from symbolsvc.newrecords import linkage_records
from symbolsvc.records import AccessKind
from symbolsvc.registry import HoldingsStore
from symbolsvc.registry.backends import backend_for, open_registry
from symbolsvc.symbols import Deriver

AGENCY = "city-chiyoda"


async def _round(d: Deriver, registry: HoldingsStore, batch: int, records: bool
                 ) -> tuple[float, float]:
    sids = [os.urandom(32) for _ in range(batch)]
    now = time.time_ns() // 1000
    builder = (lambda s: linkage_records(d, AccessKind.ISSUE, now, AGENCY, s)) \
        if records else None
    start, cpu = time.perf_counter(), time.process_time()
    issued = await rotation.issue_subjects(d, registry, AGENCY, sids, records=builder)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert all(new for _, new in issued)
    return elapsed, cpu


async def main(url: str, base: Path, batch: int, rounds: int) -> None:
    d = Deriver(Keyring.generate())
    backend_for(url).migrate(url, base)
    registry = open_registry(url, base)
    try:
        await _round(d, registry, batch, True)  # warm-up (schema, caches)
        off: list[tuple[float, float]] = []
        on: list[tuple[float, float]] = []
        for i in range(rounds):
            for records, out in ((False, off), (True, on)) if i % 2 == 0 else \
                    ((True, on), (False, off)):
                out.append(await _round(d, registry, batch, records))
    finally:
        await registry.close()
    a, b = (statistics.median(t for t, _ in off), statistics.median(t for t, _ in on))
    ca, cb = (statistics.median(c for _, c in off), statistics.median(c for _, c in on))
    print(f"storage {url.split(':', 1)[0]}, batch {batch}, {rounds} alternating rounds each "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"A without ISSUE records: median {a * 1000:.1f} ms/batch = {batch / a:,.0f} items/s"
          f" (this process's CPU {ca * 1000:.1f} ms)")
    print(f"B with ISSUE records:    median {b * 1000:.1f} ms/batch = {batch / b:,.0f} items/s"
          f" (this process's CPU {cb * 1000:.1f} ms)")
    print(f"B/A time ratio {b / a:.2f} (CPU {cb / ca:.2f}); extra per new holding "
          f"{(b - a) / batch * 1e6:.1f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default="")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.storage or "sqlite:registry.db"
        asyncio.run(main(url, Path(tmp), args.batch, args.rounds))
