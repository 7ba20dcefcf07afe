"""gRPC load generator for symbolsvc, with an empty-handler baseline in the same run.

    python -m bench.load --deployment DIR --target 127.0.0.1:50051 --rpc IssueSymbol
    python -m bench.load --deployment DIR --spawn --baseline --rpc TranslateSymbol \\
        --concurrency 64 --warmup 3 --duration 15 --json out.json --markdown out.md

Closed loop (``--concurrency N``): N callers, each sending its next call when
the previous one returns. Open loop (``--rate R``): calls are *scheduled* at R
per second whatever the server does, and each latency is measured from its
scheduled send time, so a stalled server shows up as latency rather than as
fewer samples (no coordinated omission).

Callers are spread over ``--processes`` client processes (each with its own
event loop and ``--channels`` connections, so that every worker of a
``symbolsvc serve --workers N`` server gets connections). Each phase runs
``--warmup`` seconds unmeasured, then ``--duration`` seconds measured; only
calls scheduled inside the measured window count. Every loop is bounded by
time and by ``--max-calls``.

``--baseline`` starts ``bench.baseline_server`` (same services, same TLS,
fixed same-sized replies, no work), drives it with the identical load, and
quotes symbolsvc's throughput and p99 as ratios to it. ``--spawn`` starts
``symbolsvc serve`` on the deployment itself (``--workers N`` passed on).

Issue RPCs send individual numbers that are new for every call (valid check
digits, from a random base), so every call registers a new holding. Translate
and resolve first issue ``--population`` subjects to the requester and the
provider agency, then pick a random one per call.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import multiprocessing
import os
import platform
import queue
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from array import array
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

RPCS = {
    "IssueSymbol": ("agency", False),  # (role of the caller, items per call come from --batch)
    "BatchIssueSymbols": ("agency", True),
    "StreamIssueSymbols": ("agency", True),
    "TranslateSymbol": ("broker", False),
    "BatchTranslateSymbols": ("broker", True),
    "ResolveProviders": ("broker", False),
}
READY = re.compile(r"(?:symbolsvc|baseline) serving on (\S+):(\d+)")
NUMBER_SPACE = 10**11
PROCESS_STRIDE = 10**9  # individual numbers per client process and phase


# -- the plan each client process runs -------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """Everything one client process needs; pickled to it."""

    target: str
    ca: bytes
    cert: bytes
    key: bytes
    rpc: str
    mode: str  # "closed" | "open"
    concurrency: int  # callers (closed) / streams (open StreamIssueSymbols), this process
    rate: float  # calls per second, this process (open)
    batch: int
    channels: int
    start_at: float  # wall clock (time.time()) at which the warm-up begins
    warmup: float
    duration: float
    max_calls: int
    max_inflight: int
    timeout: float
    number_base: int
    requester: str
    provider: str
    office_work: str
    info_item: str
    population: tuple[str, ...] = ()
    progress_every: float = 1.0


@dataclass
class Tally:
    """One client process's results for the measured window."""

    latencies: array = field(default_factory=lambda: array("d"))
    calls: int = 0
    items: int = 0
    item_errors: int = 0
    not_new: int = 0
    errors: collections.Counter = field(default_factory=collections.Counter)
    sent: int = 0  # all calls sent, warm-up included
    late_ms: float = 0.0  # open loop: worst lateness of the dispatcher behind schedule


def nth_number(n: int) -> str:
    """The ``n``-th individual number: 11 digits of ``n`` and the check digit (CONTRACT §6)."""
    from symbolsvc.numbers import check_digit

    first = f"{n % NUMBER_SPACE:011d}"
    return first + str(check_digit(first))


