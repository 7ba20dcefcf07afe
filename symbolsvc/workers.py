"""``symbolsvc serve --workers N``: N server processes on one port, sharing one registry.

Python serves gRPC on one core per process, so a machine with several cores
runs several processes. The pattern is grpc's ``examples/python/multiprocessing``:

- the parent creates no gRPC object (gRPC's core does not survive a fork, and
  workers are started with *spawn* anyway so that each builds its own);
- the parent first checks that no one listens on the port (a plain bind, which
  fails beside any listener, SO_REUSEPORT or not: an orphan of an earlier set is
  refused, never joined), then reserves the port by binding it with SO_REUSEPORT
  and keeps that socket (bound, never listening) open, which also turns
  ``--listen HOST:0`` into one real port that every worker can share;
- each worker serves with ``grpc.so_reuseport`` on and tells the parent when it
  is ready; the parent prints the one readiness line once all are.

The kernel spreads *connections*, not calls, over the workers: a client needs
several connections to reach all of them.

Every worker opens the same registry (SQLite: one group-commit writer each,
serialised by ``BEGIN IMMEDIATE``; PostgreSQL: a pool each). The parent creates
or checks the schema once before the workers start, so they do not race.

**Supervision** (docs/HARDENING.md). A worker that dies is named in the log with
its pid and exit status or signal, and restarted after a back-off (0.5 s,
doubling, at most 10 s) while the others keep serving the port. If workers die
:data:`RESTART_LIMIT` times within :data:`RESTART_WINDOW` seconds, or one exits
with a configuration error (status 2), the set cannot be kept whole: the others
are stopped and the parent exits non-zero (1, or 2 for a configuration error),
so a service manager (``Restart=on-failure``) restarts it. A clean stop
(SIGTERM/SIGINT) exits 0 only when every worker stopped cleanly.

**No orphans.** Each worker asks the kernel for SIGTERM when its parent dies
(``PR_SET_PDEATHSIG`` on Linux; elsewhere a thread polls the parent pid), and
exits at once if the parent is already gone; kill -9 of the parent therefore
ends every worker within its grace period.

**Signals.** SIGTERM and SIGINT are forwarded to every worker (graceful stop).
SIGHUP (reload the permission table) is forwarded to every serving worker; a
worker still starting gets it the moment it reports ready, so none misses a
reload. Workers ignore SIGHUP until their reload handler is in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from . import metrics_http
from .config import Config
from .errors import ConfigError

READY_TIMEOUT = 120.0
RESTART_LIMIT = 5  # worker deaths tolerated ...
RESTART_WINDOW = 60.0  # ... within this many seconds
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 10.0
CONFIG_ERROR_STATUS = 2
_PR_SET_PDEATHSIG = 1
# A worker's entry point: serve (config, "HOST:PORT") with SO_REUSEPORT, send the
# port down the connection once serving, return on SIGTERM.
WorkerMain = Callable[[Config, str, Connection], None]


def _say(message: str) -> None:
    print(f"symbolsvc: {message}", file=sys.stderr, flush=True)


def _split(address: str) -> tuple[str, int]:
    host, _, port_text = address.rpartition(":")
    try:
        return host.strip("[]"), int(port_text)
    except ValueError:
        raise ConfigError(f"cannot listen on {address}: the port is not a number") from None


def _refuse_if_listening(family: int, sockaddr: tuple, address: str) -> None:
    """Fail if anything listens on ``sockaddr`` (a plain bind conflicts with every
    listener, SO_REUSEPORT or not); TIME_WAIT leftovers do not count (SO_REUSEADDR)."""
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {address}: {exc.strerror} (another server, or a worker "
                "left over from an earlier set, still holds the port)") from None


@contextlib.contextmanager
def reserve_port(address: str) -> Iterator[int]:
    """Bind ``HOST:PORT`` with SO_REUSEPORT (port 0 picks one) and hold it; yield the port.

    A port that something already listens on is refused (ConfigError)."""
    host, port = _split(address)
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"cannot listen on {address}: {exc}") from None
    if port != 0:
        _refuse_if_listening(family, sockaddr, address)
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
            address = f"{listen.rpartition(':')[0]}:{port}"
            if config.metrics_listen:  # multiprocess mode: set up before any worker exists
                metrics_http.serve_multiprocess(config.metrics_listen,
                                                metrics_http.prepare_multiprocess())
            return Supervisor(config, address, workers, worker or _worker).run()
    except ConfigError as exc:
        _say(str(exc))
        return CONFIG_ERROR_STATUS


def _prepare_storage(config: Config) -> None:
    """Create (SQLite) or check (PostgreSQL) the registry's schema once, before the workers."""
    from .registry.backends import open_registry

    async def init() -> None:
        await open_registry(config.storage_url, config.base).close()

    asyncio.run(init())


