"""The sequencer: integrates queued access records into the Merkle tree and signs checkpoints.

Trillian's split (docs/ACCESS_LOG.md, "Flow"): request handlers only append
records to the queue (``access_records`` with ``leaf_index`` NULL) in the
durable commit that precedes their reply; this loop, one per server process,
integrates them. Of all the processes of a deployment only the holder of the
sequencer lease integrates: every step takes or renews the lease and re-checks
it inside the integration transaction (:meth:`symbolsvc.registry.LogStore.integrate`,
which applies the plan of :mod:`.integrate`),
so a process that lost its lease writes nothing, and a crash anywhere leaves
the whole integration or none of it.

Timing: a step every ``interval`` (default 200 ms), at most ``batch`` records
each, and immediately again while a backlog remains. A record is therefore in a
signed checkpoint at most ``interval`` + one integration after its commit while
this process holds the lease; after a crash of the holder, a peer takes over
when the lease expires (``lease_ms``).

Watchers in this process wake through :class:`LogNotifier` as soon as a step
grows the tree; a process that does not hold the lease learns the size from the
store every ``interval`` and wakes its watchers the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence
from contextlib import suppress

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import Histogram

from ..errors import SymbolsvcError
from ..registry import Integration, LogStore
from .checkpoint import Checkpoint, sign_checkpoint
from .integrate import SignFn, planner
from .merge_delay import LogWatch, shown
from .queue_auth import QueueAuthenticator

log = logging.getLogger("symbolsvc.log")

# A final integration on shutdown drains at most this many batches, then leaves the
# rest to the next sequencer (nothing is lost: the records stay queued).
_FINAL_STEPS = 100
INTEGRATION = Histogram("symbolsvc_access_log_integration_seconds", "Duration of each "
                        "integration step that integrated records (one writer transaction).")
# An integration this long holds every other write of the process behind it: logged,
# unless it took a whole batch (a backlog being caught up, expected to take longer).
_SLOW_S = 1.0


def checkpoint_signer(
    origin: str, private_key: Ed25519PrivateKey | Sequence[Ed25519PrivateKey]
) -> SignFn:
    """The sequencer's signer: a C2SP signed checkpoint whose key name is the origin
    (c2sp.org/tlog-checkpoint: the key name SHOULD match the origin). Several keys (a
    log-key rotation's transition: old, then new) each sign it."""

    def sign(tree_size: int, root_hash: bytes) -> str:
        return sign_checkpoint(Checkpoint(origin, tree_size, root_hash), private_key)

    return sign


def new_holder_id() -> str:
    """A lease holder id unique to this process: host, pid and a random tag."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(6)}"


class LogNotifier:
    """Wakes this process's watchers when the tree grows (asyncio, one event loop).

    ``size`` is the largest tree size seen; :meth:`wait_for_growth` returns once
    it exceeds a given size, or after a timeout (the caller then polls the store,
    which covers trees grown by a sequencer in another process).
    """

    def __init__(self) -> None:
        self._size = 0
        self._changed = asyncio.Event()
        self._closed = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    def advance(self, tree_size: int) -> None:
        if tree_size > self._size:
            self._size = tree_size
            self._wake()

    def close(self) -> None:
        """Wake every waiter for good (server shutdown)."""
        self._closed = True
        self._wake()

    def _wake(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_for_growth(self, beyond: int, timeout: float) -> None:
        """Return when the tree has more than ``beyond`` leaves, on close, or after ``timeout``."""
        if self._size > beyond or self._closed:
            return
        with suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # a timer, not a task per waiter
                await self._changed.wait()


class Sequencer:
    """The integration loop of one server process; see the module docstring."""

    def __init__(
        self,
        store: LogStore,
        sign_fn: SignFn,
        notifier: LogNotifier,
        *,
        interval_ms: int = 200,
        batch: int = 10_000,
        lease_ms: int = 5_000,
        holder: str | None = None,
        auth: QueueAuthenticator | None = None,
        max_merge_delay: float = 10.0,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.holder = holder or new_holder_id()
        self.interval = interval_ms / 1000
        self.batch = batch
        self.lease_ms = lease_ms
        # Verifies every queued row before integrating it (None: rows are trusted, as in
        # tests of the storage alone; a server always passes one).
        self._auth = auth
        self._plan = planner(sign_fn, auth)
        self.watch = LogWatch(max_merge_delay, lease_ms)
        self._leader = False
        self._failing: str | None = None  # the reason of the failure being retried
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def set_signer(self, sign_fn: SignFn) -> None:
        """Sign the next checkpoints with ``sign_fn`` (a reloaded keyring's log keys)."""
        self._plan = planner(sign_fn, self._auth)

    @property
    def leader(self) -> bool:
        """Whether the last step held the lease."""
        return self._leader

    async def step(self) -> Integration | None:
        """One integration attempt. Returns None when another live holder has the lease
        (then only the stored tree size is read, for this process's watchers)."""
        status = await self.store.log_status()
        self.watch.observe(status, self.holder)
        now_us = time.time_ns() // 1000
        if (status.lease_holder not in (None, self.holder)
                and status.lease_expires_us > now_us):
            self._set_leader(False, status.lease_holder)
            self.notifier.advance(status.tree_size)
            return None
        started = time.perf_counter()
        result = await self.store.integrate(self.batch, self.holder, self.lease_ms, self._plan)
        self._set_leader(result.leader, None)
        self.watch.integrated(result)
        self.notifier.advance(result.tree_size)
        if result.integrated:
            took = time.perf_counter() - started
            INTEGRATION.observe(took)
            slow = took >= _SLOW_S and result.integrated < self.batch
            (log.warning if slow else log.debug)(
                "integrated %d records in %.2f s; tree size %d",
                result.integrated, took, result.tree_size)
        return result

    def _set_leader(self, leader: bool, other: str | None) -> None:
        if leader != self._leader:
            if leader:
                log.info("sequencer %s took the lease: integrating the access log", self.holder)
            else:
                log.info("sequencer %s does not hold the lease (held by %s)", self.holder,
                         shown(other) or "another process")
        self._leader = leader

    async def start(self) -> None:
        """Run one step now (so a fresh log has its empty checkpoint), then loop."""
        await self._guarded_step()
        self._task = asyncio.create_task(self._run(), name="access-log-sequencer")

    async def _guarded_step(self) -> Integration | None:
        try:
            result = await self.step()
        except SymbolsvcError as exc:  # storage unreachable or full: retry every interval,
            if exc.reason != self._failing:  # logged once per episode, not every interval
                log.warning("access log integration failed, will retry: %s", exc.message)
                self._failing = exc.reason
        except (RuntimeError, ValueError, KeyError):  # damaged log state: loud, and retry
            log.exception("access log integration failed; the log needs the operator")
        else:
            if self._failing is not None:
                log.info("access log integration resumed")
                self._failing = None
            return result
        return None

    async def _run(self) -> None:
        while not self._stop.is_set():
            result = await self._guarded_step()
            if result is not None and result.leader and result.integrated >= self.batch:
                await asyncio.sleep(0)  # a backlog: integrate the next batch right away
                continue
            with suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval)

    async def stop(self) -> None:
        """Stop the loop, integrate what is queued (SIGTERM's final integration), and
        hand the lease over so a peer need not wait for it to expire."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        for _ in range(_FINAL_STEPS):
            result = await self._guarded_step()
            if result is None or not result.leader or result.integrated < self.batch:
                break
        if self._leader:
            try:
                await self.store.release_lease(self.holder)
            except SymbolsvcError as exc:
                log.warning("could not release the sequencer lease: %s", exc.message)
        self._leader = False
