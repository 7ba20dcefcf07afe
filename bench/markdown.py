"""The Markdown form of a report (printed after every run, pasted into docs)."""

from __future__ import annotations

import math
from typing import Any


def _ms(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def title(report: dict[str, Any]) -> str:
    c = report["config"]
    sc = report.get("scenario")
    what = (f"scenario {sc['name']}" if sc else
            " + ".join(f"{m['rpc']}" + (f" x{m['batch']}" if m["batch"] > 1 else "")
                       for m in c["mix"]))
    load = (f"{c['concurrency']} callers" if c["mode"] == "closed"
            else c["schedule"]["describe"])
    return (f"{what} — {load}, {c['processes']} client processes x {c['channels']} channels, "
            f"{c['duration']:g} s (+{c['warmup']:g} s warm-up)")


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"### {title(report)}",
        "",
        "| server | calls/s | items/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors "
        "| server CPU µs/call | server RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for label, r in report["runs"].items():
        lat = r["latency_ms"]
        errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
        if r["item_errors"]:
            errs += f" (+{r['item_errors']} item errors)"
        srv = r.get("server", {})
        lines.append(
            f"| {label} | {r['calls_per_s']:,.0f} | {r['items_per_s']:,.0f} | {_ms(lat['p50'])} "
            f"| {_ms(lat['p90'])} | {_ms(lat['p99'])} | {_ms(lat['p99.9'])} | {_ms(lat['max'])} "
            f"| {errs} | {srv.get('cpu_us_per_call') or '-'} | {srv.get('rss_mb', '-')} |")
    service = report["runs"].get("service", {})
    if "latency_ms_uncorrected" in service:
        u = service["latency_ms_uncorrected"]
        lines += ["", f"closed loop: latencies corrected for coordinated omission (expected "
                      f"interval {service['co_interval_ms']} ms); uncorrected service p99 "
                      f"{_ms(u['p99'])} ms, p99.9 {_ms(u['p99.9'])} ms"]
    if len(service.get("per_rpc", {})) > 1:
        lines += ["", "| service, per RPC | calls/s | p50 ms | p99 ms | errors |",
                  "|---|---:|---:|---:|---|"]
        for rpc, x in service["per_rpc"].items():
            errs = ", ".join(f"{k} {v}" for k, v in x["errors"].items()) or "0"
            lines.append(f"| {rpc} | {x['calls_per_s']:,.1f} | {_ms(x['latency_ms']['p50'])} "
                         f"| {_ms(x['latency_ms']['p99'])} | {errs} |")
    if report["config"]["mode"] == "open" and len(service.get("windows", [])) > 1:
        lines += _windows(report)
    if report.get("capacity"):
        cap = report["capacity"]
        parts = [f"{label} **{c['offered_per_s']:,.0f} calls/s**"
                 + ("" if c["bounded"] else " (the highest step met it: at least)")
                 + (f" (a higher step, {c['highest_met']:,.0f}/s, met it again)"
                    if c["highest_met"] > c["offered_per_s"] else "")
                 for label, c in cap.items() if isinstance(c, dict)]
        lines += ["", f"capacity under SLO `{cap['service']['slo']}`: " + ", ".join(parts)
                  + (f"; service / baseline **{cap['ratio']}**" if "ratio" in cap else "")]
        few = min((w["calls"] for run in report["runs"].values() for w in run["windows"]),
                  default=0)
        if few < 100:
            lines.append(f"- the smallest window has {few:,} calls, so its p99 is its slowest "
                         "call: lengthen --step-duration for a firmer knee")
        for label, c in cap.items():
            r = c.get("refined") if isinstance(c, dict) else None
            if r and r["probes"]:
                steps = ", ".join(f"{p['offered_per_s']:g}/s {'✗' if p['slo_broken'] else '✓'}"
                                  for p in r["probes"])
                lines.append(f"- {label}, refined by bisection: **{r['offered_per_s']:,.0f} "
                             f"calls/s** (probes: {steps})")
    if report.get("ratios"):
        r = report["ratios"]
        n = len(report["rounds"])
        lines += ["", f"service / baseline{f' (median of {n} rounds)' if n > 1 else ''}: "
                      f"throughput **{r['throughput']}**, p50 {r['p50']}x, p99 **{r['p99']}x**"]
        if n > 1:
            each = "; ".join(f"{x['ratios']['throughput']} / {x['ratios']['p99']}x"
                             for x in report["rounds"])
            lines += ["", f"rounds (throughput / p99): {each}"]
    return "\n".join(lines) + "\n"


def _windows(report: dict[str, Any]) -> list[str]:
    labels = list(report["runs"])
    head = " | ".join(f"{lb} calls/s | {lb} p99 ms" for lb in labels)
    lines = ["", f"| offered calls/s | {head} |",
             "|---:|" + "---:|" * (2 * len(labels))]
    runs = [report["runs"][lb]["windows"] for lb in labels]
    for i, w in enumerate(runs[0]):
        cells = []
        for ws in runs:
            x = ws[i]
            miss = " ✗" if x.get("slo_broken") else ""
            cells.append(f"{x['calls_per_s']:,.0f} | {_ms(x['latency_ms']['p99'])}{miss}")
        lines.append(f"| {w['offered_per_s']:,.0f} | " + " | ".join(cells) + " |")
    return lines
