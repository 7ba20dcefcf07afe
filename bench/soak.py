"""Soak: mixed RPCs at a fraction of measured capacity for a long time; memory must stay flat.

    python -m bench.soak [--duration 1800] [--fraction 0.8] [--json out.json]

Not part of CI. On a fresh deployment and server it

1. issues ``--population`` subjects to every agency and the portal;
2. measures capacity: ``--probe`` seconds of the mix in a closed loop
   (``--concurrency`` callers), in calls/s;
3. runs the mix open-loop at ``--fraction`` of that capacity for
   ``--duration`` seconds (calls are scheduled, not waited for), sampling the
   server's RSS every 10 s;
4. reports calls, errors by code, latency p50/p99, and RSS after
   ``--warmup`` seconds against RSS at the end (goal: within 10 %, 0 errors).

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
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

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
    pki = dep / "pki"
    creds = grpc.ssl_channel_credentials((pki / "ca.crt").read_bytes(),
                                         (pki / f"{name}.key").read_bytes(),
                                         (pki / f"{name}.crt").read_bytes())
    return grpc.aio.secure_channel(target, creds)


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

    async def run(self, mix: Mix) -> None:
        kind, call = mix.call()
        start = time.perf_counter()
        try:
            await call
            self.latencies.append((time.perf_counter() - start) * 1000)
        except grpc.aio.AioRpcError as err:
            self.errors[f"{kind}:{err.code().name}"] += 1


async def capacity(mix: Mix, seconds: float, concurrency: int) -> float:
    tally = Tally()
    end = time.monotonic() + seconds

    async def caller() -> None:
        while time.monotonic() < end:
            await tally.run(mix)

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return len(tally.latencies) / seconds


async def soak(mix: Mix, server: Spawned, rate: float, seconds: float,
               warmup: float) -> dict[str, Any]:
    tally = Tally()
    rss: list[tuple[float, float]] = []
    start = time.monotonic()
    pending: set[asyncio.Task[None]] = set()
    next_sample = start
    i = 0
    late = 0.0
    while (now := time.monotonic()) < start + seconds:
        if now >= next_sample:
            rss.append((round(now - start, 1), server.rss_mb()))
            next_sample += 10
        due = start + i / rate
        if due > now:
            await asyncio.sleep(due - now)
            continue
        late = max(late, now - due)
        task = asyncio.create_task(tally.run(mix))
        pending.add(task)
        task.add_done_callback(pending.discard)
        i += 1
    await asyncio.gather(*pending)
    rss.append((round(time.monotonic() - start, 1), server.rss_mb()))
    after_warmup = next((mb for t, mb in rss if t >= warmup), rss[0][1])
    lat = sorted(tally.latencies)
    return {"rate": round(rate, 1), "seconds": seconds, "calls": len(lat),
            "errors": dict(tally.errors), "p50_ms": round(percentile(lat, 50), 2),
            "p99_ms": round(percentile(lat, 99), 2), "rss_after_warmup_mb": after_warmup,
            "rss_end_mb": rss[-1][1], "rss_growth": round(rss[-1][1] / after_warmup - 1, 4),
            "worst_lateness_ms": round(late * 1000, 1), "rss_samples": rss}


async def main_async(args: argparse.Namespace, dep: Path, server: Spawned) -> dict[str, Any]:
    mix = Mix(dep, server.address, random.randrange(10**9))
    try:
        await mix.populate(args.population)
        cap = await capacity(mix, args.probe, args.concurrency)
        result = await soak(mix, server, cap * args.fraction, args.duration, args.warmup)
    finally:
        await mix.close()
    result["capacity_calls_per_s"] = round(cap, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=1800)
    p.add_argument("--warmup", type=float, default=60)
    p.add_argument("--fraction", type=float, default=0.8)
    p.add_argument("--probe", type=float, default=15)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--population", type=int, default=500)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="symbolsvc-soak-"))
    dep = root / "dep"
    subprocess.run([sys.executable, "-m", "symbolsvc", "init", str(dep),
                    *itertools.chain.from_iterable(("--agency", a) for a in AGENCIES)],
                   check=True, capture_output=True)
    server = Spawned.start("service", [sys.executable, "-m", "symbolsvc", "serve", "--config",
                                       str(dep / "config.toml"), "--listen", "127.0.0.1:0"])
    try:
        result = asyncio.run(main_async(args, dep, server))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    summary = {k: v for k, v in result.items() if k != "rss_samples"}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    ok = not result["errors"] and abs(result["rss_growth"]) <= 0.10
    print("soak:", "PASS" if ok else "FAIL", "(0 errors, RSS within 10 % after warm-up)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
