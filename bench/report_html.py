"""The HTML report: one self-contained page (inline SVG charts, inline CSS, no script,
no external resource), viewable offline; and the same charts as PNG/SVG files."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from . import charts
from .markdown import title

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #1f2937; padding: 0 1em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border: 1px solid #d1d5db; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.miss { color: #b91c1c; font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr));
          gap: 1em; }
figure.chart { margin: 0; border: 1px solid #e5e7eb; padding: .4em; }
figure.chart svg { width: 100%; height: auto; }
.note { color: #4b5563; }
pre { white-space: pre-wrap; word-break: break-all; }
"""


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return html.escape(str(v))


def _table(head: list[str], rows: list[list[Any]], css_id: str = "") -> str:
    ident = f' id="{css_id}"' if css_id else ""
    out = [f"<table{ident}><thead><tr>"
           + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for r in rows:
        out.append("<tr>" + "".join(
            f"<td>{c if isinstance(c, _Raw) else _fmt(c)}</td>" for c in r) + "</tr>")
    return "".join(out) + "</tbody></table>"


class _Raw(str):
    """Already-escaped HTML for a table cell."""


def _summary(report: dict[str, Any]) -> str:
    rows = []
    for label, r in report["runs"].items():
        lat, srv = r["latency_ms"], r.get("server", {})
        errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
        rows.append([label, r["calls_per_s"], r["items_per_s"], lat["p50"], lat["p90"],
                     lat["p99"], lat["p99.9"], lat["max"], errs, srv.get("cpu_us_per_call"),
                     srv.get("rss_mb")])
    head = ["server", "calls/s", "items/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms",
            "errors", "server CPU µs/call", "server RSS MB"]
    out = _table(head, rows, "summary")
    if report.get("ratios"):
        r = report["ratios"]
        out += (f"<p>service / baseline: throughput <b>{_fmt(r['throughput'])}</b>, "
                f"p50 {_fmt(r['p50'])}x, p99 <b>{_fmt(r['p99'])}x</b>, "
                f"p99.9 {_fmt(r.get('p99.9'))}x"
                + (f" (median of {len(report['rounds'])} rounds)" if len(report["rounds"]) > 1
                   else "") + "</p>")
    service = report["runs"].get("service", {})
    if "latency_ms_uncorrected" in service:
        u = service["latency_ms_uncorrected"]
        out += (f"<p class=note>Closed loop: latencies are corrected for coordinated omission "
                f"(HdrHistogram, expected interval {_fmt(service['co_interval_ms'])} ms, the "
                f"warm-up's median). Uncorrected service p99 {_fmt(u['p99'])} ms, "
                f"p99.9 {_fmt(u['p99.9'])} ms.</p>")
    return out


def _per_rpc(report: dict[str, Any]) -> str:
    rows = []
    for label, run in report["runs"].items():
        for rpc, x in run.get("per_rpc", {}).items():
            errs = ", ".join(f"{k} {v}" for k, v in x["errors"].items()) or "0"
            rows.append([f"{label}: {rpc}", x["calls_per_s"], x["latency_ms"]["p50"],
                         x["latency_ms"]["p99"], x["latency_ms"]["p99.9"], errs])
    return _table(["server: RPC", "calls/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"], rows,
                  "per-rpc")


def _windows(report: dict[str, Any]) -> str:
    labels = list(report["runs"])
    head = ["offered calls/s"] + [f"{lb} {k}" for lb in labels
                                  for k in ("calls/s", "p50 ms", "p99 ms", "errors")]
    rows = []
    for i, w in enumerate(report["runs"][labels[0]]["windows"]):
        row: list[Any] = [w["offered_per_s"]]
        for lb in labels:
            x = report["runs"][lb]["windows"][i]
            p99 = _fmt(x["latency_ms"]["p99"])
            row += [x["calls_per_s"], x["latency_ms"]["p50"],
                    _Raw(f'<span class=miss title="{html.escape(", ".join(x["slo_broken"]))}">'
                         f"{p99} ✗</span>" if x.get("slo_broken") else p99), x["error_count"]]
        rows.append(row)
    out = _table(head, rows, "windows")
    cap = report.get("capacity")
    if cap:
        parts = [f"{html.escape(lb)} <b>{_fmt(c['offered_per_s'])} calls/s</b>"
                 + ("" if c["bounded"] else " (the highest step met it: at least)")
                 for lb, c in cap.items() if isinstance(c, dict)]
        out += (f"<p id=capacity>Capacity under the SLO <code>"
                f"{html.escape(cap['service']['slo'])}</code>: " + ", ".join(parts)
                + (f"; service / baseline <b>{_fmt(cap['ratio'])}</b>" if "ratio" in cap
                   else "") + ".</p>")
        for lb, c in cap.items():
            r = c.get("refined") if isinstance(c, dict) else None
            if r and r["probes"]:
                probes = ", ".join(f"{_fmt(p['offered_per_s'])}/s "
                                   f"{'✗' if p['slo_broken'] else '✓'}" for p in r["probes"])
                out += (f"<p>{html.escape(lb)}, refined by bisection: <b>"
                        f"{_fmt(r['offered_per_s'])} calls/s</b> (probes: {probes})</p>")
    return out


def _threads(report: dict[str, Any]) -> str:
    rows = []
    for label, run in report["runs"].items():
        for name, cpu in list(run.get("server", {}).get("threads_cpu_s", {}).items())[:12]:
            rows.append([label, name, cpu])
    if not rows:
        return "<p class=note>No server-side view: the server was not started by this run.</p>"
    return _table(["server", "process/thread", "CPU seconds (measured window)"], rows, "threads")


def _scenario(report: dict[str, Any]) -> str:
    sc = report.get("scenario")
    if not sc:
        return ""
    mix = ", ".join(f"{m['rpc']} {m['weight']:g}" + (f" (batch {m['batch']})"
                                                     if m["batch"] > 1 else "")
                    for m in sc["mix"])
    items = "".join(f"<li>{html.escape(a)}</li>" for a in sc["assumptions"])
    return (f"<h2>Scenario: {html.escape(sc['name'])}</h2><p>{html.escape(sc['description'])}"
            f"</p><p>Mix: {html.escape(mix)}. Population: {sc['subjects']:,} subjects over "
            f"{sc['municipalities']} municipalities (Zipf {sc['skew']:g}; the largest tenth "
            f"holds {sc['largest_tenth_share']:.0%}), new share {sc['new_fraction']:.0%}.</p>"
            + (f"<ul>{items}</ul>" if items else ""))


def page(report: dict[str, Any]) -> str:
    figs = charts.render(report)
    try:
        body = "".join(
            f'<figure class=chart id="chart-{name}">{charts.svg(fig, name)}</figure>'
            for name, fig in figs.items())
    finally:
        charts.close(figs)
    m = report["machine"]
    load = m.get("loadavg")
    open_loop = report["config"]["mode"] == "open" and len(
        report["runs"]["service"]["windows"]) > 1
    cfg = json.dumps({k: report["config"][k] for k in (
        "mix", "mode", "concurrency", "processes", "channels", "warmup", "duration", "workers")},
                     indent=1)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>symbolsvc bench: {html.escape(title(report))}</title>
<style>{CSS}</style></head>
<body>
<h1>symbolsvc bench: {html.escape(title(report))}</h1>
<p class=note>{html.escape(report['time'])} on {m['nproc']} cores ({html.escape(m['cpu'])}),
Python {html.escape(m['python'])}, grpcio {html.escape(m['grpcio'])}{
    f"; load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}" if load else ""}.
Client processes share the machine with the servers.</p>
<h2>Summary</h2>{_summary(report)}
{_scenario(report)}
<h2>Per RPC</h2>{_per_rpc(report)}
{"<h2>Offered load, step by step</h2>" + _windows(report) if open_loop else ""}
<h2>Charts</h2><div class=charts>{body}</div>
<h2>Server threads</h2>{_threads(report)}
<h2>Configuration</h2><pre id=config>{html.escape(cfg)}</pre>
</body></html>
"""


def write_html(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page(report))


def write_charts(report: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    figs = charts.render(report)
    written = []
    try:
        for name, fig in figs.items():
            for ext in ("png", "svg"):
                p = directory / f"{name}.{ext}"
                fig.savefig(p, dpi=110)
                written.append(p)
    finally:
        charts.close(figs)
    return written