class Requests:
    """Builds the next request of a plan; issue numbers are never repeated."""

    def __init__(self, plan: Plan) -> None:
        from symbolsvc.v1 import broker_service_pb2 as bpb
        from symbolsvc.v1 import symbol_service_pb2 as spb

        self.plan = plan
        self._spb, self._bpb = spb, bpb
        self._next_number = plan.number_base
        self._seq = 0
        self._rng = random.Random(plan.number_base)

    def numbers(self, k: int) -> list[str]:
        start = self._next_number
        self._next_number += k
        return [nth_number(n) for n in range(start, start + k)]

    def _translate(self) -> Any:
        p = self.plan
        self._seq += 1
        return self._bpb.TranslateSymbolRequest(
            requester_agency=p.requester, symbol=self._rng.choice(p.population),
            provider_agency=p.provider, office_work=p.office_work, info_item=p.info_item,
            exchange_id=f"bench-{p.number_base}-{self._seq}")

    def build(self) -> Any:
        p, spb, bpb = self.plan, self._spb, self._bpb
        if p.rpc == "IssueSymbol":
            return spb.IssueSymbolRequest(individual_number=self.numbers(1)[0])
        if p.rpc == "BatchIssueSymbols":
            return spb.BatchIssueSymbolsRequest(individual_numbers=self.numbers(p.batch))
        if p.rpc == "StreamIssueSymbols":
            self._seq += 1
            return spb.StreamIssueSymbolsRequest(chunk_id=self._seq,
                                                 individual_numbers=self.numbers(p.batch))
        if p.rpc == "TranslateSymbol":
            return self._translate()
        if p.rpc == "BatchTranslateSymbols":
            return bpb.BatchTranslateSymbolsRequest(
                requests=[self._translate() for _ in range(p.batch)])
        self._seq += 1
        return bpb.ResolveProvidersRequest(
            requester_agency=p.requester, symbol=self._rng.choice(p.population),
            office_work=p.office_work, info_item=p.info_item,
            exchange_id=f"bench-{p.number_base}-{self._seq}")


def score(rpc: str, reply: Any) -> tuple[int, int, int]:
    """(items, item errors, items that were not new holdings) of one reply."""
    if rpc == "IssueSymbol":
        return 1, 0, 0 if reply.newly_registered else 1
    if rpc in ("BatchIssueSymbols", "StreamIssueSymbols"):
        bad = sum(1 for r in reply.results if r.WhichOneof("outcome") != "issued")
        old = sum(1 for r in reply.results
                  if r.WhichOneof("outcome") == "issued" and not r.issued.newly_registered)
        return len(reply.results), bad, old
    if rpc == "BatchTranslateSymbols":
        bad = sum(1 for r in reply.results if r.WhichOneof("outcome") != "translated")
        return len(reply.results), bad, 0
    return 1, 0, 0


# -- one client process ------------------------------------------------------------------


