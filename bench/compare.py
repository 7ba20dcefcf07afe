"""``python -m bench.load compare OLD.json NEW.json [--threshold 5%]``: catch regressions.

Compares the figures two reports share, each as a ratio to the baseline run
in the same report (service / empty-handler server), so that two runs taken
on a machine whose speed drifts are still comparable; absolute figures are
compared only when a report has no baseline (and the table says so). Prints
one row per figure with its change and exits 1 when any figure got worse by
more than the threshold, 0 otherwise (2 for unusable input). When both
reports hold several rounds (``--rounds N``), a headline ratio whose range
over the rounds overlaps the other report's range is not called a change:
on a shared machine the spread between rounds is the noise floor.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

HIGHER_IS_BETTER = ("throughput", "capacity", "calls/s", "items/s")


def figures(report: dict[str, Any]) -> tuple[dict[str, float], bool]:
    """(figure name -> value, whether they are ratios to the baseline)."""
    runs = report["runs"]
    out: dict[str, float] = {}
    if report.get("ratios") and "baseline" in runs:
        for k, v in report["ratios"].items():
            if v is not None:
                out[f"{'throughput' if k == 'throughput' else k + ' latency'} ratio"] = v
        base = runs["baseline"]
        for rpc, x in runs["service"].get("per_rpc", {}).items():
            b = base.get("per_rpc", {}).get(rpc)
            if len(runs["service"]["per_rpc"]) > 1 and b:
                for q in ("p50", "p99"):
                    out[f"{rpc} {q} latency ratio"] = _div(x["latency_ms"][q],
                                                           b["latency_ms"][q])
        cap = report.get("capacity") or {}
        if "ratio" in cap:
            out["capacity ratio"] = cap["ratio"]
        if "refined_ratio" in cap:
            out["capacity ratio (refined)"] = cap["refined_ratio"]
        return {k: v for k, v in out.items() if _finite(v)}, True
    s = runs["service"]
    out = {"calls/s": s["calls_per_s"], "items/s": s["items_per_s"],
           **{f"{q} latency ms": s["latency_ms"][q] for q in ("p50", "p99", "p99.9")}}
    if report.get("capacity"):
        out["capacity calls/s"] = report["capacity"]["service"]["offered_per_s"]
    return {k: v for k, v in out.items() if _finite(v)}, False


def spreads(report: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """(lowest, highest) of each ratio over the report's rounds (when 2 or more)."""
    rounds = [r for r in report.get("rounds", []) if r.get("ratios")]
    if len(rounds) < 2:
        return {}
    per_round = [figures({"runs": r["runs"], "ratios": r["ratios"]})[0] for r in rounds]
    return {name: (min(f[name] for f in per_round), max(f[name] for f in per_round))
            for name in per_round[0] if all(name in f for f in per_round)}


def _div(a: float, b: float) -> float:
    return round(a / b, 3) if b and _finite(a) and _finite(b) else math.nan


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def compare(old: dict[str, Any], new: dict[str, Any],
            threshold: float) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows (figure, old, new, change, verdict) and warnings."""
    fo, ratios_old = figures(old)
    fn, ratios_new = figures(new)
    warnings = []
    if ratios_old != ratios_new:
        warnings.append("one report has a baseline and the other not: comparing absolute "
                        "figures only where both have them")
        if ratios_old:
            fo, _ = figures({**old, "ratios": None})
        else:
            fn, _ = figures({**new, "ratios": None})
    elif not ratios_old:
        warnings.append("no baseline in either report: absolute figures compared (on a "
                        "shared machine they drift; run with --baseline)")
    for key in ("mode", "mix", "concurrency", "batch"):
        if old["config"].get(key) != new["config"].get(key):
            warnings.append(f"the runs differ in {key}: {old['config'].get(key)!r} vs "
                            f"{new['config'].get(key)!r}")
    so, sn = spreads(old), spreads(new)
    rows = []
    for name in fo:
        if name not in fn:
            continue
        a, b = fo[name], fn[name]
        change = (b - a) / a if a else math.inf if b else 0.0
        better_up = name.startswith(HIGHER_IS_BETTER)
        worse = -change if better_up else change
        verdict = "REGRESSED" if worse > threshold else ("improved" if worse < -threshold
                                                          else "same")
        if verdict != "same" and name in so and name in sn \
                and so[name][0] <= sn[name][1] and sn[name][0] <= so[name][1]:
            verdict = "same (within the rounds' spread)"  # the medians moved, the ranges overlap
        rows.append({"figure": name, "old": a, "new": b, "change": change, "verdict": verdict,
                     "better": "higher" if better_up else "lower"})
    return rows, warnings


def table(rows: list[dict[str, Any]], threshold: float) -> str:
    lines = [f"| figure | old | new | change | better | verdict (threshold {threshold:.1%}) |",
             "|---|---:|---:|---:|---|---|"]
    for r in rows:
        verdict = "**REGRESSED**" if r["verdict"] == "REGRESSED" else r["verdict"]
        lines.append(f"| {r['figure']} | {r['old']:g} | {r['new']:g} | {r['change']:+.1%} "
                     f"| {r['better']} | {verdict} |")
    return "\n".join(lines)


def parse_threshold(text: str) -> float:
    t = text.strip()
    value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    if not 0 <= value < 10:
        raise argparse.ArgumentTypeError("threshold: e.g. 5% or 0.05")
    return value


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.load compare", description=__doc__)
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument("--threshold", type=parse_threshold, default=0.05,
                   help="relative change that counts as a regression (default 5%%)")
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = p.parse_args(argv)
    try:
        old = json.loads(args.old.read_text())
        new = json.loads(args.new.read_text())
        rows, warnings = compare(old, new, args.threshold)
    except (OSError, ValueError, KeyError) as exc:
        print(f"bench.load compare: cannot compare: {exc}", file=sys.stderr)
        return 2
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not rows:
        print("bench.load compare: the reports share no figure", file=sys.stderr)
        return 2
    print(table(rows, args.threshold))
    if args.json:
        args.json.write_text(json.dumps({"threshold": args.threshold, "rows": rows,
                                         "warnings": warnings}, indent=1) + "\n")
    regressed = [r["figure"] for r in rows if r["verdict"] == "REGRESSED"]
    if regressed:
        print(f"\nregressed beyond {args.threshold:.1%}: {', '.join(regressed)}")
        return 1
    print(f"\nno figure regressed beyond {args.threshold:.1%}")
    return 0
