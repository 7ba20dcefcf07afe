"""Load schedules (open loop) and service-level objectives.

A schedule is a list of segments over the measured window, each with an
offered rate that is constant (``const``, ``step``) or linear (``ramp``).
Every segment is reported on its own, so a step or ramp run gives latency
against offered load; an SLO (``p99<=50ms,errors<=0.1%``) marks each segment
as meeting it or not, and the *capacity* is the highest offered rate whose
segment, and every segment below it, meets the SLO.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Segment:
    start: float  # seconds after the measured window opens
    end: float
    rate_from: float  # calls per second (all client processes together)
    rate_to: float

    @property
    def rate(self) -> float:
        """The mean offered rate over the segment."""
        return (self.rate_from + self.rate_to) / 2

    def rate_at(self, t: float) -> float:
        if self.end <= self.start:
            return self.rate_from
        f = min(1.0, max(0.0, (t - self.start) / (self.end - self.start)))
        return self.rate_from + f * (self.rate_to - self.rate_from)


@dataclass(frozen=True)
class Schedule:
    kind: str  # "closed" | "const" | "step" | "ramp"
    segments: tuple[Segment, ...]

    @property
    def duration(self) -> float:
        return self.segments[-1].end

    def rate_at(self, t: float) -> float:
        """Offered rate at ``t`` s into the measured window (warm-up: the first rate)."""
        if t < 0:
            return self.segments[0].rate_from
        for s in self.segments:
            if t < s.end:
                return s.rate_at(t)
        return self.segments[-1].rate_to

    def segment_of(self, t: float) -> int:
        for i, s in enumerate(self.segments):
            if s.start <= t < s.end:
                return i
        return -1

    def scaled(self, factor: float) -> Schedule:
        """The same schedule with every rate multiplied (the share of one client process)."""
        return Schedule(self.kind, tuple(
            Segment(s.start, s.end, s.rate_from * factor, s.rate_to * factor)
            for s in self.segments))

    def describe(self) -> str:
        if self.kind == "closed":
            return "closed loop"
        if self.kind == "const":
            return f"{self.segments[0].rate:g} calls/s open loop"
        if self.kind == "step":
            r = [s.rate for s in self.segments]
            return (f"step {r[0]:g}..{r[-1]:g} calls/s in {len(r)} steps of "
                    f"{self.segments[0].end - self.segments[0].start:g} s")
        return (f"ramp {self.segments[0].rate_from:g}->{self.segments[-1].rate_to:g} calls/s "
                f"over {self.duration:g} s ({len(self.segments)} windows)")


def closed(duration: float) -> Schedule:
    return Schedule("closed", (Segment(0.0, duration, 0.0, 0.0),))


def const(rate: float, duration: float) -> Schedule:
    return Schedule("const", (Segment(0.0, duration, rate, rate),))


def steps(start: float, end: float, step: float, step_duration: float) -> Schedule:
    if start <= 0 or step <= 0 or end < start or step_duration <= 0:
        raise ValueError("step schedule needs 0 < start <= end, step > 0, step duration > 0")
    n = math.floor((end - start) / step + 1e-9) + 1
    return Schedule("step", tuple(
        Segment(i * step_duration, (i + 1) * step_duration, start + i * step, start + i * step)
        for i in range(n)))


def ramp(start: float, end: float, duration: float, windows: int) -> Schedule:
    if start <= 0 or end < start or duration <= 0 or windows < 1:
        raise ValueError("ramp schedule needs 0 < start <= end, duration > 0, windows >= 1")
    w = duration / windows
    slope = (end - start) / duration
    return Schedule("ramp", tuple(
        Segment(i * w, (i + 1) * w, start + slope * i * w, start + slope * (i + 1) * w)
        for i in range(windows)))


# -- service-level objectives ----------------------------------------------------------------

_TERM = re.compile(r"^\s*(p50|p90|p99|p99\.9|max|errors|achieved)\s*(<=|>=)\s*"
                   r"([0-9.]+)\s*(ms|s|us|%)?\s*$")
_UNIT_MS = {"ms": 1.0, "s": 1000.0, "us": 0.001, None: 1.0}


@dataclass(frozen=True)
class Objective:
    metric: str  # p50 | p90 | p99 | p99.9 | max (ms), errors (fraction), achieved (fraction)
    op: str
    value: float
    text: str


def parse_slo(text: str) -> tuple[Objective, ...]:
    """``p99<=50ms,errors<=0.1%[,achieved>=95%]``: latency in ms/s/us, errors and the
    achieved share of the offered rate in %."""
    out = []
    for term in text.split(","):
        m = _TERM.match(term)
        if not m:
            raise ValueError(f"SLO term {term.strip()!r}: expected e.g. p99<=50ms, "
                             "errors<=0.1%, achieved>=95%")
        metric, op, number, unit = m.groups()
        value = float(number)
        if metric in ("errors", "achieved"):
            if unit not in ("%", None):
                raise ValueError(f"SLO term {term.strip()!r}: {metric} is a percentage")
            value /= 100.0
            if (metric == "errors") != (op == "<="):
                raise ValueError(f"SLO term {term.strip()!r}: use errors<= / achieved>=")
        else:
            if unit == "%" or op != "<=":
                raise ValueError(f"SLO term {term.strip()!r}: latency takes <= and a time")
            value *= _UNIT_MS[unit]
        out.append(Objective(metric, op, value, term.strip()))
    return tuple(out)


def evaluate(slo: tuple[Objective, ...], window: dict[str, Any]) -> list[str]:
    """The SLO terms a window's figures break (empty: it meets the SLO)."""
    broken = []
    for o in slo:
        if o.metric == "errors":
            total = window["calls"] + window["error_count"]
            got = window["error_count"] / total if total else 1.0
        elif o.metric == "achieved":
            offered = window.get("offered_per_s") or 0.0
            got = window["calls_per_s"] / offered if offered else 1.0
        else:
            got = window["latency_ms"].get(o.metric, math.inf)
            if window["calls"] == 0:
                got = math.inf
        ok = got <= o.value if o.op == "<=" else got >= o.value
        if not ok:
            broken.append(o.text)
    return broken


