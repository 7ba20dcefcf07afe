"""The empty-handler baseline: symbolsvc's services with the same TLS, doing no work.

It serves SymbolService and BrokerService from the deployment's own
certificates (mutual TLS, client certificate required) and server options,
and answers every call at once with a fixed reply of the same size as the
real one (a 55-character symbol, per-item results for batches). What the load
generator measures against it is the cost of gRPC, TLS and protobuf in
Python on this machine: the ceiling symbolsvc's figures are quoted against.

    python -m bench.baseline_server --config DIR/config.toml --listen 127.0.0.1:0 [--workers N]

prints ``baseline serving on HOST:PORT`` when ready and stops on SIGTERM.
``--delay-ms D`` makes every call (every stream chunk) wait D ms before it
answers: a server with a known, injected regression, for checking that
``bench.load compare`` catches one.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import signal
import sys
from collections.abc import AsyncIterator, Callable
from multiprocessing.connection import Connection
from pathlib import Path

import grpc

from symbolsvc.config import Config, load_config
from symbolsvc.server import _credentials
from symbolsvc.server_options import server_options
from symbolsvc.v1 import broker_service_pb2 as broker_pb
from symbolsvc.v1 import broker_service_pb2_grpc as broker_grpc
from symbolsvc.v1 import disclosure_service_pb2 as disclosure_pb
from symbolsvc.v1 import disclosure_service_pb2_grpc as disclosure_grpc
from symbolsvc.v1 import symbol_service_pb2 as symbol_pb
from symbolsvc.v1 import symbol_service_pb2_grpc as symbol_grpc

# Same sizes as real replies: "k1." + 52 base32 characters; two providers.
SYMBOL = "k1." + "a" * 52
PROVIDERS = ("city-chiyoda", "city-minato")
READY_PREFIX = "baseline serving on"
_record_ids = itertools.count(1_000_000)


def _issued() -> symbol_pb.IssueSymbolResponse:
    return symbol_pb.IssueSymbolResponse(symbol=SYMBOL, newly_registered=True, key_version=1)


def _translated() -> broker_pb.TranslateSymbolResponse:
    return broker_pb.TranslateSymbolResponse(provider_symbol=SYMBOL, record_id=next(_record_ids))


class _Delay:
    def __init__(self, delay_ms: float = 0.0) -> None:
        self.delay = delay_ms / 1000

    async def pause(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)


class EmptySymbolService(_Delay, symbol_grpc.SymbolServiceServicer):
    async def IssueSymbol(self, request: symbol_pb.IssueSymbolRequest,
                          context: grpc.aio.ServicerContext) -> symbol_pb.IssueSymbolResponse:
        await self.pause()
        return _issued()

    async def BatchIssueSymbols(
        self, request: symbol_pb.BatchIssueSymbolsRequest, context: grpc.aio.ServicerContext
    ) -> symbol_pb.BatchIssueSymbolsResponse:
        await self.pause()
        return symbol_pb.BatchIssueSymbolsResponse(
            results=[symbol_pb.IssueResult(issued=_issued())
                     for _ in request.individual_numbers])

    async def StreamIssueSymbols(
        self, requests: AsyncIterator[symbol_pb.StreamIssueSymbolsRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[symbol_pb.StreamIssueSymbolsResponse]:
        async for chunk in requests:
            await self.pause()
            yield symbol_pb.StreamIssueSymbolsResponse(
                chunk_id=chunk.chunk_id,
                results=[symbol_pb.IssueResult(issued=_issued())
                         for _ in chunk.individual_numbers])

    async def ReleaseSymbol(self, request: symbol_pb.ReleaseSymbolRequest,
                            context: grpc.aio.ServicerContext) -> symbol_pb.ReleaseSymbolResponse:
        await self.pause()
        return symbol_pb.ReleaseSymbolResponse(was_held=True)


class EmptyBrokerService(_Delay, broker_grpc.BrokerServiceServicer):
    async def TranslateSymbol(
        self, request: broker_pb.TranslateSymbolRequest, context: grpc.aio.ServicerContext
    ) -> broker_pb.TranslateSymbolResponse:
        await self.pause()
        return _translated()

    async def BatchTranslateSymbols(
        self, request: broker_pb.BatchTranslateSymbolsRequest, context: grpc.aio.ServicerContext
    ) -> broker_pb.BatchTranslateSymbolsResponse:
        await self.pause()
        return broker_pb.BatchTranslateSymbolsResponse(
            results=[broker_pb.TranslateResult(translated=_translated())
                     for _ in request.requests])

    async def ResolveProviders(
        self, request: broker_pb.ResolveProvidersRequest, context: grpc.aio.ServicerContext
    ) -> broker_pb.ResolveProvidersResponse:
        await self.pause()
        return broker_pb.ResolveProvidersResponse(provider_agencies=PROVIDERS,
                                                  record_id=next(_record_ids))


class EmptyDisclosureService(_Delay, disclosure_grpc.DisclosureServiceServicer):
    async def ListAccessRecords(
        self, request: disclosure_pb.ListAccessRecordsRequest, context: grpc.aio.ServicerContext
    ) -> disclosure_pb.ListAccessRecordsResponse:
        await self.pause()
        return disclosure_pb.ListAccessRecordsResponse()


async def serve(config: Config, listen: str, *, reuseport: bool = False,
                on_ready: Callable[[str, int], None] | None = None,
                delay_ms: float = 0.0) -> None:
    server = grpc.aio.server(options=server_options(config.connection_limits,
                                                    config.max_message_bytes,
                                                    reuseport=reuseport),
                             maximum_concurrent_rpcs=config.max_concurrent_rpcs)
    symbol_grpc.add_SymbolServiceServicer_to_server(EmptySymbolService(delay_ms), server)
    broker_grpc.add_BrokerServiceServicer_to_server(EmptyBrokerService(delay_ms), server)
    disclosure_grpc.add_DisclosureServiceServicer_to_server(
        EmptyDisclosureService(delay_ms), server)
    port = server.add_secure_port(listen, _credentials(config))
    if port == 0:
        sys.exit(f"baseline: cannot listen on {listen}")
    await server.start()
    host = listen.rsplit(":", 1)[0]
    if on_ready is not None:
        on_ready(host, port)
    else:
        print(f"{READY_PREFIX} {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    await server.stop(1)


def worker_main(config: Config, address: str, ready: Connection,
                delay_ms: float = 0.0) -> None:
    """A worker for :func:`symbolsvc.workers.serve_workers` (the --workers N mode)."""

    def on_ready(_host: str, port: int) -> None:
        ready.send(port)
        ready.close()

    asyncio.run(serve(config, address, reuseport=True, on_ready=on_ready, delay_ms=delay_ms))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline_server",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="the deployment's config.toml")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (default %(default)s)")
    parser.add_argument("--workers", type=int, default=1, help="processes on one port")
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="wait this long in every call: an injected regression")
    args = parser.parse_args(argv)
    config = load_config(Path(args.config))
    if args.workers > 1:
        from symbolsvc.workers import serve_workers

        # serve_workers prints "symbolsvc serving on"; the load generator accepts both.
        worker = functools.partial(worker_main, delay_ms=args.delay_ms)
        return serve_workers(config, args.listen, args.workers, worker=worker)
    asyncio.run(serve(config, args.listen, delay_ms=args.delay_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
