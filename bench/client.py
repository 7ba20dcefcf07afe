"""One client process: drives a plan closed or open loop and records every call.

Closed loop: ``concurrency`` callers, each sending its next call when the
previous one returns. Open loop: calls are *scheduled* at the schedule's rate
whatever the server does, and each latency runs from its scheduled send time,
so a stalled server shows up as latency, not as fewer samples.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from .plan import RPCS, Plan, Requests, score
from .stats import Recorder

STUBS = {"agency": ("symbol_service_pb2_grpc", "SymbolServiceStub"),
         "broker": ("broker_service_pb2_grpc", "BrokerServiceStub"),
         "portal": ("disclosure_service_pb2_grpc", "DisclosureServiceStub")}


def client_process(plan: Plan, index: int, out: Any, go: Any, start: Any) -> None:
    """Entry point of a client process: open the connections, say ("ready", index) on
    ``out``, wait for ``go`` (the parent sets it when every process is ready, with the
    wall-clock start of the warm-up in ``start``), run the plan, put ("result", index,
    digest) on ``out``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        digest = asyncio.run(_drive(plan, index, out, go, start))
        out.put(("result", index, digest))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        out.put(("failed", index, f"{type(exc).__name__}: {exc}"))


class Channels:
    """Channels per caller identity (each its own TCP connection), opened on first use."""

    def __init__(self, plan: Plan) -> None:
        import grpc

        self.plan = plan
        self._grpc = grpc
        self._pool: dict[str, list[Any]] = {}
        self._turn = collections.Counter[str]()
        agencies = sum(1 for n in plan.identities if n not in ("broker", "portal"))
        # Many agencies (a scenario): one connection each, so the server is not flooded.
        self._per_agency = plan.channels if agencies <= 2 else 1

    def _open(self, name: str) -> list[Any]:
        import importlib

        cert, key = self.plan.identities[name]
        creds = self._grpc.ssl_channel_credentials(self.plan.ca, key, cert)
        # A local subchannel pool gives every channel its own TCP connection.
        options = [("grpc.use_local_subchannel_pool", 1),
                   ("grpc.max_receive_message_length", 16 * 1024 * 1024),
                   ("grpc.max_send_message_length", 16 * 1024 * 1024)]
        n = self.plan.channels if name in ("broker", "portal") else self._per_agency
        chans = [self._grpc.aio.secure_channel(self.plan.target, creds, options=options)
                 for _ in range(n)]
        kind = name if name in ("broker", "portal") else "agency"
        module, cls = STUBS[kind]
        mod = importlib.import_module(f"symbolsvc.v1.{module}")
        self._pool[name] = [(c, getattr(mod, cls)(c)) for c in chans]
        return self._pool[name]

    def stub(self, name: str) -> Any:
        pool = self._pool.get(name) or self._open(name)
        self._turn[name] += 1
        return pool[self._turn[name] % len(pool)][1]

    async def ready(self, names: list[str]) -> None:
        chans = [c for n in names for c, _ in (self._pool.get(n) or self._open(n))]
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in chans)),
                               timeout=self.plan.timeout)

    async def close(self) -> None:
        for pool in self._pool.values():
            for c, _ in pool:
                await c.close()


async def _drive(plan: Plan, index: int, out: Any, go: Any, start: Any) -> dict[str, Any]:
    channels = Channels(plan)
    try:
        # Open every caller's connections before the clock starts (TLS handshakes are
        # not part of any call's latency).
        callers: set[str] = set()
        for rpc in plan.rpcs():
            kind = RPCS[rpc][0]
            callers |= set(plan.issuers) if kind == "agency" else {kind}
        await channels.ready(sorted(callers))
        out.put(("ready", index, None))
        if not await asyncio.to_thread(go.wait, plan.timeout + 120):
            raise TimeoutError("the parent never said go")
        return await Runner(replace(plan, start_at=start.value), index, out, channels).run()
    finally:
        await channels.close()


