"""Soak: mixed RPCs at a fraction of measured capacity for a long time; memory must stay flat.

    python -m bench.soak [--duration 1800] [--fraction 0.8] [--json out.json]

Not part of CI. On a fresh deployment and server it

1. issues ``--population`` subjects to every agency and the portal;
2. measures capacity in two steps: ``--probe`` seconds of the mix in a closed
   loop (``--concurrency`` callers) gives the saturation throughput; then the mix
   open-loop at 40, 50, ... 100 % of it, ``--step`` seconds each, until a step
   misses the objective (p99 over ``--slo-ms``, or any error). The capacity is the
   last rate that met it (the knee): a closed loop of 32 callers lets the writer
   commit bigger groups than an open loop's arrivals do, so its throughput is
   more than the server sustains with latency bounded (0.6-0.75 of it here);
3. runs the mix open-loop at ``--fraction`` of that capacity for
   ``--duration`` seconds (calls are scheduled, not waited for), sampling the
   server's RSS every 10 s;
4. reports calls, errors by code, latency p50/p99, and RSS after
   ``--warmup`` seconds against RSS at the end (goal: within 10 %, 0 errors);
   with ``--json``, also per 10-s window the calls, p50/p99, errors, how late the
   client fell behind its schedule, and what the server's stall histograms saw
   (:data:`STALL_HISTOGRAMS`: the event loop's lag, generation-2 collections,
   commits, checkpoints, integrations: how many, their seconds, the longest's bucket).

The mix: 40 % IssueSymbol (new numbers, spread over the agencies), 30 %
TranslateSymbol, 15 % ListAccessRecords, 10 % GetCheckpoint, 5 % health Check.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from symbolsvc_client import Deployment

from bench.plan import nth_number
from bench.servers import Spawned
from bench.stats import percentile
from symbolsvc.v1 import audit_service_pb2 as audit_pb
from symbolsvc.v1 import audit_service_pb2_grpc as audit_grpc
from symbolsvc.v1 import broker_service_pb2 as broker_pb
from symbolsvc.v1 import broker_service_pb2_grpc as broker_grpc
from symbolsvc.v1 import disclosure_service_pb2 as disclosure_pb
from symbolsvc.v1 import disclosure_service_pb2_grpc as disclosure_grpc
from symbolsvc.v1 import symbol_service_pb2 as pb
from symbolsvc.v1 import symbol_service_pb2_grpc as pb_grpc

AGENCIES = tuple(f"city-{c}" for c in "abcdefgh")
MIX = (("issue", 40), ("translate", 30), ("list", 15), ("checkpoint", 10), ("health", 5))


def _channel(dep: Path, name: str, target: str) -> grpc.aio.Channel:
    """The client library's channel: its retry policy is what an agency's code runs with."""
    return Deployment(dep).aio_channel(name, target)


def _scrape(metrics: str) -> str:
    with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as reply:
        return str(reply.read().decode())


def _rejections(metrics: str) -> float:
    """The server's ``symbolsvc_limit_rejections_total``, summed over its labels."""
    return rejections_in(_scrape(metrics))


def rejections_in(text: str) -> float:
    """``symbolsvc_limit_rejections_total`` in a metrics page, summed over its labels."""
    return sum(sample.value for family in text_string_to_metric_families(text)
               if family.name == "symbolsvc_limit_rejections"
               for sample in family.samples if sample.name.endswith("_total"))


# The server's duration histograms read every window (symbolsvc/stalls.py and the storage's
# own): a window's stall can then be told apart by what took long in it. Per entry: the
# histogram and the labels its series must carry.
STALL_HISTOGRAMS: dict[str, tuple[str, dict[str, str]]] = {
    "loop_lag": ("symbolsvc_event_loop_lag_seconds", {}),
    "gc_gen2": ("symbolsvc_gc_pause_seconds", {"generation": "2"}),
    "commit": ("symbolsvc_storage_commit_seconds", {}),
    "integration": ("symbolsvc_access_log_integration_seconds", {}),
    "checkpoint_passive": ("symbolsvc_sqlite_checkpoint_seconds", {"mode": "passive"}),
    "checkpoint_restart": ("symbolsvc_sqlite_checkpoint_seconds", {"mode": "restart"}),
}


