"""Issue 16's six figures in one run, each a median of alternating rounds, with a control.

    python -m bench.targets [--rounds 3] [--rows 1,2,3,4,5,6] [--json F] [--markdown F]

Not part of CI. Every row compares symbolsvc with its reference *in the same run*
(ratios, never absolute figures, are what transfer between machines):

1. ``IssueSymbol`` unary, 64 callers: items/s vs the empty-handler server (same TLS).
2. ``TranslateSymbol`` unary with its durable record, 64 callers: vs the empty server.
3. ``BatchIssueSymbols`` of 1,000 over gRPC, 4 callers: items/s vs the storage floor
   (the batch's rows written straight into the schema with the registry's
   durability, :mod:`bench.floor`), the floor measured between the rounds.
4. ``StreamIssueSymbols``, 4 streams of 1,000-number chunks: vs the empty stream.
5. ``BatchTranslateSymbols`` in process (``Core.translate_many`` of 1,000, durable):
   wall µs per item, against libpep-py 0.13 ``pseudonymize_batch``'s 68 µs per item
   on this kind of machine (the issue's figure; libpep-py has no wheel for this
   platform and its Rust build needs crates.io, which this machine cannot reach).
6. ``ResolveProviders``, 64 callers: vs the empty server.

Rows 1, 2, 4 and 6 run :mod:`bench.load` with ``--baseline`` (service and empty
server alternate within each round). The **control** is the same load against two
empty servers (``baseline / baseline``): how far from 1.0 it lands is this run's noise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path
from typing import Any

from bench.floor import fake_rows, insert_batch, open_floor, recorded_batch
from bench.run import prepare_deployment
from bench.servers import spawn_baseline

LIBPEP_US_PER_ITEM = 68.0
TARGETS = {1: 0.85, 2: 0.75, 3: 0.7, 4: 0.5, 5: 0.2, 6: 0.6}
GRPC_ROWS = {1: ("IssueSymbol", 64, []), 2: ("TranslateSymbol", 64, []),
             4: ("StreamIssueSymbols", 4, ["--batch", "1000"]),
             6: ("ResolveProviders", 64, [])}
NAMES = {1: "IssueSymbol unary vs empty-handler", 2: "TranslateSymbol unary vs empty-handler",
         3: "BatchIssueSymbols x1,000 over gRPC vs storage floor",
         4: "StreamIssueSymbols vs empty-handler stream",
         5: "BatchTranslateSymbols in process, µs/item vs libpep-py (lower is better)",
         6: "ResolveProviders vs empty-handler", 0: "empty server vs empty server"}


def _load(dep: Path, args: argparse.Namespace, rpc: str, concurrency: int,
          extra: list[str], *, target: str | None = None, baseline: bool = True
          ) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [sys.executable, "-m", "bench.load", "--deployment", str(dep), "--rpc", rpc,
                "--concurrency", str(concurrency), "--warmup", str(args.warmup),
                "--duration", str(args.duration), "--rounds", str(args.rounds), "--quiet",
                "--json", out.name, *extra]
        argv += ["--target", target] if target else ["--spawn"]
        if baseline:
            argv.append("--baseline")
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        return json.loads(Path(out.name).read_text())


def grpc_row(dep: Path, args: argparse.Namespace, row: int) -> dict[str, Any]:
    rpc, concurrency, extra = GRPC_ROWS[row]
    report = _load(dep, args, rpc, concurrency, extra)
    per_round = [r["ratios"]["throughput"] for r in report["rounds"]]
    runs = report["runs"]
    return {"ratio": statistics.median(per_round), "rounds": per_round,
            "service_items_per_s": round(runs["service"]["items_per_s"], 1),
            "baseline_items_per_s": round(runs["baseline"]["items_per_s"], 1)}


def control_row(dep: Path, args: argparse.Namespace) -> dict[str, Any]:
    other = spawn_baseline(dep, 1, label="control")
    try:
        report = _load(dep, args, "IssueSymbol", 64, [], target=other.address)
    finally:
        other.stop()
    per_round = [r["ratios"]["throughput"] for r in report["rounds"]]
    return {"ratio": statistics.median(per_round), "rounds": per_round}


def _median_items_per_s(conn: sqlite3.Connection, write: Callable[[list[Any]], object],
                        batches: int) -> float:
    """``write`` of 1,000 fresh rows per batch on ``conn`` (closed after), median of
    ``batches`` after one to warm up."""
    times = []
    for _ in range(batches + 1):
        rows = fake_rows("city-chiyoda", 1000)
        start = time.perf_counter()
        write(rows)
        times.append(time.perf_counter() - start)
    conn.close()
    return 1000 / statistics.median(times[1:])


def floor_items_per_s(directory: Path, batches: int = 10) -> float:
    """The storage floor: 1,000 rows per durable commit, median of ``batches``."""
    conn = open_floor(directory / f"floor-{time.monotonic_ns()}.db")
    return _median_items_per_s(conn, lambda rows: insert_batch(conn, rows), batches)


def recorded_floor_items_per_s(directory: Path, batches: int = 10) -> float:
    """The storage floor with the ISSUE records and their integration
    (:func:`bench.floor.recorded_batch`), 1,000 rows per batch, median of ``batches``;
    on the registry's own tuned writer connection (no checkpoint inside a COMMIT, a
    64 MiB cache), a passive checkpoint after each batch counted in its time, as the
    registry's checkpointer thread does that work on the same cores."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from symbolsvc.log.integrate import planner
    from symbolsvc.log.sequencer import checkpoint_signer
    from symbolsvc.registry.sqlite_wal import tune_writer

    plan = planner(checkpoint_signer("floor.local/access-log", Ed25519PrivateKey.generate()))
    conn = tune_writer(open_floor(directory / f"recorded-{time.monotonic_ns()}.db"))

    def write(rows: list[Any]) -> None:
        recorded_batch(conn, rows, plan)
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    return _median_items_per_s(conn, write, batches)