class Runner:
    def __init__(self, plan: Plan, index: int, out: Any, channels: Channels) -> None:
        self.plan, self.index, self.out, self.channels = plan, index, out, channels
        self.requests = Requests(plan)
        now_wall, now = time.time(), time.perf_counter()
        self.t_begin = now + (plan.start_at - now_wall)
        self.t_measure = self.t_begin + plan.warmup
        self.t_end = self.t_measure + plan.duration
        self.rec = Recorder(plan.rpcs(), plan.mode == "closed", self.t_measure, plan.duration,
                            [(s.start, s.end) for s in plan.schedule.segments],
                            keep_samples=plan.keep_samples)
        self._rpc_index = {rpc: i for i, rpc in enumerate(plan.rpcs())}

    async def unary(self, scheduled: float) -> None:
        import grpc

        rpc, batch = self.requests.pick()
        who, request = self.requests.build(rpc, batch)
        method = getattr(self.channels.stub(who), rpc)
        try:
            reply = await method(request, timeout=self.plan.timeout)
            outcome: tuple[int, int, int] | str = score(rpc, reply)
        except grpc.aio.AioRpcError as err:
            outcome = err.code().name
        self.rec.record(self._rpc_index[rpc], scheduled, time.perf_counter(), outcome)

    def more(self, now: float) -> bool:
        return now < self.t_end and self.rec.sent < self.plan.max_calls

    async def run(self) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, self.t_begin - time.perf_counter()))
        reporter = asyncio.create_task(self._report())
        try:
            if self.plan.rpcs() == ["StreamIssueSymbols"]:
                await self._streams()
            elif self.plan.mode == "closed":
                await asyncio.gather(*(self._caller() for _ in range(self.plan.concurrency)))
            else:
                await self._open_loop(self.unary)
        finally:
            reporter.cancel()
        return self.rec.digest(self.plan.co_interval_ms)

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.plan.progress_every)
            self.out.put(("progress", self.index, (self.rec.sent, self.rec.errors_total)))

    async def _caller(self) -> None:
        while self.more(start := time.perf_counter()):
            self.rec.sent += 1
            await self.unary(start)

    async def _open_loop(self, send: Callable[[float], Awaitable[None]]) -> None:
        """Schedule calls at the schedule's rate; each latency runs from its scheduled time."""
        slots = asyncio.Semaphore(self.plan.max_inflight)
        tasks: set[asyncio.Task[None]] = set()
        schedule = self.plan.schedule

        async def one(scheduled: float) -> None:
            try:
                await send(scheduled)
            finally:
                slots.release()

        scheduled = self.t_begin
        while self.more(scheduled):
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                self.rec.late_ms = max(self.rec.late_ms, -delay * 1000)
            await slots.acquire()  # waiting here counts in the latency: it runs from `scheduled`
            self.rec.sent += 1
            task = asyncio.create_task(one(scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            rate = schedule.rate_at(scheduled - self.t_measure)
            scheduled += 1.0 / rate if rate > 0 else self.plan.duration
        if tasks:
            await asyncio.wait(tasks, timeout=self.plan.timeout + 5)

    async def _streams(self) -> None:
        """StreamIssueSymbols: long-lived bidi streams, one chunk per 'call'."""
        n = self.plan.concurrency
        streams = [_Stream(self) for _ in range(n)]
        try:
            if self.plan.mode == "closed":
                await asyncio.gather(*(s.closed_loop() for s in streams))
            else:
                await self._open_loop(lambda t: streams[self.rec.sent % n].send(t))
        finally:
            await asyncio.gather(*(s.close() for s in streams))


class _Stream:
    """One StreamIssueSymbols call; chunks are answered in order, matched FIFO."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.call: Any = None
        self.lock = asyncio.Lock()
        self.waiting: collections.deque[tuple[float, asyncio.Future[Any]]] = collections.deque()
        self.reader: asyncio.Task[None] | None = None
        self.batch = runner.plan.mix[0][2]
        self.who, _ = runner.requests.build("StreamIssueSymbols", 1)

    def _open(self) -> None:
        p = self.runner.plan
        stub = self.runner.channels.stub(self.who)
        self.call = stub.StreamIssueSymbols(timeout=p.warmup + p.duration + p.timeout + 30)
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
                _, request = r.requests.build("StreamIssueSymbols", self.batch)
                await self.call.write(request)
            reply = await asyncio.wait_for(fut, r.plan.timeout)
            outcome: tuple[int, int, int] | str = score("StreamIssueSymbols", reply)
        except grpc.aio.AioRpcError as err:
            outcome = err.code().name
        except (TimeoutError, EOFError, asyncio.InvalidStateError, grpc.aio.UsageError):
            outcome = "STREAM_BROKEN"
        r.rec.record(0, scheduled, time.perf_counter(), outcome)

    async def closed_loop(self) -> None:
        r = self.runner
        while r.more(start := time.perf_counter()):
            r.rec.sent += 1
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


__all__ = ["RPCS", "client_process"]
