"""Ceilings for issue 16's unary rows: the same server with a storage cost taken out.

    python -m bench.ceilings [--rounds 3] [--rows 1,2,6] [--json F]

Not part of CI. For each row (1 ``IssueSymbol``, 2 ``TranslateSymbol``, 6
``ResolveProviders``; 64 callers) it measures, each against the empty-handler
server in alternating rounds of the same run (:mod:`bench.load` ``--baseline``):

* ``shipped``: symbolsvc as it is;
* ``nosync``: commits without fsync (:mod:`bench.variant_server`);
* ``inline``: no fsync and no writer thread: each write runs on the event loop.

``inline`` is the most any change to the storage path could give the row: what is
left between it and 1.0 is the request path itself (gRPC handlers in Python, the
interceptors, validation, HMACs, sealing, the record). Where a target is above the
``inline`` ceiling it cannot be met by storage work on this machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.run import prepare_deployment
from bench.servers import Spawned, spawn_service
from bench.targets import GRPC_ROWS, NAMES, TARGETS, _load

VARIANTS = ("shipped", "nosync", "inline")


def _spawn(dep: Path, variant: str) -> Spawned:
    if variant == "shipped":
        return spawn_service(dep, 1)
    return Spawned.start(variant, [sys.executable, "-m", "bench.variant_server", variant,
                                   "serve", "--config", str(dep / "config.toml"),
                                   "--listen", "127.0.0.1:0"])


def measure(dep: Path, args: argparse.Namespace, row: int, variant: str) -> dict[str, Any]:
    rpc, concurrency, extra = GRPC_ROWS[row]
    server = _spawn(dep, variant)
    try:
        report = _load(dep, args, rpc, concurrency, extra, target=server.address)
    finally:
        server.stop()
    per_round = [r["ratios"]["throughput"] for r in report["rounds"]]
    return {"ratio": statistics.median(per_round), "rounds": per_round,
            "items_per_s": round(report["runs"]["service"]["items_per_s"], 1)}


def markdown(results: dict[int, dict[str, dict[str, Any]]], args: argparse.Namespace) -> str:
    lines = [f"Ratios to the empty-handler server, medians of {args.rounds} alternating "
             f"rounds ({args.duration:g} s each after {args.warmup:g} s warm-up), one run:", "",
             "| row | figure | target | shipped | no fsync | no fsync, no writer thread |",
             "|---|---|---|---:|---:|---:|"]
    for row, by in sorted(results.items()):
        cells = " | ".join(f"{by[v]['ratio']:.3f}" for v in VARIANTS)
        lines.append(f"| {row} | {NAMES[row]} | ≥ {TARGETS[row]} | {cells} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ceilings", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rows", default="1,2,6")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows = [int(r) for r in args.rows.split(",")]
    if not set(rows) <= {1, 2, 6}:
        raise SystemExit("bench.ceilings: rows 1, 2 and 6 only (the unary rows)")
    results: dict[int, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="symbolsvc-ceilings-") as d:
        dep = Path(d) / "dep"
        prepare_deployment(argparse.Namespace(deployment=dep, spawn=True, agency="city-chiyoda",
                                              provider="city-minato"), None)
        for row in rows:
            results[row] = {}
            for variant in VARIANTS:
                results[row][variant] = measure(dep, args, row, variant)
                print(f"row {row} {variant}: {results[row][variant]['ratio']:.3f}",
                      file=sys.stderr)
    text = markdown(results, args)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