def _histograms(text: str) -> dict[str, dict[str, float]]:
    """Per :data:`STALL_HISTOGRAMS` entry: its cumulative bucket counts by ``le``, with
    ``_sum`` and ``_count``."""
    out: dict[str, dict[str, float]] = {k: {} for k in STALL_HISTOGRAMS}
    for family in text_string_to_metric_families(text):
        for key, (name, labels) in STALL_HISTOGRAMS.items():
            if family.name != name:
                continue
            for sample in family.samples:
                if not labels.items() <= sample.labels.items():
                    continue
                suffix = sample.name.removeprefix(name)
                out[key][sample.labels["le"] if suffix == "_bucket" else suffix] = sample.value
    return out


def _window_stats(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
                  ) -> dict[str, Any]:
    """What each histogram saw between two scrapes: how many, their total seconds, and the
    bucket bound of the longest (``max_le``, an upper bound)."""
    stats: dict[str, Any] = {}
    for key, now in after.items():
        then = before.get(key, {})
        n = now.get("_count", 0.0) - then.get("_count", 0.0)
        if not n:
            continue
        holds_all = [float(le) for le, c in now.items()  # buckets with every new one
                     if not le.startswith("_") and c - then.get(le, 0.0) == n]
        stats[key] = {"n": int(n), "s": round(now.get("_sum", 0.0) - then.get("_sum", 0.0), 3),
                      "max_le": min(holds_all, default=float("inf"))}
    return stats


