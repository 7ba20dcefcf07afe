"""``symbolsvc serve --workers N``: N server processes on one port, sharing one registry.

Python serves gRPC on one core per process, so a machine with several cores
runs several processes. The pattern is grpc's ``examples/python/multiprocessing``:

- the parent creates no gRPC object (gRPC's core does not survive a fork, and
  workers are started with *spawn* anyway so that each builds its own);
- the parent reserves the port by binding it with SO_REUSEPORT and keeps that
  socket (bound, never listening) open, which also turns ``--listen HOST:0``
  into one real port that every worker can share;
- each worker serves with ``grpc.so_reuseport`` on and tells the parent when it
  is ready; the parent prints the one readiness line once all are.

The kernel spreads *connections*, not calls, over the workers: a client needs
several connections to reach all of them.

Every worker opens the same SQLite registry. Each keeps its own group-commit
writer; ``BEGIN IMMEDIATE`` takes SQLite's write lock (waiting up to
``busy_timeout``), so the workers' groups are serialised and each remains one
durable transaction. The parent creates the schema once before the workers
start, so they do not race to create it.

Signals: SIGTERM, SIGINT and SIGHUP sent to the parent are forwarded to every
worker (graceful stop; policy reload). When one worker exits, the others are
stopped and the parent exits with a failure, so a supervisor restarts the set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from types import FrameType

from .config import Config
from .errors import ConfigError

log = logging.getLogger("symbolsvc.server")
READY_TIMEOUT = 120.0
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# A worker's entry point: serve (config, "HOST:PORT") with SO_REUSEPORT, send the
# port down the connection once serving, return on SIGTERM.
WorkerMain = Callable[[Config, str, Connection], None]


@contextlib.contextmanager
def reserve_port(address: str) -> Iterator[int]:
    """Bind ``HOST:PORT`` with SO_REUSEPORT (port 0 picks one) and hold it; yield the port."""
    host, _, port_text = address.rpartition(":")
    host = host.strip("[]")
    try:
        port = int(port_text)
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
    except (ValueError, OSError) as exc:
        raise ConfigError(f"cannot listen on {address}: {exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {address}: {exc.strerror}") from None
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def serve_workers(config: Config, listen: str, workers: int, *,
                  worker: WorkerMain | None = None) -> int:
    """Run ``workers`` server processes on ``listen``; return the exit status.

    ``worker`` replaces the symbolsvc server (the bench's empty-handler
    baseline uses it); it must be importable, as workers are spawned.
    """
    try:
        if worker is None:
            _prepare_storage(config)
        with reserve_port(listen) as port:
            return _supervise(config, f"{listen.rpartition(':')[0]}:{port}", workers,
                              worker or _worker)
    except ConfigError as exc:
        print(f"symbolsvc: {exc}", file=sys.stderr)
        return 2


def _prepare_storage(config: Config) -> None:
    """Create (SQLite) or check (PostgreSQL) the registry's schema once, before the workers."""
    from .registry.backends import open_registry

    async def init() -> None:
        await open_registry(config.storage_url, config.base).close()

    asyncio.run(init())


def _supervise(config: Config, address: str, n: int, worker: WorkerMain) -> int:
    from . import metrics_http

    metrics_dir = None
    if config.metrics_listen:  # multiprocess mode: set up before any worker exists
        metrics_dir = metrics_http.prepare_multiprocess()
        metrics_http.serve_multiprocess(config.metrics_listen, metrics_dir)
    ctx = multiprocessing.get_context("spawn")
    procs: list[multiprocessing.process.BaseProcess] = []
    pending: dict[Connection, int] = {}
    for i in range(n):
        parent_end, child_end = ctx.Pipe(duplex=False)
        p = ctx.Process(target=worker, args=(config, address, child_end),
                        name=f"symbolsvc-worker-{i}")
        p.start()
        child_end.close()
        procs.append(p)
        pending[parent_end] = i

    def forward(signum: int, _frame: FrameType | None) -> None:
        _signal_all(procs, signum)

    previous = {s: signal.signal(s, forward) for s in _FORWARDED}
    try:
        if not _await_ready(procs, pending):
            _stop_all(procs)
            return 1
        print(f"symbolsvc serving on {address}", flush=True)
        print(f"symbolsvc: {n} worker processes share {address} (SO_REUSEPORT)",
              file=sys.stderr, flush=True)
        wait([p.sentinel for p in procs])  # the first worker to exit ends the set
        _stop_all(procs)
        if metrics_dir is not None:
            for p in procs:
                if p.pid is not None:
                    metrics_http.worker_exited(p.pid, metrics_dir)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    codes = [p.exitcode or 0 for p in procs]
    return max(codes, default=0) if any(codes) else 0


def _await_ready(procs: list[multiprocessing.process.BaseProcess],
                 pending: dict[Connection, int]) -> bool:
    sentinels = {p.sentinel: p for p in procs}
    while pending:
        ready = wait([*pending, *sentinels], timeout=READY_TIMEOUT)
        if not ready:
            print("symbolsvc: workers did not become ready in time", file=sys.stderr)
            return False
        for r in ready:
            if r in sentinels:
                print(f"symbolsvc: {sentinels[r].name} exited before serving "
                      f"(exit code {sentinels[r].exitcode})", file=sys.stderr)
                return False
            conn = r
            assert isinstance(conn, Connection)
            try:
                conn.recv()
            except EOFError:
                continue  # its sentinel reports the exit
            conn.close()
            del pending[conn]
    return True


def _signal_all(procs: list[multiprocessing.process.BaseProcess], signum: int) -> None:
    for p in procs:
        if p.is_alive() and p.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signum)


def _stop_all(procs: list[multiprocessing.process.BaseProcess]) -> None:
    _signal_all(procs, signal.SIGTERM)
    for p in procs:
        p.join()


def _worker(config: Config, address: str, ready: Connection) -> None:
    """One worker process: an ordinary server with SO_REUSEPORT, reporting readiness."""
    from .server import run

    def on_ready(_host: str, port: int) -> None:
        ready.send(port)
        ready.close()

    try:
        asyncio.run(run(config, address, reuseport=True, on_ready=on_ready))
    except ConfigError as exc:
        print(f"symbolsvc: {exc}", file=sys.stderr)
        sys.exit(2)