def describe_exit(exitcode: int | None) -> str:
    """``exited with status 3`` / ``was killed by signal SIGKILL``."""
    if exitcode is None:
        return "is still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = str(-exitcode)
        return f"was killed by signal {name}"
    return f"exited with status {exitcode}"


@dataclass
class _Slot:
    """One worker position of the set, across the processes that fill it."""

    index: int
    proc: BaseProcess | None = None
    ready: Connection | None = None  # the parent's end until the worker reports serving
    serving: bool = False
    hup_pending: bool = False
    restart_at: float | None = None  # monotonic time of a scheduled restart
    exited: bool = False  # its sentinel fired and it was reaped
    stopped: bool = False  # SIGTERM/SIGINT sent to its current process (once only: a
    # second one could land after the worker's handler is gone and kill it mid-exit)
    deaths: deque[float] = field(default_factory=deque)

    @property
    def name(self) -> str:
        return f"worker {self.index}"


class Supervisor:
    """Starts N workers, keeps the set whole, forwards signals; :meth:`run` gives the status."""

    def __init__(self, config: Config, address: str, n: int, worker: WorkerMain) -> None:
        self._config = config
        self._address = address
        self._worker = worker
        self._ctx = multiprocessing.get_context("spawn")
        self._slots = [_Slot(i) for i in range(n)]
        self._stopping = False
        self._status = 0  # the exit status once the set is given up

    # -- processes --

    def _spawn(self, slot: _Slot) -> None:
        parent_end, child_end = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=_child_main,
            args=(self._worker, self._config, self._address, child_end, os.getpid()),
            name=f"symbolsvc-worker-{slot.index}")
        proc.start()
        child_end.close()
        slot.proc, slot.ready, slot.serving, slot.restart_at = proc, parent_end, False, None
        slot.stopped = slot.exited = False
        _say(f"{slot.name} started (pid {proc.pid})")

    def _live(self) -> list[_Slot]:
        """Slots whose current process has not been seen to exit (its sentinel)."""
        return [s for s in self._slots if s.proc is not None and not s.exited]

    def _signal(self, slot: _Slot, signum: int) -> None:
        if slot.proc is not None and slot.proc.pid is not None and slot.proc.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.proc.pid, signum)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            for slot in self._slots:
                if slot.serving:
                    self._signal(slot, signum)
                else:
                    slot.hup_pending = True  # sent when it reports serving
            return
        self._stopping = True
        for slot in self._slots:
            self._stop(slot, signum)

    def _stop(self, slot: _Slot, signum: int = signal.SIGTERM) -> None:
        slot.restart_at = None
        if not slot.stopped:
            slot.stopped = True
            self._signal(slot, signum)

    # -- the loop --

    def run(self) -> int:
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        previous = {s: signal.signal(s, self._on_signal) for s in handled}
        try:
            for slot in self._slots:
                self._spawn(slot)
            if self._await_all_ready():
                print(f"symbolsvc serving on {self._address}", flush=True)
                _say(f"{len(self._slots)} worker processes share {self._address} "
                     "(SO_REUSEPORT)")
                self._keep_whole()
            self._stop_all()
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
        if self._status:
            return self._status
        return 0 if all(self._stopped_cleanly(s) for s in self._slots) else 1

    @staticmethod
    def _stopped_cleanly(slot: _Slot) -> bool:
        if slot.proc is None or slot.proc.exitcode == 0:
            return True
        # Stopped while still starting, before it could install any handler: nothing to
        # drain, nothing lost.
        return slot.stopped and not slot.serving and slot.proc.exitcode == -signal.SIGTERM

    def _await_all_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._stopping and not all(s.serving for s in self._slots):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _say("workers did not become ready in time")
                self._status = 1
                return False
            for slot in self._poll(remaining):
                if slot.proc is not None and slot.exited:
                    _say(f"{slot.name} (pid {slot.proc.pid}) "
                         f"{describe_exit(slot.proc.exitcode)} before serving")
                    self._status = 1 if slot.proc.exitcode != CONFIG_ERROR_STATUS \
                        else CONFIG_ERROR_STATUS
                    return False
        return not self._stopping

    def _keep_whole(self) -> None:
        while not self._stopping and not self._status:
            now = time.monotonic()
            due = [s.restart_at for s in self._slots if s.restart_at is not None]
            timeout = max(0.0, min(due) - now) if due else 1.0
            for slot in self._poll(timeout):
                if slot.exited and not self._stopping:
                    self._died(slot)
            now = time.monotonic()
            for slot in self._slots:
                if slot.restart_at is not None and slot.restart_at <= now \
                        and not self._stopping and not self._status:
                    self._spawn(slot)

    def _poll(self, timeout: float) -> list[_Slot]:
        """Wait for a worker to exit or report serving; the slots that changed."""
        waitables: dict[Any, _Slot] = {}  # wait() returns its arguments back
        for slot in self._live():
            assert slot.proc is not None
            waitables[slot.proc.sentinel] = slot
            if slot.ready is not None:
                waitables[slot.ready] = slot
        if not waitables:
            time.sleep(min(timeout, 1.0))
            return []
        changed: list[_Slot] = []
        for obj in wait(list(waitables), timeout=timeout):
            slot = waitables[obj]
            if obj is slot.ready:
                self._ready(slot)
            else:  # the sentinel: the process is gone; reap it for its exit code
                assert slot.proc is not None
                slot.proc.join()
                slot.exited = True
                metrics_http.worker_exited(slot.proc.pid)  # its live gauges stop counting
            if slot not in changed:  # both its pipe and its sentinel may fire at once
                changed.append(slot)
        return changed

    def _ready(self, slot: _Slot) -> None:
        assert slot.ready is not None
        try:
            slot.ready.recv()
        except EOFError:
            return  # it exited; its sentinel reports how
        finally:
            slot.ready.close()
            slot.ready = None
        slot.serving = True
        if slot.proc is not None:
            _say(f"{slot.name} (pid {slot.proc.pid}) serving")
        if slot.hup_pending:
            slot.hup_pending = False
            self._signal(slot, signal.SIGHUP)

    def _died(self, slot: _Slot) -> None:
        assert slot.proc is not None
        code = slot.proc.exitcode
        what = f"{slot.name} (pid {slot.proc.pid}) {describe_exit(code)}"
        slot.serving = False
        if slot.ready is not None:
            slot.ready.close()
            slot.ready = None
        if code == CONFIG_ERROR_STATUS:
            _say(f"{what} (configuration error): stopping the set")
            self._status = CONFIG_ERROR_STATUS
            return
        now = time.monotonic()
        slot.deaths.append(now)
        while slot.deaths and slot.deaths[0] < now - RESTART_WINDOW:
            slot.deaths.popleft()
        deaths = sum(len(s.deaths) for s in self._slots)
        if deaths >= RESTART_LIMIT:
            _say(f"{what}; {deaths} worker deaths within {RESTART_WINDOW:.0f} s: the set "
                 "cannot be kept whole, stopping it (exit status 1)")
            self._status = 1
            return
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (len(slot.deaths) - 1))
        slot.restart_at = now + delay
        _say(f"{what}; restarting it in {delay:.1f} s "
             f"({deaths} of {RESTART_LIMIT} deaths allowed within {RESTART_WINDOW:.0f} s)")

    def _stop_all(self) -> None:
        for slot in self._slots:
            self._stop(slot)
        for slot in self._slots:
            if slot.proc is not None:
                reported = slot.exited
                slot.proc.join()
                if slot.proc.exitcode != 0 and not reported:
                    _say(f"{slot.name} (pid {slot.proc.pid}) {describe_exit(slot.proc.exitcode)}")
            if slot.ready is not None:
                slot.ready.close()
                slot.ready = None


# -- the worker side ---------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Get SIGTERM when the supervisor dies (Linux: the kernel sends it; elsewhere a
    thread notices the re-parenting); exit now if it is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(0.5)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent:  # died before the request took effect
        os._exit(1)


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _child_main(worker: WorkerMain, config: Config, address: str, ready: Connection,
                parent: int) -> None:
    # Until the server installs its own handlers: a reload has nothing to reload yet, and
    # a stop before serving has nothing to drain (a clean exit, not death by signal).
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    signal.signal(signal.SIGINT, _exit_cleanly)
    _die_with_parent(parent)
    worker(config, address, ready)


def _worker(config: Config, address: str, ready: Connection) -> None:
    """One worker process: an ordinary server with SO_REUSEPORT, reporting readiness."""
    from .server import run

    def on_ready(_host: str, port: int) -> None:
        ready.send(port)
        ready.close()

    try:
        asyncio.run(run(config, address, reuseport=True, on_ready=on_ready))
    except ConfigError as exc:
        _say(str(exc))
        sys.exit(CONFIG_ERROR_STATUS)
