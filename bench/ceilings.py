"""Ceilings for issue 16's rows: the same server with a storage cost taken out.

    python -m bench.ceilings [--rounds 3] [--rows 1,2,3,4,5,6] [--json F]

Not part of CI. Each row is measured as :mod:`bench.targets` measures it (the unary
rows 1 ``IssueSymbol``, 2 ``TranslateSymbol`` and 6 ``ResolveProviders`` with 64 callers
and row 4 ``StreamIssueSymbols`` against the empty-handler server; row 3
``BatchIssueSymbols`` against the storage floor; row 5 ``Core.translate_many`` in
process, µs per item), once per variant (:mod:`bench.variant_server`):

* ``shipped``: symbolsvc as it is;
* ``nosync``: commits without fsync;
* ``inline``: no fsync and no writer thread: each write runs on the event loop;
* ``norecords`` (rows 3 and 4): ``inline``, and issuance appends no ISSUE record.

``inline`` is the most any change to the storage path could give the row: what is
left between it and the target is the request path itself (gRPC handlers in Python,
the interceptors, validation, HMACs, sealing, the record). Where a target is above the
``inline`` ceiling it cannot be met by storage work on this machine; ``norecords``
says what the access log's per-item record costs the batch rows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import primitives
from bench.run import prepare_deployment
from bench.servers import Spawned, spawn_service
from bench.targets import (
    GRPC_ROWS,
    LIBPEP_US_PER_ITEM,
    NAMES,
    TARGETS,
    _load,
    batch_row,
    recorded_floor_items_per_s,
)

VARIANTS = ("shipped", "nosync", "inline", "norecords")
ROW_VARIANTS = {1: VARIANTS[:3], 2: VARIANTS[:3], 3: VARIANTS, 4: VARIANTS, 5: VARIANTS[:3],
                6: VARIANTS[:3]}


def _spawn(dep: Path, variant: str) -> Spawned:
    if variant == "shipped":
        return spawn_service(dep, 1)
    return Spawned.start(variant, [sys.executable, "-m", "bench.variant_server", variant,
                                   "serve", "--config", str(dep / "config.toml"),
                                   "--listen", "127.0.0.1:0"])


def measure(dep: Path, args: argparse.Namespace, row: int, variant: str,
            directory: Path) -> dict[str, Any]:
    if row == 5:
        return _translate(args, variant, directory)
    server = _spawn(dep, variant)
    try:
        if row == 3:
            r = batch_row(dep, args, directory, target=server.address)
            return {"ratio": r["ratio"], "rounds": r["rounds"],
                    "items_per_s": r["service_items_per_s"],
                    "denominator_items_per_s": r["floor_items_per_s"]}
        rpc, concurrency, extra = GRPC_ROWS[row]
        report = _load(dep, args, rpc, concurrency, extra, target=server.address)
    finally:
        server.stop()
    per_round = [r["ratios"]["throughput"] for r in report["rounds"]]
    return {"ratio": statistics.median(per_round), "rounds": per_round,
            "items_per_s": round(report["runs"]["service"]["items_per_s"], 1),
            "denominator_items_per_s": round(report["runs"]["baseline"]["items_per_s"], 1)}


def primitives_bound(results: dict[int, dict[str, dict[str, Any]]], directory: Path
                     ) -> dict[int, dict[str, float]]:
    """Rows 3, 4 and 5: the best ratio the per-item work measured alone allows, against
    the row's own denominator of this run. Per item: the primitives
    (:mod:`bench.primitives`) and, for issuance, the storage the features need (holdings,
    ISSUE records, integration: :func:`bench.targets.recorded_floor_items_per_s`), each
    CPU-bound; ``serial``: one after the other; ``cores``: spread over every core with
    nothing else to do, a bound no design on this machine can pass."""
    prim = primitives.measure()
    cores = os.cpu_count() or 1
    out: dict[int, dict[str, float]] = {}
    issue_rows = [row for row in (3, 4) if row in results]
    stored_us = 1e6 / recorded_floor_items_per_s(directory) if issue_rows else 0.0
    for row in issue_rows:
        den_us = 1e6 / results[row]["shipped"]["denominator_items_per_s"]
        work = prim["issue_us"] + stored_us
        out[row] = {"primitives_us": prim["issue_us"], "stored_us": round(stored_us, 1),
                    "denominator_us": round(den_us, 2),
                    "shipped_us": round(1e6 / results[row]["shipped"]["items_per_s"], 1),
                    "serial": round(den_us / work, 3), "cores": round(den_us * cores / work, 3)}
    if 5 in results:
        out[5] = {"primitives_us": prim["translate_us"],
                  "shipped_us": results[5]["shipped"]["us_per_item"],
                  "serial": round(prim["translate_us"] / LIBPEP_US_PER_ITEM, 3),
                  "cores": round(prim["translate_us"] / cores / LIBPEP_US_PER_ITEM, 3)}
    return out


def _translate(args: argparse.Namespace, variant: str, directory: Path) -> dict[str, Any]:
    """Row 5 in a process of its own, the variant's patch applied there."""
    work = Path(tempfile.mkdtemp(prefix=f"row5-{variant}-", dir=directory))
    out = subprocess.run([sys.executable, "-m", "bench.variant_server", variant,
                          "translate-row", str(work), str(max(args.rounds, 5))],
                         check=True, capture_output=True, text=True).stdout
    us = json.loads(out)
    median = statistics.median(us)
    return {"ratio": round(median / LIBPEP_US_PER_ITEM, 3), "us_per_item": round(median, 1),
            "rounds": [round(u, 1) for u in us]}