def client_process(plan: Plan, index: int, out: Any) -> None:
    """Entry point of a client process: run the plan, put ("result", index, Tally) on ``out``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        tally = asyncio.run(_drive(plan, index, out))
        out.put(("result", index, tally))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        out.put(("failed", index, f"{type(exc).__name__}: {exc}"))


async def _drive(plan: Plan, index: int, out: Any) -> Tally:
    import grpc

    from symbolsvc.v1 import broker_service_pb2_grpc as bgrpc
    from symbolsvc.v1 import symbol_service_pb2_grpc as sgrpc

    creds = grpc.ssl_channel_credentials(plan.ca, plan.key, plan.cert)
    # A local subchannel pool gives every channel its own TCP connection.
    options = [("grpc.use_local_subchannel_pool", 1),
               ("grpc.max_receive_message_length", 16 * 1024 * 1024),
               ("grpc.max_send_message_length", 16 * 1024 * 1024)]
    channels = [grpc.aio.secure_channel(plan.target, creds, options=options)
                for _ in range(plan.channels)]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(c.channel_ready() for c in channels)), timeout=plan.timeout)
        stubs = [(sgrpc.SymbolServiceStub(c) if RPCS[plan.rpc][0] == "agency"
                  else bgrpc.BrokerServiceStub(c)) for c in channels]
        return await _Runner(plan, index, out, stubs).run()
    finally:
        for c in channels:
            await c.close()


class _Runner:
    def __init__(self, plan: Plan, index: int, out: Any, stubs: list[Any]) -> None:
        self.plan, self.index, self.out, self.stubs = plan, index, out, stubs
        self.requests = Requests(plan)
        self.tally = Tally()
        now_wall, now = time.time(), time.perf_counter()
        self.t_begin = now + (plan.start_at - now_wall)
        self.t_measure = self.t_begin + plan.warmup
        self.t_end = self.t_measure + plan.duration
        self.errors_total = 0

    def record(self, scheduled: float, done: float, outcome: tuple[int, int, int] | str) -> None:
        t = self.tally
        if isinstance(outcome, str):
            self.errors_total += 1
        if not self.t_measure <= scheduled < self.t_end:
            return
        if isinstance(outcome, str):
            t.errors[outcome] += 1
            return
        items, bad, old = outcome
        t.calls += 1
        t.items += items - bad
        t.item_errors += bad
        t.not_new += old
        t.latencies.append(done - scheduled)

    async def unary(self, stub: Any, scheduled: float) -> None:
        import grpc

        request = self.requests.build()
        method = getattr(stub, self.plan.rpc)
        try:
            reply = await method(request, timeout=self.plan.timeout)
            outcome: tuple[int, int, int] | str = score(self.plan.rpc, reply)
        except grpc.aio.AioRpcError as err:
            outcome = err.code().name
        self.record(scheduled, time.perf_counter(), outcome)

    def more(self, now: float) -> bool:
        return now < self.t_end and self.tally.sent < self.plan.max_calls

    async def run(self) -> Tally:
        await asyncio.sleep(max(0.0, self.t_begin - time.perf_counter()))
        reporter = asyncio.create_task(self._report())
        try:
            if self.plan.rpc == "StreamIssueSymbols":
                await self._streams()
            elif self.plan.mode == "closed":
                await asyncio.gather(*(self._caller(i) for i in range(self.plan.concurrency)))
            else:
                await self._open_loop(self.unary_on_next_stub)
        finally:
            reporter.cancel()
        return self.tally

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.plan.progress_every)
            self.out.put(("progress", self.index, (self.tally.sent, self.errors_total)))

    async def _caller(self, i: int) -> None:
        stub = self.stubs[i % len(self.stubs)]
        while self.more(start := time.perf_counter()):
            self.tally.sent += 1
            await self.unary(stub, start)

    def unary_on_next_stub(self, scheduled: float) -> Awaitable[None]:
        return self.unary(self.stubs[self.tally.sent % len(self.stubs)], scheduled)

    async def _open_loop(self, send: Callable[[float], Awaitable[None]]) -> None:
        """Schedule calls at plan.rate; each latency runs from its scheduled time."""
        interval = 1.0 / self.plan.rate
        slots = asyncio.Semaphore(self.plan.max_inflight)
        tasks: set[asyncio.Task[None]] = set()

        async def one(scheduled: float) -> None:
            try:
                await send(scheduled)
            finally:
                slots.release()

        i = 0
        while self.more(scheduled := self.t_begin + i * interval):
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.tally.late_ms = max(self.tally.late_ms, -delay * 1000)
            await slots.acquire()  # waiting here counts in the latency: it runs from `scheduled`
            self.tally.sent += 1
            task = asyncio.create_task(one(scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if tasks:
            await asyncio.wait(tasks, timeout=self.plan.timeout + 5)

    async def _streams(self) -> None:
        """StreamIssueSymbols: long-lived bidi streams, one chunk per 'call'."""
        n = self.plan.concurrency
        streams = [_Stream(self, self.stubs[i % len(self.stubs)]) for i in range(n)]
        try:
            if self.plan.mode == "closed":
                await asyncio.gather(*(s.closed_loop() for s in streams))
            else:
                await self._open_loop(lambda t: streams[self.tally.sent % n].send(t))
        finally:
            await asyncio.gather(*(s.close() for s in streams))


class _Stream:
    """One StreamIssueSymbols call; chunks are answered in order, matched FIFO."""

    def __init__(self, runner: _Runner, stub: Any) -> None:
        self.runner = runner
        self.stub = stub
        self.call: Any = None
        self.lock = asyncio.Lock()
        self.waiting: collections.deque[tuple[float, asyncio.Future[Any]]] = collections.deque()
        self.reader: asyncio.Task[None] | None = None

    def _open(self) -> None:
        self.call = self.stub.StreamIssueSymbols(timeout=self.runner.plan.warmup
                                                 + self.runner.plan.duration
                                                 + self.runner.plan.timeout + 30)
        self.reader = asyncio.create_task(self._read(self.call))

    async def _read(self, call: Any) -> None:
        import grpc

        try:
            async for reply in call:
                _, fut = self.waiting.popleft()
                if not fut.done():
                    fut.set_result(reply)
            err: BaseException = EOFError("stream ended")
        except grpc.aio.AioRpcError as exc:
            err = exc
        except asyncio.CancelledError:
            err = EOFError("stream cancelled")
        while self.waiting:
            _, fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(err)

    async def send(self, scheduled: float) -> None:
        import grpc

        r = self.runner
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            async with self.lock:
                if self.call is None or self.call.done():
                    self._open()
                self.waiting.append((scheduled, fut))
                await self.call.write(r.requests.build())
            reply = await asyncio.wait_for(fut, r.plan.timeout)
            outcome: tuple[int, int, int] | str = score("StreamIssueSymbols", reply)
        except grpc.aio.AioRpcError as err:
            outcome = err.code().name
        except (TimeoutError, EOFError, asyncio.InvalidStateError, grpc.aio.UsageError):
            outcome = "STREAM_BROKEN"
        r.record(scheduled, time.perf_counter(), outcome)

    async def closed_loop(self) -> None:
        r = self.runner
        while r.more(start := time.perf_counter()):
            r.tally.sent += 1
            await self.send(start)

    async def close(self) -> None:
        if self.call is not None and not self.call.done():
            with contextlib.suppress(Exception):
                await self.call.done_writing()
        if self.reader is not None:
            try:
                await asyncio.wait_for(self.reader, 5)
            except (TimeoutError, asyncio.CancelledError):
                self.call.cancel()


# -- servers the generator starts ------------------------------------------------------


@dataclass
class Spawned:
    """A server process started by the generator; stopped with SIGTERM."""

    label: str
    proc: subprocess.Popen[str]
    address: str

    @classmethod
    def start(cls, label: str, argv: list[str], timeout: float = 120) -> Spawned:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True, start_new_session=True)
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            m = READY.search(line)
            if m:
                return cls(label, proc, f"{m.group(1)}:{m.group(2)}")
        proc.kill()
        raise SystemExit(f"bench.load: {label} server did not start: {' '.join(argv)}")

    def pids(self) -> list[int]:
        """The server process and its worker processes."""
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in task.read_text().split()]
        return out

    def cpu_seconds(self) -> float:
        total = 0.0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in self.pids():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return round(total / 1024, 1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def spawn_service(deployment: Path, workers: int) -> Spawned:
    argv = [sys.executable, "-m", "symbolsvc", "serve", "--config",
            str(deployment / "config.toml"), "--listen", "127.0.0.1:0"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return Spawned.start("service", argv)


def spawn_baseline(deployment: Path, workers: int) -> Spawned:
    argv = [sys.executable, "-m", "bench.baseline_server", "--config",
            str(deployment / "config.toml"), "--listen", "127.0.0.1:0", "--workers", str(workers)]
    return Spawned.start("baseline", argv)


# -- set-up: the translate population ----------------------------------------------------


def _identity(deployment: Path, name: str) -> tuple[bytes, bytes, bytes]:
    pki = deployment / "pki"
    return ((pki / "ca.crt").read_bytes(), (pki / f"{name}.crt").read_bytes(),
            (pki / f"{name}.key").read_bytes())


async def issue_population(deployment: Path, target: str, agencies: Sequence[str],
                           size: int, base: int) -> dict[str, list[str]]:
    """Issue ``size`` subjects to each agency; return each agency's symbols, in order."""
    import grpc

    from symbolsvc.v1 import symbol_service_pb2 as spb
    from symbolsvc.v1 import symbol_service_pb2_grpc as sgrpc

    numbers = [nth_number(n) for n in range(base, base + size)]
    out: dict[str, list[str]] = {}
    for agency in agencies:
        ca, cert, key = _identity(deployment, agency)
        async with grpc.aio.secure_channel(
                target, grpc.ssl_channel_credentials(ca, key, cert)) as channel:
            stub = sgrpc.SymbolServiceStub(channel)
            symbols: list[str] = []
            for i in range(0, size, 1000):
                reply = await stub.BatchIssueSymbols(
                    spb.BatchIssueSymbolsRequest(individual_numbers=numbers[i:i + 1000]),
                    timeout=60)
                for r in reply.results:
                    if r.WhichOneof("outcome") != "issued":
                        raise SystemExit(f"bench.load: population issue failed: {r.error}")
                    symbols.append(r.issued.symbol)
            out[agency] = symbols
    return out