class Mix:
    """Stubs for every principal and the next call of the mix."""

    def __init__(self, dep: Path, target: str, base: int) -> None:
        self.channels = {n: _channel(dep, n, target)
                         for n in (*AGENCIES, "broker", "portal", "auditor")}
        self.issue = {a: pb_grpc.SymbolServiceStub(self.channels[a]) for a in AGENCIES}
        self.portal_issue = pb_grpc.SymbolServiceStub(self.channels["portal"])
        self.broker = broker_grpc.BrokerServiceStub(self.channels["broker"])
        self.portal = disclosure_grpc.DisclosureServiceStub(self.channels["portal"])
        self.auditor = audit_grpc.AuditServiceStub(self.channels["auditor"])
        self.health = health_pb2_grpc.HealthStub(self.channels["auditor"])
        self.numbers = itertools.count(base)
        self.subjects: list[tuple[dict[str, str], str]] = []  # (agency -> symbol, portal symbol)
        self.kinds = [k for k, w in MIX for _ in range(w)]
        self.rng = random.Random(base)
        self.exchange = itertools.count()

    async def populate(self, n: int) -> None:
        async def one() -> None:
            number = nth_number(next(self.numbers))
            req = pb.IssueSymbolRequest(individual_number=number)
            symbols = {a: (await s.IssueSymbol(req)).symbol for a, s in self.issue.items()}
            portal = (await self.portal_issue.IssueSymbol(req)).symbol
            self.subjects.append((symbols, portal))

        for start in range(0, n, 8):  # within every agency's concurrent-call budget
            await asyncio.gather(*(one() for _ in range(min(8, n - start))))

    def call(self) -> tuple[str, Any]:
        kind = self.rng.choice(self.kinds)
        if kind == "issue":
            agency = self.rng.choice(AGENCIES)
            req = pb.IssueSymbolRequest(individual_number=nth_number(next(self.numbers)))
            return kind, self.issue[agency].IssueSymbol(req, timeout=30)
        symbols, portal = self.rng.choice(self.subjects)
        if kind == "translate":
            a, b = self.rng.sample(AGENCIES, 2)
            return kind, self.broker.TranslateSymbol(broker_pb.TranslateSymbolRequest(
                requester_agency=a, symbol=symbols[a], provider_agency=b,
                office_work="demo-exchange", info_item="demo-record",
                exchange_id=f"soak-{next(self.exchange)}"), timeout=30)
        if kind == "list":
            return kind, self.portal.ListAccessRecords(
                disclosure_pb.ListAccessRecordsRequest(symbol=portal, page_size=20), timeout=30)
        if kind == "checkpoint":
            return kind, self.auditor.GetCheckpoint(audit_pb.GetCheckpointRequest(), timeout=30)
        return kind, self.health.Check(health_pb2.HealthCheckRequest(), timeout=30)

    async def close(self) -> None:
        for c in self.channels.values():
            await c.close()


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()
        self.samples: dict[str, str] = {}  # the first error message of each kind and code
        self.first: dict[str, float] = {}  # when (monotonic) each kind and code was first seen
        self.t0 = time.monotonic()
        # per 10 s window (by when the call was sent): latencies and errors, to show
        # whether trouble is steady or comes in bursts
        self.windows: dict[int, tuple[list[float], Counter[str]]] = {}

    async def run(self, mix: Mix) -> None:
        kind, call = mix.call()
        start = time.perf_counter()
        lat, errs = self.windows.setdefault(int((time.monotonic() - self.t0) // 10),
                                            ([], Counter()))
        try:
            await call
            ms = (time.perf_counter() - start) * 1000
            self.latencies.append(ms)
            lat.append(ms)
        except grpc.aio.AioRpcError as err:
            key = f"{kind}:{err.code().name}"
            self.errors[key] += 1
            errs[key] += 1
            if key not in self.samples:
                self.samples[key] = (err.details() or "")[:300]
                self.first[key] = time.monotonic()


async def capacity(mix: Mix, seconds: float, concurrency: int) -> float:
    tally = Tally()
    end = time.monotonic() + seconds

    async def caller() -> None:
        while time.monotonic() < end:
            await tally.run(mix)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return len(tally.latencies) / seconds


async def soak(mix: Mix, server: Spawned, rate: float, seconds: float,
               warmup: float, metrics: str | None = None) -> dict[str, Any]:
    tally = Tally()
    rss: list[tuple[float, float]] = []
    scrapes: dict[int, asyncio.Task[str]] = {}  # per window: the metrics at its start
    start = time.monotonic()
    pending: set[asyncio.Task[None]] = set()
    next_sample = start
    i = 0
    late = 0.0
    late_in: dict[int, float] = {}  # per 10 s window: how far behind its schedule the client fell
    while (now := time.monotonic()) < start + seconds:
        if now >= next_sample:
            rss.append((round(now - start, 1), server.rss_mb()))
            if metrics is not None:
                scrapes[int((now - tally.t0) // 10)] = asyncio.create_task(
                    asyncio.to_thread(_scrape, metrics))
            next_sample += 10
        due = start + i / rate
        if due > now:
            await asyncio.sleep(due - now)
            continue
        late = max(late, now - due)
        w = int((now - tally.t0) // 10)
        late_in[w] = max(late_in.get(w, 0.0), now - due)
        task = asyncio.create_task(tally.run(mix))
        pending.add(task)
        task.add_done_callback(pending.discard)
        i += 1
    await asyncio.gather(*pending)
    rss.append((round(time.monotonic() - start, 1), server.rss_mb()))
    seen = {w: _histograms(await t) for w, t in sorted(scrapes.items())}
    server_in = {w: _window_stats(seen[w], seen[w + 1]) for w in seen if w + 1 in seen}
    longest = {k: max(st[k]["max_le"] for st in server_in.values() if k in st)
               for k in STALL_HISTOGRAMS if any(k in st for st in server_in.values())}
    after_warmup = next((mb for t, mb in rss if t >= warmup), rss[0][1])
    lat = sorted(tally.latencies)
    return {"rate": round(rate, 1), "seconds": seconds, "calls": len(lat),
            "errors": dict(tally.errors), "error_samples": tally.samples,
            "errors_first_at_s": {k: round(t - start, 1) for k, t in tally.first.items()},
            "p50_ms": round(percentile(lat, 50), 2),
            "p99_ms": round(percentile(lat, 99), 2), "rss_after_warmup_mb": after_warmup,
            "rss_end_mb": rss[-1][1], "rss_growth": round(rss[-1][1] / after_warmup - 1, 4),
            "worst_lateness_ms": round(late * 1000, 1), "rss_samples": rss,
            "server_longest_s": longest,  # per stall histogram, the longest's bucket
            "windows": [{"from_s": w * 10, "calls": len(ls) + sum(es.values()),
                         "p50_ms": round(percentile(sorted(ls), 50), 1) if ls else None,
                         "p99_ms": round(percentile(sorted(ls), 99), 1) if ls else None,
                         "errors": sum(es.values()),
                         "client_late_ms": round(late_in.get(w, 0.0) * 1000, 1),
                         "server": server_in.get(w, {})}
                        for w, (ls, es) in sorted(tally.windows.items())]}


async def main_async(args: argparse.Namespace, dep: Path, server: Spawned,
                     metrics: str) -> dict[str, Any]:
    mix = Mix(dep, server.address, random.randrange(10**9))
    try:
        await mix.populate(args.population)
        saturation = await capacity(mix, args.probe, args.concurrency)
        cap, steps = await knee(mix, server, saturation, args.step, args.slo_ms)
        refused = _rejections(metrics)
        result = await soak(mix, server, cap * args.fraction, args.duration, args.warmup,
                            metrics)
        # Refusals over a limit that the client's retry policy rode out (callers saw
        # only those in "errors"); reported so that retries cannot hide a problem.
        result["limit_refusals_retried"] = int(_rejections(metrics) - refused) - sum(
            n for k, n in result["errors"].items() if k.endswith(":RESOURCE_EXHAUSTED"))
    finally:
        await mix.close()
    result["capacity_calls_per_s"] = round(cap, 1)
    result["saturation_calls_per_s"] = round(saturation, 1)
    result["knee_steps"] = steps
    return result


async def knee(mix: Mix, server: Spawned, saturation: float, step: float,
               slo_ms: float) -> tuple[float, list[dict[str, Any]]]:
    """The highest open-loop rate, in steps of 10 % of ``saturation``, whose p99 stays
    within ``slo_ms`` without an error (the lowest step's rate if none does)."""
    best = 0.4 * saturation
    steps = []
    for pct in range(40, 101, 10):
        r = await soak(mix, server, saturation * pct / 100, step, 0)
        ok = not r["errors"] and r["p99_ms"] <= slo_ms
        steps.append({"rate": r["rate"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"],
                      "errors": sum(r["errors"].values()), "met": ok})
        if not ok:
            break
        best = saturation * pct / 100
    return best, steps


def _set_server_options(config: Path, options: list[str]) -> None:
    """Put ``KEY=VALUE`` options (TOML values) at the top of the ``[server]`` table."""
    lines = [f"{k.strip()} = {v.strip()}" for k, v in (o.split("=", 1) for o in options)]
    text = config.read_text()
    head, sep, tail = text.partition("[server]\n")
    if not sep:
        raise SystemExit(f"bench.soak: no [server] table in {config}")
    config.write_text(head + sep + "\n".join(lines) + "\n" + tail)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=1800)
    p.add_argument("--warmup", type=float, default=60)
    p.add_argument("--fraction", type=float, default=0.8)
    p.add_argument("--probe", type=float, default=15)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--step", type=float, default=20, help="seconds per open-loop probe step")
    p.add_argument("--slo-ms", type=float, default=250,
                   help="a probe step meets the objective with p99 within this, no error")
    p.add_argument("--population", type=int, default=500)
    p.add_argument("--json", type=Path)
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="make the deployment in DIR and keep it, with the server's log "
                        "(DIR/server.log); by default both go to a temporary directory")
    p.add_argument("--server-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a [server] key for the run (a TOML value), e.g. "
                        "max_connection_age_ms=20000")
    args = p.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="symbolsvc-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    dep = root / "dep"
    subprocess.run([sys.executable, "-m", "symbolsvc", "init", str(dep),
                    *itertools.chain.from_iterable(("--agency", a) for a in AGENCIES)],
                   check=True, capture_output=True)
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        metrics = f"127.0.0.1:{free.getsockname()[1]}"
    _set_server_options(dep / "config.toml", [*args.server_option, f'metrics_listen="{metrics}"'])
    server = Spawned.start("service", [sys.executable, "-m", "symbolsvc", "serve", "--config",
                                       str(dep / "config.toml"), "--listen", "127.0.0.1:0"],
                           log=root / "server.log")
    try:
        result = asyncio.run(main_async(args, dep, server, metrics))
    finally:
        server.stop()
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    summary = {k: v for k, v in result.items() if k not in ("rss_samples", "windows")}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    ok = not result["errors"] and abs(result["rss_growth"]) <= 0.10
    print("soak:", "PASS" if ok else "FAIL", "(0 errors, RSS within 10 % after warm-up)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