def markdown(results: dict[int, dict[str, dict[str, Any]]], args: argparse.Namespace,
             bounds: dict[int, dict[str, float]]) -> str:
    lines = [f"Medians of {args.rounds} rounds ({args.duration:g} s each after "
             f"{args.warmup:g} s warm-up), one run; rows as in bench.targets:", "",
             "| row | figure | target | shipped | no fsync | no fsync, no writer thread "
             "| and no ISSUE record |", "|---|---|---|---:|---:|---:|---:|"]
    for row, by in sorted(results.items()):
        cells = " | ".join(f"{by[v]['ratio']:.3f}" if v in by else "—" for v in VARIANTS)
        target = f"≤ {TARGETS[row]}" if row == 5 else f"≥ {TARGETS[row]}"
        lines.append(f"| {row} | {NAMES[row]} | {target} | {cells} |")
    if bounds:
        lines += ["", "The per-item work measured alone (bench.primitives; for issuance also the "
                  "holdings with their ISSUE records and integration, bench.floor."
                  "recorded_batch), against this run's denominators, µs per item:", "",
                  "| row | primitives | storage with the records | denominator | shipped "
                  "| best ratio, serial | best ratio, every core | target |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for row, b in sorted(bounds.items()):
            den = f"{b['denominator_us']:.2f}" if "denominator_us" in b else (
                f"libpep-py {LIBPEP_US_PER_ITEM:g}")
            stored = f"{b['stored_us']:.1f}" if "stored_us" in b else "in primitives"
            target = f"≤ {TARGETS[row]}" if row == 5 else f"≥ {TARGETS[row]}"
            lines.append(f"| {row} | {b['primitives_us']:.1f} | {stored} | {den} | "
                         f"{b['shipped_us']:.1f} | {b['serial']:.3f} | {b['cores']:.3f} | "
                         f"{target} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ceilings", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rows", default="1,2,3,4,5,6")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows = [int(r) for r in args.rows.split(",")]
    if not set(rows) <= set(ROW_VARIANTS):
        raise SystemExit("bench.ceilings: rows 1 to 6")
    results: dict[int, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="symbolsvc-ceilings-") as d:
        directory = Path(d)
        dep = directory / "dep"
        prepare_deployment(argparse.Namespace(deployment=dep, spawn=True, agency="city-chiyoda",
                                              provider="city-minato"), None)
        for row in rows:
            results[row] = {}
            for variant in ROW_VARIANTS[row]:
                results[row][variant] = measure(dep, args, row, variant, directory)
                print(f"row {row} {variant}: {results[row][variant]['ratio']:.3f}",
                      file=sys.stderr)
        bounds = primitives_bound(results, directory)
    print(markdown(results, args, bounds))
    if args.json:
        args.json.write_text(json.dumps({"rows": {str(k): v for k, v in results.items()},
                                         "bounds": {str(k): v for k, v in bounds.items()}},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
