"""Fairness: one agency floods, another measures ``IssueSymbol`` p50/p99, health is probed.

    python -m bench.fairness [--duration 10] [--json out.json]

For each mode, a fresh deployment and server:

* ``limits``: the shipped per-principal defaults (docs/ISOLATION.md);
* ``no-limits``: the same server with the flooder's budget set out of reach
  (what the server did before issue 11), for the A/B.

Each mode runs two phases of ``--duration`` seconds: *quiet* (the victim
agency alone, ``--victim-concurrency`` callers in a closed loop) and *flood*
(a second agency, in its own process, first holds idle ``StreamIssueSymbols``
calls, up to ``--flood-streams``, then runs ``--flood-concurrency`` callers
of ``BatchIssueSymbols`` with 1,000 numbers each, while the victim measures
again). Throughout, the auditor checks health every 50 ms. The goal (issue
11): the victim's p99 under the flood within 2x of its quiet p99, and health
answering throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.plan import nth_number
from bench.servers import Spawned
from bench.stats import percentile
from symbolsvc.v1 import symbol_service_pb2 as pb
from symbolsvc.v1 import symbol_service_pb2_grpc as pb_grpc

VICTIM, FLOOD = "city-victim", "city-flood"
UNLIMITED = {"concurrent_calls": 1_000_000, "streams": 1_000_000, "rate": 1e9, "burst": 10**9}


def _channel(dep: Path, name: str, target: str) -> grpc.aio.Channel:
    pki = dep / "pki"
    creds = grpc.ssl_channel_credentials((pki / "ca.crt").read_bytes(),
                                         (pki / f"{name}.key").read_bytes(),
                                         (pki / f"{name}.crt").read_bytes())
    return grpc.aio.secure_channel(target, creds)


def make_deployment(root: Path, unlimited: bool, flood_budget: dict[str, float]) -> Path:
    dep = root / ("unlimited" if unlimited else "limited")
    subprocess.run([sys.executable, "-m", "symbolsvc", "init", str(dep), "--agency", VICTIM,
                    "--agency", FLOOD], check=True, capture_output=True)
    budget = UNLIMITED if unlimited else flood_budget
    if budget:
        with (dep / "config.toml").open("a") as f:
            f.write(f"\n[limits.principals.{FLOOD}]\n" + "".join(
                f"{k} = {v!r}\n" for k, v in budget.items()))
    return dep


# -- the flooding agency (its own process) -------------------------------------------------


def flood_process(dep: Path, target: str, streams: int, concurrency: int, base: int,
                  ready: Any, stop: Any, out: Any) -> None:
    out.put(asyncio.run(_flood(dep, target, streams, concurrency, base, ready, stop)))


async def _flood(dep: Path, target: str, streams: int, concurrency: int, base: int,
                 ready: Any, stop: Any) -> dict[str, int]:
    channel = _channel(dep, FLOOD, target)
    stub = pb_grpc.SymbolServiceStub(channel)
    tally = {"streams_open": 0, "streams_refused": 0, "batches_ok": 0, "batches_refused": 0,
             "batch_errors": 0}
    counter = iter(range(base, base + 10**9))
    held = []
    release = asyncio.Event()

    async def one_stream() -> None:
        async def requests() -> Any:
            yield pb.StreamIssueSymbolsRequest(chunk_id=1,
                                               individual_numbers=[nth_number(next(counter))])
            await release.wait()

        call = stub.StreamIssueSymbols(requests())
        try:
            await call.read()
            tally["streams_open"] += 1
            held.append(call)
        except grpc.aio.AioRpcError:
            tally["streams_refused"] += 1

    await asyncio.gather(*(one_stream() for _ in range(streams)))

    async def batcher() -> None:
        while not stop.is_set():
            numbers = [nth_number(next(counter)) for _ in range(1000)]
            try:
                await stub.BatchIssueSymbols(
                    pb.BatchIssueSymbolsRequest(individual_numbers=numbers), timeout=30)
                tally["batches_ok"] += 1
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    tally["batches_refused"] += 1
                    await asyncio.sleep(0.01)
                else:
                    tally["batch_errors"] += 1

    ready.set()
    tasks = [asyncio.create_task(batcher()) for _ in range(concurrency)]
    while not stop.is_set():
        await asyncio.sleep(0.05)
    await asyncio.gather(*tasks)
    release.set()
    for call in held:
        call.cancel()
    await channel.close()
    return tally


# -- the victim and the health probe ---------------------------------------------------------


async def measure(dep: Path, target: str, seconds: float, concurrency: int,
                  base: int) -> dict[str, Any]:
    channel = _channel(dep, VICTIM, target)
    auditor = _channel(dep, "auditor", target)
    stub = pb_grpc.SymbolServiceStub(channel)
    health = health_pb2_grpc.HealthStub(auditor)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    probes = {"ok": 0, "failed": 0}
    counter = iter(range(base, base + 10**9))
    end = time.monotonic() + seconds

    async def caller() -> None:
        while time.monotonic() < end:
            req = pb.IssueSymbolRequest(individual_number=nth_number(next(counter)))
            start = time.perf_counter()
            try:
                await stub.IssueSymbol(req, timeout=30)
                latencies.append((time.perf_counter() - start) * 1000)
            except grpc.aio.AioRpcError as err:
                errors[err.code().name] = errors.get(err.code().name, 0) + 1

    async def prober() -> None:
        while time.monotonic() < end:
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
                ok = reply.status == health_pb2.HealthCheckResponse.SERVING
            except grpc.aio.AioRpcError:
                ok = False
            probes["ok" if ok else "failed"] += 1
            await asyncio.sleep(0.05)

    await asyncio.gather(prober(), *(caller() for _ in range(concurrency)))
    await channel.close()
    await auditor.close()
    latencies.sort()
    return {"calls": len(latencies), "calls_per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2), "errors": errors,
            "health_ok": probes["ok"], "health_failed": probes["failed"]}


def run_mode(root: Path, unlimited: bool, args: argparse.Namespace) -> dict[str, Any]:
    flood_budget = {k: v for k, v in (("rate", args.flood_rate), ("burst", args.flood_burst))
                    if v is not None}
    dep = make_deployment(root, unlimited, flood_budget)
    server = Spawned.start("service", [sys.executable, "-m", "symbolsvc", "serve", "--config",
                                       str(dep / "config.toml"), "--listen", "127.0.0.1:0"])
    base = random.randrange(10**9)
    try:
        asyncio.run(measure(dep, server.address, 2, args.victim_concurrency, base))  # warm-up
        quiet = asyncio.run(measure(dep, server.address, args.duration,
                                    args.victim_concurrency, base + 10**8))
        ctx = multiprocessing.get_context("spawn")
        ready, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
        proc = ctx.Process(target=flood_process, args=(
            dep, server.address, args.flood_streams, args.flood_concurrency,
            base + 5 * 10**8, ready, stop, out))
        proc.start()
        ready.wait(120)
        time.sleep(1)  # let the batch flood reach its steady state
        flooded = asyncio.run(measure(dep, server.address, args.duration,
                                      args.victim_concurrency, base + 2 * 10**8))
        stop.set()
        flood = out.get(timeout=120)
        proc.join(60)
    finally:
        server.stop()
    ratio = flooded["p99_ms"] / quiet["p99_ms"] if quiet["p99_ms"] else None
    return {"mode": "no-limits" if unlimited else "limits", "quiet": quiet, "flood": flooded,
            "flooder": flood, "p99_ratio": round(ratio, 2) if ratio else None}


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| mode | victim quiet p50 / p99 ms | victim under flood p50 / p99 ms | p99 ratio "
             "| victim errors | health ok / failed | flooder: streams open / refused, batches "
             "ok / refused |", "|---|---|---|---|---|---|---|"]
    for r in results:
        q, f, fl = r["quiet"], r["flood"], r["flooder"]
        lines.append(
            f"| {r['mode']} | {q['p50_ms']} / {q['p99_ms']} | {f['p50_ms']} / {f['p99_ms']} | "
            f"{r['p99_ratio']}x | {f['errors'] or 0} | "
            f"{q['health_ok'] + f['health_ok']} / {q['health_failed'] + f['health_failed']} | "
            f"{fl['streams_open']} / {fl['streams_refused']}, "
            f"{fl['batches_ok']} / {fl['batches_refused']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--victim-concurrency", type=int, default=4)
    p.add_argument("--flood-streams", type=int, default=200)
    p.add_argument("--flood-concurrency", type=int, default=32)
    p.add_argument("--modes", default="limits,no-limits")
    p.add_argument("--flood-rate", type=float, help="the flooder's rate (default: its role's)")
    p.add_argument("--flood-burst", type=int, help="the flooder's burst (default: its role's)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="symbolsvc-fairness-"))
    try:
        results = [run_mode(root, mode == "no-limits", args) for mode in args.modes.split(",")]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(markdown(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