def capacity(slo: tuple[Objective, ...], windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mark each window against the SLO; the capacity (the knee) is the highest offered
    rate met before the first window that misses it.

    ``highest_met`` is the highest rate met anywhere: above the knee only by noise (on a
    shared machine a step can recover); the report shows both.
    """
    knee: dict[str, Any] | None = None
    first_miss = None
    highest = 0.0
    for i, w in enumerate(windows):
        w["slo_broken"] = evaluate(slo, w)
        if w["slo_broken"]:
            if first_miss is None:
                first_miss = i
            continue
        highest = max(highest, w["offered_per_s"])
        if first_miss is None:
            knee = w
    return {
        "slo": ",".join(o.text for o in slo),
        "offered_per_s": knee["offered_per_s"] if knee else 0.0,
        "calls_per_s": knee["calls_per_s"] if knee else 0.0,
        "latency_ms": knee["latency_ms"] if knee else None,
        "window": windows.index(knee) if knee else None,
        "first_miss": first_miss,
        "highest_met": highest,
        "bounded": first_miss is not None,  # False: every step met it (capacity is higher)
    }


def capacities(slo: tuple[Objective, ...], runs: dict[str, Any]) -> dict[str, Any]:
    """Each run's capacity under the SLO, and service / baseline when both ran."""
    out: dict[str, Any] = {label: capacity(slo, run["windows"]) for label, run in runs.items()}
    if "baseline" in out and "service" in out:
        b = out["baseline"]["offered_per_s"]
        out["ratio"] = round(out["service"]["offered_per_s"] / b, 3) if b else None
    return out
