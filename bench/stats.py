"""Latency statistics: HDR histograms per client process, merged in the parent.

Latencies are recorded in microseconds in an HDR histogram (``hdrhistogram``,
the Python port of Gil Tene's HdrHistogram: 3 significant digits, so every
percentile is within 0.1 % of the exact value). Each client process encodes
its histograms (compressed, base64) and the parent decodes and adds them:
percentiles of the whole run come from the merged histogram, never from
averaging per-process percentiles.

Closed loop: a caller that waits for a slow reply does not send the calls it
would have sent meanwhile, so a plain histogram under-reports the tail
(coordinated omission). Each latency is recorded with HdrHistogram's
``record_corrected_value(v, expected_interval)``, which back-fills the
missing samples; the expected interval is the caller's usual time between
calls, taken as the median latency of the warm-up (or ``--co-interval``).
The uncorrected figures are kept beside them. Open loop needs no correction:
each latency runs from the scheduled send time.
"""

from __future__ import annotations

import math
import statistics
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 600 * 1_000_000  # ten minutes
DIGITS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
SPECTRUM = (0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def to_us(seconds: float) -> int:
    return min(HIGHEST_US, max(LOWEST_US, round(seconds * 1e6)))


def merge(encoded: Iterable[str]) -> HdrHistogram:
    total = new_histogram()
    for e in encoded:
        if e:
            total.add(HdrHistogram.decode(e))
    return total


def encode(h: HdrHistogram) -> str:
    return h.encode().decode() if h.get_total_count() else ""


def values_at(h: HdrHistogram, qs: Sequence[float]) -> list[float]:
    """Nearest-rank percentiles (the value of rank ceil(q/100 * n)), in microseconds.

    hdrhistogram's own ``get_value_at_percentile`` rounds the rank to nearest instead,
    which with few samples picks the value below; we keep the textbook definition, so
    the figures agree with a reference computation on the raw samples. Each value is
    the highest value equivalent to its bucket (within 0.1 %, at 3 digits).
    """
    n = h.get_total_count()
    targets = sorted((max(1, math.ceil(q * n / 100 - 1e-9)), i) for i, q in enumerate(qs))
    out = [math.nan] * len(qs)
    total, t = 0, 0
    for index in range(h.counts_len):
        total += h.get_count_at_index(index)
        while t < len(targets) and total >= targets[t][0]:
            out[targets[t][1]] = h.get_highest_equivalent_value(h.get_value_from_index(index))
            t += 1
        if t == len(targets):
            break
    return out


def latency_ms(h: HdrHistogram) -> dict[str, float]:
    """p50, p90, p99, p99.9, max and mean in milliseconds (NaN when empty)."""
    if not h.get_total_count():
        return {**{_name(q): math.nan for q in PERCENTILES}, "max": math.nan, "mean": math.nan}
    values = values_at(h, PERCENTILES)
    out = {_name(q): round(v / 1000, 3) for q, v in zip(PERCENTILES, values, strict=True)}
    out["max"] = round(h.get_max_value() / 1000, 3)
    out["mean"] = round(h.get_mean_value() / 1000, 3)
    return out


def spectrum_ms(h: HdrHistogram) -> list[tuple[float, float]]:
    """(percentile, latency ms) points of the latency distribution."""
    if not h.get_total_count():
        return []
    values = [*values_at(h, SPECTRUM[:-1]), h.get_max_value()]
    return [(q, round(v / 1000, 3)) for q, v in zip(SPECTRUM, values, strict=True)]


def _name(q: float) -> str:
    return f"p{q:g}"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (the reference computation)."""
    if not sorted_values:
        return math.nan
    rank = math.ceil(q * len(sorted_values) / 100 - 1e-9)  # no float fuzz: 99.9% of 10,000
    k = max(0, min(len(sorted_values) - 1, rank - 1))
    return sorted_values[k]


# -- one client process's recording ---------------------------------------------------------


@dataclass
class Recorder:
    """Every measured call of one client process, digested at the end of the phase."""

    rpcs: list[str]
    closed_loop: bool
    t_measure: float
    duration: float
    windows: list[tuple[float, float]]  # (start, end) offsets of the schedule's segments
    keep_samples: bool = False
    rpc_of: array = field(default_factory=lambda: array("B"))
    offset: array = field(default_factory=lambda: array("d"))  # scheduled - t_measure
    latency: array = field(default_factory=lambda: array("d"))  # seconds
    warmup_latency: array = field(default_factory=lambda: array("d"))
    errors: list[tuple[int, float, str]] = field(default_factory=list)
    items: Counter = field(default_factory=Counter)
    item_errors: Counter = field(default_factory=Counter)
    not_new: Counter = field(default_factory=Counter)
    sent: int = 0
    errors_total: int = 0
    late_ms: float = 0.0

    def record(self, rpc: int, scheduled: float, done: float,
               outcome: tuple[int, int, int] | str) -> None:
        t = scheduled - self.t_measure
        if isinstance(outcome, str):
            self.errors_total += 1
        if t < 0:
            if not isinstance(outcome, str) and len(self.warmup_latency) < 100_000:
                self.warmup_latency.append(done - scheduled)
            return
        if t >= self.duration:
            return
        if isinstance(outcome, str):
            self.errors.append((rpc, t, outcome))
            return
        items, bad, old = outcome
        self.rpc_of.append(rpc)
        self.offset.append(t)
        self.latency.append(done - scheduled)
        self.items[rpc] += items - bad
        self.item_errors[rpc] += bad
        self.not_new[rpc] += old

    def co_interval_us(self, given_ms: float | None) -> int:
        if not self.closed_loop:
            return 0
        if given_ms is not None:
            return round(given_ms * 1000)
        source = self.warmup_latency or self.latency
        return to_us(statistics.median(source)) if source else 0

    def digest(self, co_interval_ms: float | None) -> dict[str, Any]:
        interval = self.co_interval_us(co_interval_ms)
        n_rpc = len(self.rpcs)
        raw = [new_histogram() for _ in range(n_rpc)]
        corrected = [new_histogram() for _ in range(n_rpc)]
        seconds = max(1, math.ceil(self.duration))
        series = [new_histogram() for _ in range(seconds)]
        wins = [new_histogram() for _ in self.windows]
        calls = Counter[int]()
        for rpc, t, lat in zip(self.rpc_of, self.offset, self.latency, strict=True):
            us = to_us(lat)
            calls[rpc] += 1
            raw[rpc].record_value(us)
            if interval:
                corrected[rpc].record_corrected_value(us, interval)
            series[min(int(t), seconds - 1)].record_value(us)
            for i, (a, b) in enumerate(self.windows):
                if a <= t < b:
                    wins[i].record_value(us)
                    break
        err_by_rpc: dict[int, Counter[str]] = {i: Counter() for i in range(n_rpc)}
        err_series = [0] * seconds
        err_wins = [0] * len(self.windows)
        for rpc, t, code in self.errors:
            err_by_rpc[rpc][code] += 1
            err_series[min(int(t), seconds - 1)] += 1
            for i, (a, b) in enumerate(self.windows):
                if a <= t < b:
                    err_wins[i] += 1
                    break
        return {
            "per_rpc": {self.rpcs[i]: {
                "calls": calls[i], "items": self.items[i], "item_errors": self.item_errors[i],
                "not_new": self.not_new[i], "errors": dict(err_by_rpc[i]),
                "hist": encode(corrected[i] if interval else raw[i]),
                "hist_uncorrected": encode(raw[i]),
            } for i in range(n_rpc)},
            "series": [{"hist": encode(h), "errors": e} for h, e in
                       zip(series, err_series, strict=True)],
            "windows": [{"hist": encode(h), "errors": e} for h, e in
                        zip(wins, err_wins, strict=True)],
            "sent": self.sent,
            "late_ms": self.late_ms,
            "co_interval_ms": interval / 1000 if interval else None,
            "samples": list(self.latency) if self.keep_samples else None,
        }


# -- the parent: merge client processes' digests into a run summary -----------------------


def summarise(digests: list[dict[str, Any]], offered: list[float],
              duration: float, window_spans: list[tuple[float, float]]) -> dict[str, Any]:
    """One run's figures from every client process's digest."""
    rpcs = list(digests[0]["per_rpc"])
    per_rpc: dict[str, Any] = {}
    all_hists, all_raw = [], []
    errors: Counter[str] = Counter()
    calls = items = item_errors = not_new = 0
    for rpc in rpcs:
        parts = [d["per_rpc"][rpc] for d in digests]
        h = merge(p["hist"] for p in parts)
        all_hists += [p["hist"] for p in parts]
        all_raw += [p["hist_uncorrected"] for p in parts]
        e: Counter[str] = Counter()
        for p in parts:
            e.update(p["errors"])
        c = sum(p["calls"] for p in parts)
        i = sum(p["items"] for p in parts)
        per_rpc[rpc] = {"calls": c, "calls_per_s": round(c / duration, 1), "items": i,
                        "latency_ms": latency_ms(h), "errors": dict(sorted(e.items()))}
        calls, items = calls + c, items + i
        item_errors += sum(p["item_errors"] for p in parts)
        not_new += sum(p["not_new"] for p in parts)
        errors.update(e)
    total = merge(all_hists)
    raw = merge(all_raw)
    series = []
    for s in range(len(digests[0]["series"])):
        h = merge(d["series"][s]["hist"] for d in digests)
        lat = latency_ms(h)
        series.append({"t": s, "calls_per_s": h.get_total_count(),
                       "errors": sum(d["series"][s]["errors"] for d in digests),
                       "p50": lat["p50"], "p99": lat["p99"]})
    windows = []
    for w, (a, b) in enumerate(window_spans):
        h = merge(d["windows"][w]["hist"] for d in digests)
        n = h.get_total_count()
        windows.append({"start": a, "end": b, "offered_per_s": round(offered[w], 1),
                        "calls": n, "calls_per_s": round(n / (b - a), 1),
                        "error_count": sum(d["windows"][w]["errors"] for d in digests),
                        "latency_ms": latency_ms(h)})
    co = [d["co_interval_ms"] for d in digests if d["co_interval_ms"]]
    summary = {
        "calls": calls,
        "items": items,
        "calls_per_s": round(calls / duration, 1),
        "items_per_s": round(items / duration, 1),
        "latency_ms": latency_ms(total),
        "errors": dict(sorted(errors.items())),
        "error_count": sum(errors.values()),
        "item_errors": item_errors,
        "not_new": not_new,
        "dispatcher_late_ms": round(max((d["late_ms"] for d in digests), default=0.0), 1),
        "per_rpc": per_rpc,
        "distribution": spectrum_ms(total),
        "series": series,
        "windows": windows,
        "hdr": encode(total),
    }
    if co:
        summary["co_interval_ms"] = round(statistics.median(co), 3)
        summary["latency_ms_uncorrected"] = latency_ms(raw)
        summary["co_backfilled"] = total.get_total_count() - raw.get_total_count()
    samples = [d["samples"] for d in digests if d["samples"] is not None]
    if samples:
        summary["samples_s"] = [v for s in samples for v in s]
    return summary


def ratios(service: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float | None]:
    def div(a: float, b: float) -> float | None:
        return round(a / b, 3) if b and not math.isnan(a) and not math.isnan(b) else None

    s, b = service["latency_ms"], baseline["latency_ms"]
    # A mix's items depend on how many batch calls fell in the window: compare its calls.
    unit = "items_per_s" if len(service.get("per_rpc", {})) <= 1 else "calls_per_s"
    return {"throughput": div(service[unit], baseline[unit]),
            "p50": div(s["p50"], b["p50"]), "p99": div(s["p99"], b["p99"]),
            "p99.9": div(s["p99.9"], b["p99.9"])}


def pick_median(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures to quote: each ratio's median over the rounds, and the runs of the
    round whose throughput ratio is the median (the last round without a baseline)."""
    if rounds[0]["ratios"] is None:
        return {"runs": rounds[-1]["runs"], "ratios": None}
    by_ratio = sorted(rounds, key=lambda r: r["ratios"]["throughput"] or 0.0)
    medians = {k: statistics.median(r["ratios"][k] or 0.0 for r in rounds)
               for k in rounds[0]["ratios"]}
    return {"runs": by_ratio[(len(rounds) - 1) // 2]["runs"], "ratios": medians}