# -- running a phase and summarising it ----------------------------------------------------


def run_phase(label: str, base_plan: Plan, processes: int, server: Spawned | None,
              quiet: bool) -> dict[str, Any]:
    """Run the plan on ``processes`` client processes against one server; summarise."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    plans = [replace(base_plan, number_base=base_plan.number_base + i * PROCESS_STRIDE)
             for i in range(processes)]
    procs = [ctx.Process(target=client_process, args=(p, i, out), daemon=True)
             for i, p in enumerate(plans)]
    for p in procs:
        p.start()
    t_measure = base_plan.start_at + base_plan.warmup
    t_end = t_measure + base_plan.duration
    hard_deadline = t_end + base_plan.timeout + 60
    sent = [0] * processes
    errors = [0] * processes
    tallies: dict[int, Tally] = {}
    cpu: dict[str, float] = {}
    last_print = 0.0
    try:
        while len(tallies) < processes:
            now = time.time()
            if now > hard_deadline:
                raise SystemExit(f"bench.load: {label}: client processes did not finish")
            if server is not None:
                if "start" not in cpu and now >= t_measure:
                    cpu["start"] = server.cpu_seconds()
                if "end" not in cpu and now >= t_end:
                    cpu["end"] = server.cpu_seconds()
            try:
                kind, i, payload = out.get(timeout=0.2)
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and out.empty():
                    raise SystemExit(f"bench.load: {label}: a client process died") from None
                continue
            if kind == "failed":
                raise SystemExit(f"bench.load: {label}: client process {i} failed: {payload}")
            if kind == "result":
                tallies[i] = payload
            else:
                sent[i], errors[i] = payload
                if not quiet and now - last_print >= 1.0:
                    last_print = now
                    phase = "warm-up" if now < t_measure else "measure"
                    print(f"  [{label}] {now - base_plan.start_at:5.1f}s {phase:8s}"
                          f" calls sent {sum(sent):>9,}  errors {sum(errors):,}",
                          file=sys.stderr, flush=True)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
    summary = summarise(list(tallies.values()), base_plan.duration)
    if server is not None:
        summary["server"] = server_figures(server, cpu, summary["calls"])
    return summary


def server_figures(server: Spawned, cpu: dict[str, float], calls: int) -> dict[str, Any]:
    used = cpu.get("end", server.cpu_seconds()) - cpu.get("start", 0.0)
    return {"processes": len(server.pids()), "cpu_seconds": round(used, 2),
            "cpu_us_per_call": round(used / calls * 1e6, 1) if calls else None,
            "rss_mb": server.rss_mb()}


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def summarise(tallies: list[Tally], duration: float) -> dict[str, Any]:
    lat = sorted(v for t in tallies for v in t.latencies)
    errors: collections.Counter[str] = collections.Counter()
    for t in tallies:
        errors.update(t.errors)
    calls = sum(t.calls for t in tallies)
    items = sum(t.items for t in tallies)
    ms = {f"p{q}": round(percentile(lat, q) * 1000, 3) for q in (50, 90, 99)}
    ms["max"] = round(lat[-1] * 1000, 3) if lat else float("nan")
    ms["mean"] = round(sum(lat) / len(lat) * 1000, 3) if lat else float("nan")
    return {
        "calls": calls,
        "items": items,
        "calls_per_s": round(calls / duration, 1),
        "items_per_s": round(items / duration, 1),
        "latency_ms": ms,
        "errors": dict(sorted(errors.items())),
        "item_errors": sum(t.item_errors for t in tallies),
        "not_new": sum(t.not_new for t in tallies),
        "dispatcher_late_ms": round(max((t.late_ms for t in tallies), default=0.0), 1),
    }


def ratios(service: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float | None]:
    def div(a: float, b: float) -> float | None:
        return round(a / b, 3) if b else None

    return {
        "throughput": div(service["items_per_s"], baseline["items_per_s"]),
        "p50": div(service["latency_ms"]["p50"], baseline["latency_ms"]["p50"]),
        "p99": div(service["latency_ms"]["p99"], baseline["latency_ms"]["p99"]),
    }


def pick_median(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures to quote: each ratio's median over the rounds, and the runs of the
    round whose throughput ratio is the median (the last round without a baseline)."""
    if rounds[0]["ratios"] is None:
        return {"runs": rounds[-1]["runs"], "ratios": None}
    by_ratio = sorted(rounds, key=lambda r: r["ratios"]["throughput"] or 0.0)
    medians = {k: statistics.median(r["ratios"][k] or 0.0 for r in rounds)
               for k in rounds[0]["ratios"]}
    return {"runs": by_ratio[(len(rounds) - 1) // 2]["runs"], "ratios": medians}


def machine() -> dict[str, Any]:
    import grpc

    cpu = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "grpcio": grpc.__version__, "platform": platform.platform()}


def markdown(report: dict[str, Any]) -> str:
    c = report["config"]
    load = (f"{c['concurrency']} callers" if c["mode"] == "closed"
            else f"{c['rate']:g} calls/s open loop")
    lines = [
        f"### {c['rpc']} — {load}, batch {c['batch']}, {c['processes']} client processes x "
        f"{c['channels']} channels, {c['duration']:g} s (+{c['warmup']:g} s warm-up)",
        "",
        "| server | calls/s | items/s | p50 ms | p90 ms | p99 ms | max ms | errors "
        "| server CPU µs/call | server RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for label, r in report["runs"].items():
        lat = r["latency_ms"]
        errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
        if r["item_errors"]:
            errs += f" (+{r['item_errors']} item errors)"
        srv = r.get("server", {})
        lines.append(
            f"| {label} | {r['calls_per_s']:,.0f} | {r['items_per_s']:,.0f} | {lat['p50']:.2f} "
            f"| {lat['p90']:.2f} | {lat['p99']:.2f} | {lat['max']:.2f} | {errs} "
            f"| {srv.get('cpu_us_per_call') or '-'} | {srv.get('rss_mb', '-')} |")
    if report.get("ratios"):
        r = report["ratios"]
        n = len(report["rounds"])
        each = "; ".join(f"{x['ratios']['throughput']} / {x['ratios']['p99']}x"
                         for x in report["rounds"])
        lines += ["", f"service / baseline{f' (median of {n} rounds)' if n > 1 else ''}: "
                      f"throughput **{r['throughput']}**, p50 {r['p50']}x, p99 **{r['p99']}x**"]
        if n > 1:
            lines += ["", f"rounds (throughput / p99): {each}"]
    return "\n".join(lines) + "\n"


# -- command line ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.load",
                                description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--deployment", required=True, type=Path,
                   help="a deployment directory (symbolsvc init): certificates and config")
    p.add_argument("--target", help="HOST:PORT of a running server (not with --spawn)")
    p.add_argument("--spawn", action="store_true",
                   help="start symbolsvc serve on the deployment for this run")
    p.add_argument("--workers", type=int, default=1,
                   help="with --spawn/--baseline: server processes (serve --workers N)")
    p.add_argument("--baseline", action="store_true",
                   help="also drive the empty-handler server and print ratios to it")
    p.add_argument("--rpc", choices=list(RPCS), default="IssueSymbol")
    p.add_argument("--concurrency", type=int, default=64,
                   help="closed loop: concurrent callers in all (streams, for open-loop streams)")
    p.add_argument("--rate", type=float, default=0.0,
                   help="open loop: calls per second in all (0 = closed loop)")
    p.add_argument("--batch", type=int, default=1000,
                   help="items per batch call or stream chunk (default %(default)s)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds (default %(default)s)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds (default %(default)s)")
    p.add_argument("--processes", type=int, default=2, help="client processes")
    p.add_argument("--channels", type=int, default=4, help="connections per client process")
    p.add_argument("--max-calls", type=int, default=5_000_000,
                   help="upper bound on calls per client process and phase")
    p.add_argument("--max-inflight", type=int, default=10_000,
                   help="open loop: outstanding calls per process before the scheduler waits")
    p.add_argument("--timeout", type=float, default=30.0, help="per-call deadline, seconds")
    p.add_argument("--population", type=int, default=2000,
                   help="translate/resolve: subjects issued to both agencies first")
    p.add_argument("--agency", default="city-chiyoda",
                   help="issuing agency, and the requester for translate/resolve")
    p.add_argument("--provider", default="city-minato", help="translate: the provider agency")
    p.add_argument("--office-work", default="demo-exchange")
    p.add_argument("--info-item", default="demo-record")
    p.add_argument("--rounds", type=int, default=1,
                   help="with --baseline: alternate baseline and service this many times and "
                        "quote the median ratios")
    p.add_argument("--json", type=Path, help="write the report as JSON here")
    p.add_argument("--markdown", type=Path, help="write the report as a Markdown table here")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.spawn == bool(args.target):
        raise SystemExit("bench.load: give exactly one of --target HOST:PORT and --spawn")
    if args.target and not args.target.startswith(("127.0.0.1:", "localhost:", "[::1]:")):
        raise SystemExit("bench.load: load is only sent to a loopback address")
    role, batched = RPCS[args.rpc]
    if not 1 <= args.batch <= 1000 and batched:
        raise SystemExit("bench.load: --batch must be 1..1000")
    if args.processes < 1 or args.channels < 1 or args.concurrency < args.processes:
        raise SystemExit("bench.load: need processes >= 1, channels >= 1, "
                         "concurrency >= processes")
    deployment = args.deployment.resolve()
    caller = args.agency if role == "agency" else "broker"
    ca, cert, key = _identity(deployment, caller)
    rng = random.SystemRandom()
    servers: dict[str, Spawned] = {}
    try:
        if args.spawn:
            servers["service"] = spawn_service(deployment, args.workers)
        target = servers["service"].address if args.spawn else args.target
        if args.baseline:
            servers["baseline"] = spawn_baseline(deployment, args.workers)
        population: tuple[str, ...] = ()
        if args.rpc in ("TranslateSymbol", "BatchTranslateSymbols", "ResolveProviders"):
            t0 = time.monotonic()
            base = rng.randrange(NUMBER_SPACE - args.population)
            symbols = asyncio.run(issue_population(
                deployment, target, [args.agency, args.provider], args.population, base))
            population = tuple(symbols[args.agency])
            if not args.quiet:
                print(f"  issued a population of {args.population:,} subjects to "
                      f"{args.agency} and {args.provider} in {time.monotonic() - t0:.1f} s",
                      file=sys.stderr)
        per_process = args.concurrency // args.processes
        plan = Plan(
            target=target, ca=ca, cert=cert, key=key, rpc=args.rpc,
            mode="open" if args.rate > 0 else "closed", concurrency=per_process,
            rate=args.rate / args.processes, batch=args.batch if batched else 1,
            channels=args.channels, start_at=0.0, warmup=args.warmup, duration=args.duration,
            max_calls=args.max_calls, max_inflight=args.max_inflight, timeout=args.timeout,
            number_base=0, requester=args.agency, provider=args.provider,
            office_work=args.office_work, info_item=args.info_item, population=population)
        order = [("baseline", servers["baseline"].address)] if args.baseline else []
        order.append(("service", target))
        rounds: list[dict[str, Any]] = []
        for r in range(args.rounds):
            runs: dict[str, dict[str, Any]] = {}
            # Alternate the order, so that drift on a shared machine favours neither.
            for label, address in order if r % 2 == 0 else order[::-1]:
                numbers_needed = args.processes * PROCESS_STRIDE
                phase_plan = replace(plan, target=address, start_at=time.time() + 2.0,
                                     number_base=rng.randrange(NUMBER_SPACE - numbers_needed))
                runs[label] = run_phase(label, phase_plan, args.processes, servers.get(label),
                                        args.quiet)
            rounds.append({"runs": runs, "ratios": ratios(runs["service"], runs["baseline"])
                           if "baseline" in runs else None})
    finally:
        for s in servers.values():
            s.stop()
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    config["concurrency"] = per_process * args.processes
    config["mode"] = plan.mode
    config["batch"] = plan.batch
    report: dict[str, Any] = {
        "version": 1,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "config": config,
        **pick_median(rounds),
        "rounds": rounds,
    }
    table = markdown(report)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(table)
    return 0


__all__ = ["Plan", "Tally", "main", "nth_number"]

if __name__ == "__main__":
    sys.exit(main())
