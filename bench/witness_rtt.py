"""Witness round-trip cost per checkpoint, A/B (docs/BENCHMARKS.md, "Witnessed checkpoints").

    python -m bench.witness_rtt [ROUNDS] [CHECKPOINTS_PER_ROUND]

Two real ``symbolsvc witness serve`` processes on loopback, a SQLite registry, and in
alternating rounds:

* A: append one record, integrate (a signed checkpoint) — what the sequencer does anyway;
* B: the same, then submit the checkpoint to both witnesses the way the server's
  submitter does (add-checkpoint with a consistency proof, verify each cosignature,
  compare-and-set it into the stored note).

Prints the per-checkpoint median of each round, the medians over rounds, B/A and B-A.
The submitter runs off the write path in the server (docs/WITNESS.md): B-A is latency
until a checkpoint is witnessed and CPU spent beside the requests, not added to them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from symbolsvc.admin.witness import witness_init
from symbolsvc.log.checkpoint import vkey_string
from symbolsvc.log.integrate import planner
from symbolsvc.log.sequencer import checkpoint_signer
from symbolsvc.log.service import AccessLog
from symbolsvc.log.witnessing import Submitter
from symbolsvc.registry import NewRecord
from symbolsvc.registry.sqlite import SqliteRegistry

ORIGIN = "bench.local/witnessed-log"


def _spawn(directory: Path, name: str, log_vkey: str) -> tuple[subprocess.Popen[bytes], str, str]:
    wvkey = witness_init(directory, name, [log_vkey], "127.0.0.1:0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "symbolsvc", "witness", "serve", "--config",
         str(directory / "witness.toml")], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if not line.startswith("symbolsvc witness serving on "):
        raise SystemExit(f"witness did not start: {line!r}")
    return proc, "http://" + line.rsplit(" ", 1)[1].strip(), wvkey


def _record(i: int) -> NewRecord:
    return NewRecord(b"\x01\x01" + hashlib.sha256(b"%d" % i).digest() * 3, bytes(32), b"s")


async def _run(rounds: int, per_round: int, tmp: Path) -> None:
    key = Ed25519PrivateKey.generate()
    log_vkey = vkey_string(ORIGIN, key.public_key())
    witnesses = [_spawn(tmp / f"w{i}", f"bench.local/w{i}", log_vkey) for i in (1, 2)]
    reg = SqliteRegistry(tmp / "log.db")
    plan = planner(checkpoint_signer(ORIGIN, key))
    access_log = AccessLog(reg)

    async def never(_size: int, _timeout: float) -> None:
        await asyncio.Event().wait()

    # is_leader False: the submitter's own loop stays idle; the bench calls submit() itself
    submitter = Submitter(reg, access_log, never, [(url, wv) for _, url, wv in witnesses],
                          is_leader=lambda: False)
    await submitter.start()
    counter = iter(range(10**9))
    results: dict[str, list[float]] = {"A": [], "B": []}
    try:
        async def checkpoint(witnessed: bool) -> float:
            await reg.append_records([_record(next(counter))])
            t0 = time.perf_counter()
            result = await reg.integrate(100, "bench", 60_000, plan)
            if witnessed:
                cp = await reg.latest_checkpoint()
                assert cp is not None and cp.tree_size == result.tree_size
                lines = await submitter.submit(cp)
                assert len(lines) == 2, "both witnesses must cosign"
            return time.perf_counter() - t0

        for _ in range(3):  # warm-up: connections, first cosignatures
            await checkpoint(True)
        for r in range(rounds):
            for variant in ("A", "B") if r % 2 == 0 else ("B", "A"):
                times = [await checkpoint(variant == "B") for _ in range(per_round)]
                results[variant].append(statistics.median(times) * 1000)
                print(f"round {r + 1} {variant}: median {results[variant][-1]:.2f} ms "
                      f"per checkpoint ({per_round} checkpoints)", flush=True)
    finally:
        await submitter.stop()
        await reg.close()
        for proc, _, _ in witnesses:
            proc.terminate()
            proc.wait(timeout=30)
    a, b = statistics.median(results["A"]), statistics.median(results["B"])
    load = os.getloadavg()[0]
    print(f"A (integrate + sign): {a:.2f} ms; B (+ 2 witnesses): {b:.2f} ms; "
          f"B/A {b / a:.2f}; B-A {b - a:.2f} ms per checkpoint; load average {load:.1f}")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    per_round = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(rounds, per_round, Path(tmp)))


if __name__ == "__main__":
    main()