def batch_row(dep: Path, args: argparse.Namespace, directory: Path,
              target: str | None = None) -> dict[str, Any]:
    """Row 3; against the server at ``target`` (a ceiling's variant) instead of a spawned one."""
    per_round, floors, services = [], [], []
    for _ in range(args.rounds):  # alternate: the floor, then one round over gRPC
        floor = floor_items_per_s(directory)
        one = argparse.Namespace(**{**vars(args), "rounds": 1})
        report = _load(dep, one, "BatchIssueSymbols", 4, ["--batch", "1000"], target=target,
                       baseline=False)
        service = report["runs"]["service"]["items_per_s"]
        floors.append(floor)
        services.append(service)
        per_round.append(round(service / floor, 3))
    return {"ratio": statistics.median(per_round), "rounds": per_round,
            "service_items_per_s": round(statistics.median(services), 1),
            "floor_items_per_s": round(statistics.median(floors), 1)}


async def _translate_us_per_item(directory: Path, rounds: int) -> list[float]:
    from bench.exchanges_cpu import POLICY, _setup
    from symbolsvc.core import Core, TranslateRequest
    from symbolsvc.errors import SymbolsvcError
    from symbolsvc.keys import Keyring
    from symbolsvc.policy import PolicyHolder
    from symbolsvc.registry.sqlite import SqliteRegistry
    from symbolsvc.symbols import Deriver

    (directory / "policy.toml").write_text(POLICY)
    core = Core(Deriver(Keyring.generate()), SqliteRegistry(directory / "translate.db"),
                PolicyHolder(directory / "policy.toml"))
    symbols = await _setup(core)
    ids = count()
    out = []
    try:
        for _ in range(rounds + 1):
            reqs = [TranslateRequest("pension-service", s, "city-chiyoda", "survivor-pension",
                                     "resident-tax-income", f"targets-{next(ids)}")
                    for s in symbols]
            start = time.perf_counter()
            results = await core.translate_many(reqs)
            out.append((time.perf_counter() - start) / len(reqs) * 1e6)
            assert not any(isinstance(r, SymbolsvcError) for r in results)
    finally:
        await core.registry.close()
    return out[1:]  # the first warms the caches


def translate_row(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    us = asyncio.run(_translate_us_per_item(directory, max(args.rounds, 5)))
    median = statistics.median(us)
    return {"ratio": round(median / LIBPEP_US_PER_ITEM, 3), "us_per_item": round(median, 1),
            "rounds_us": [round(u, 1) for u in us], "libpep_us_per_item": LIBPEP_US_PER_ITEM}


def markdown(results: dict[int, dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [f"Medians of {args.rounds} alternating rounds ({args.duration:g} s each after "
             f"{args.warmup:g} s warm-up), one run:", "",
             "| row | figure | target | median | rounds |", "|---|---|---|---:|---|"]
    for row, r in sorted(results.items()):
        target = ("—" if row == 0 else
                  f"≤ {TARGETS[row]}" if row == 5 else f"≥ {TARGETS[row]}")
        rounds = r.get("rounds") or r["rounds_us"]
        lines.append(f"| {row or 'control'} | {NAMES[row]} | {target} | **{r['ratio']:.3f}** | "
                     f"{', '.join(f'{x:g}' for x in rounds)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.targets", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rows", default="0,1,2,3,4,5,6", help="which rows (0: the control)")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--json", type=Path)
    p.add_argument("--markdown", type=Path)
    args = p.parse_args(argv)
    rows = [int(r) for r in args.rows.split(",")]
    results: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="symbolsvc-targets-") as d:
        directory = Path(d)
        dep = directory / "dep"
        prepare_deployment(argparse.Namespace(deployment=dep, spawn=True, agency="city-chiyoda",
                                              provider="city-minato"), None)
        runners: dict[int, Callable[[], dict[str, Any]]] = {
            0: lambda: control_row(dep, args), 3: lambda: batch_row(dep, args, directory),
            5: lambda: translate_row(args, directory)}
        for row in rows:
            results[row] = runners[row]() if row in runners else grpc_row(dep, args, row)
            print(f"row {row}: {NAMES[row]}: {results[row]['ratio']:.3f}", file=sys.stderr)
    text = markdown(results, args)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))
    if args.markdown:
        args.markdown.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
