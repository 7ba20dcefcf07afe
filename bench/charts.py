"""The report's charts, drawn with matplotlib (no display needed: the Agg/SVG backends).

Each chart is a function of the report returning a Figure, or None when the
run has nothing to show (no step windows, no server view). Service and
baseline are drawn on the same axes in fixed colours.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

COLOURS = {"service": "#c2410c", "baseline": "#1d4ed8"}
SIZE = (7.2, 3.4)
NO_METADATA: dict[str, Any] = {"Date": None, "Creator": None, "Format": None, "Type": None}


def _fig() -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=SIZE, layout="constrained")
    ax.grid(True, alpha=0.3)
    return fig, ax


def _ok(v: float | None) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def throughput(report: dict[str, Any]) -> Figure | None:
    fig, ax = _fig()
    for label, run in report["runs"].items():
        s = run["series"]
        ax.plot([x["t"] + 0.5 for x in s], [x["calls_per_s"] for x in s],
                color=COLOURS.get(label), label=f"{label} calls/s", marker=".")
        if any(x["errors"] for x in s):
            ax.plot([x["t"] + 0.5 for x in s], [x["errors"] for x in s], linestyle=":",
                    color=COLOURS.get(label), label=f"{label} errors/s")
    _offered(ax, report)
    ax.set(title="Throughput over time", xlabel="seconds into the measured window",
           ylabel="calls per second")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small")
    return fig


def _offered(ax: Any, report: dict[str, Any]) -> None:
    segs = report["config"]["schedule"]["segments"]
    if report["config"]["mode"] != "open":
        return
    xs, ys = [], []
    for a, b, r0, r1 in segs:
        xs += [a, b]
        ys += [r0, r1]
    ax.plot(xs, ys, color="grey", linestyle="--", label="offered")


def latency_over_time(report: dict[str, Any]) -> Figure | None:
    fig, ax = _fig()
    for label, run in report["runs"].items():
        s = [x for x in run["series"] if _ok(x["p50"])]
        t = [x["t"] + 0.5 for x in s]
        c = COLOURS.get(label)
        ax.plot(t, [x["p50"] for x in s], color=c, label=f"{label} p50", marker=".")
        ax.plot(t, [x["p99"] for x in s], color=c, linestyle="--", label=f"{label} p99")
    ax.set(title="Latency over time (per second, uncorrected)",
           xlabel="seconds into the measured window", ylabel="ms")
    ax.set_yscale("log")
    ax.legend(fontsize="small")
    return fig


def distribution(report: dict[str, Any]) -> Figure | None:
    fig, ax = _fig()
    for label, run in report["runs"].items():
        pts = [(q, v) for q, v in run["distribution"] if q < 100]
        if not pts:
            continue
        ax.plot([1 / (1 - q / 100) for q, _ in pts], [v for _, v in pts],
                color=COLOURS.get(label), label=label, marker="o")
    ticks = [1, 2, 10, 100, 1000, 10000]
    ax.set_xscale("log")
    ax.set_xticks(ticks, ["p0", "p50", "p90", "p99", "p99.9", "p99.99"])
    ax.set(title="Latency distribution (HDR percentile spectrum)", xlabel="percentile",
           ylabel="ms")
    ax.set_yscale("log")
    ax.legend(fontsize="small")
    return fig


def latency_vs_load(report: dict[str, Any]) -> Figure | None:
    runs = report["runs"]
    if report["config"]["mode"] != "open" or len(runs["service"]["windows"]) < 2:
        return None
    fig, ax = _fig()
    cap = report.get("capacity") or {}
    for label, run in runs.items():
        ws = [w for w in run["windows"] if _ok(w["latency_ms"]["p99"])]
        c = COLOURS.get(label)
        ax.plot([w["offered_per_s"] for w in ws], [w["latency_ms"]["p99"] for w in ws],
                color=c, marker="o", label=f"{label} p99")
        ax.plot([w["offered_per_s"] for w in ws], [w["latency_ms"]["p50"] for w in ws],
                color=c, marker=".", linestyle=":", label=f"{label} p50")
        knee = cap.get(label)
        if knee and knee.get("window") is not None:
            w = run["windows"][knee["window"]]
            ax.axvline(w["offered_per_s"], color=c, alpha=0.5)
            ax.annotate(f"{label} knee\n{w['offered_per_s']:,.0f}/s",
                        (w["offered_per_s"], w["latency_ms"]["p99"]), color=c,
                        textcoords="offset points", xytext=(6, 8), fontsize="small")
    for o in _slo_latency(cap):
        ax.axhline(o, color="black", linestyle="--", alpha=0.5, label="SLO")
    ax.set(title="Latency vs offered load" + (" (knee: capacity under the SLO)" if cap else ""),
           xlabel="offered calls per second", ylabel="ms")
    ax.set_yscale("log")
    ax.legend(fontsize="small")
    return fig


def _slo_latency(cap: dict[str, Any]) -> list[float]:
    from .schedule import parse_slo

    slo = cap.get("service", {}).get("slo")
    if not slo:
        return []
    return [o.value for o in parse_slo(slo) if o.metric.startswith("p")][:1]


def server_view(report: dict[str, Any]) -> Figure | None:
    runs = {k: v["server"] for k, v in report["runs"].items() if v.get("server", {}).get("series")}
    if not runs:
        return None
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(SIZE[0], SIZE[1]), layout="constrained")
    for label, srv in runs.items():
        s = srv["series"][1:]
        c = COLOURS.get(label)
        pids = sorted({p for x in s for p in x["cpu_pct"]})
        for i, pid in enumerate(pids):
            ax.plot([x["t"] for x in s], [x["cpu_pct"].get(pid, 0.0) for x in s], color=c,
                    alpha=1.0 if i == 0 else 0.6, label=f"{label} pid {pid}")
        ax2.plot([x["t"] for x in srv["series"]], [x["rss_mb"] for x in srv["series"]],
                 color=c, label=label)
    ax.set(title="Server CPU per process", xlabel="s (0 = measuring starts)", ylabel="% of a core")
    ax2.set(title="Server RSS", xlabel="s (0 = measuring starts)", ylabel="MB")
    for a in (ax, ax2):
        a.grid(True, alpha=0.3)
        a.legend(fontsize="x-small")
    ax2.set_ylim(bottom=0)
    return fig


CHARTS: dict[str, Callable[[dict[str, Any]], Figure | None]] = {
    "throughput": throughput,
    "latency-over-time": latency_over_time,
    "latency-distribution": distribution,
    "latency-vs-load": latency_vs_load,
    "server": server_view,
}


def render(report: dict[str, Any]) -> dict[str, Figure]:
    out = {}
    for name, make in CHARTS.items():
        fig = make(report)
        if fig is not None:
            out[name] = fig
    return out


def svg(fig: Figure, salt: str) -> str:
    """The figure as an inline <svg> element (ids salted, so several can share a page)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt, "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata=NO_METADATA)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def close(figs: dict[str, Figure]) -> None:
    for f in figs.values():
        plt.close(f)
