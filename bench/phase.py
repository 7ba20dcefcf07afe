"""One phase: a plan run on N client processes against one server, summarised."""

from __future__ import annotations

import multiprocessing
import queue
import sys
import time
from dataclasses import replace
from typing import Any

from .client import client_process
from .plan import PROCESS_STRIDE, Plan
from .servers import Sampler, Spawned
from .stats import summarise


def _all_ready(label: str, out: Any, procs: list[Any], timeout: float) -> float:
    """Wait until every client process has its connections open; the warm-up starts
    half a second later, at the same wall-clock time in every process."""
    ready: set[int] = set()
    deadline = time.time() + timeout
    while len(ready) < len(procs):
        if time.time() > deadline:
            raise SystemExit(f"bench.load: {label}: client processes did not connect")
        try:
            kind, i, payload = out.get(timeout=0.2)
        except queue.Empty:
            if not all(p.is_alive() for p in procs):
                raise SystemExit(f"bench.load: {label}: a client process died") from None
            continue
        if kind == "failed":
            raise SystemExit(f"bench.load: {label}: client process {i} failed: {payload}")
        if kind == "ready":
            ready.add(i)
    return time.time() + 0.5


def run_phase(label: str, base_plan: Plan, processes: int, server: Spawned | None,
              quiet: bool) -> dict[str, Any]:
    """Run ``base_plan`` (rates for all processes together) on ``processes`` client
    processes; merge their histograms; add the server's /proc view when it is ours."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    share = base_plan.schedule.scaled(1.0 / processes)
    plans = [replace(base_plan, schedule=share, seed=base_plan.seed + i,
                     number_base=base_plan.number_base + i * PROCESS_STRIDE)
             for i in range(processes)]
    go, start = ctx.Event(), ctx.Value("d", 0.0)
    procs = [ctx.Process(target=client_process, args=(p, i, out, go, start), daemon=True)
             for i, p in enumerate(plans)]
    for p in procs:
        p.start()
    sent = [0] * processes
    errors = [0] * processes
    digests: dict[int, dict[str, Any]] = {}
    cpu: dict[str, float] = {}
    sampler: Sampler | None = None
    view: dict[str, Any] | None = None
    last_print = 0.0
    try:
        start_at = _all_ready(label, out, procs, base_plan.timeout + 60)
        start.value = start_at
        go.set()
        t_measure = start_at + base_plan.warmup
        t_end = t_measure + base_plan.duration
        hard_deadline = t_end + base_plan.timeout + 60
        if server is not None:
            sampler = Sampler(server, t_measure)
            sampler.start()
        while len(digests) < processes:
            now = time.time()
            if now > hard_deadline:
                raise SystemExit(f"bench.load: {label}: client processes did not finish")
            if server is not None and sampler is not None:
                if "start" not in cpu and now >= t_measure:
                    cpu["start"] = server.cpu_seconds()
                if "end" not in cpu and now >= t_end:
                    cpu["end"] = server.cpu_seconds()
                    view = sampler.stop()
            try:
                kind, i, payload = out.get(timeout=0.2)
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and out.empty():
                    raise SystemExit(f"bench.load: {label}: a client process died") from None
                continue
            if kind == "failed":
                raise SystemExit(f"bench.load: {label}: client process {i} failed: {payload}")
            if kind == "result":
                digests[i] = payload
            else:
                sent[i], errors[i] = payload
                if not quiet and now - last_print >= 1.0:
                    last_print = now
                    phase = "warm-up" if now < t_measure else "measure"
                    offered = base_plan.schedule.rate_at(now - t_measure)
                    rate = f"  offered {offered:,.0f}/s" if base_plan.mode == "open" else ""
                    print(f"  [{label}] {now - start_at:5.1f}s {phase:8s}{rate}"
                          f"  calls sent {sum(sent):>9,}  errors {sum(errors):,}",
                          file=sys.stderr, flush=True)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
        if sampler is not None and view is None:
            view = sampler.stop()
    segments = base_plan.schedule.segments
    summary = summarise([digests[i] for i in sorted(digests)],
                        [s.rate for s in segments], base_plan.duration,
                        [(s.start, s.end) for s in segments])
    if server is not None:
        used = cpu.get("end", server.cpu_seconds()) - cpu.get("start", 0.0)
        calls = summary["calls"]
        summary["server"] = {
            "processes": len(server.pids()), "cpu_seconds": round(used, 2),
            "cpu_us_per_call": round(used / calls * 1e6, 1) if calls else None,
            "rss_mb": server.rss_mb(), **(view or {})}
    return summary
