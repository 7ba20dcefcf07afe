"""The log's side of witnessing: submit each new checkpoint to the configured witnesses
(c2sp.org/tlog-witness ``add-checkpoint``) and keep their cosignatures with it
(docs/WITNESS.md).

Off the write path: one task per witness in each server process, acting only while this
process's sequencer holds the lease (so a deployment submits once, not once per worker;
a hung witness holds up no other). Each wakes when the tree grows
(:class:`~.sequencer.LogNotifier`) or ``retry_ms`` after a failure, takes the latest
checkpoint and, if its witness has not cosigned it, sends it with a consistency proof
from the size the witness last cosigned (remembered in memory; 0 at start, and a ``409``
answer tells the real size, as the spec allows). A returned cosignature is verified
against the configured vkey before it is appended to the stored note (compare-and-set).
Issuance and translation never wait on any of this; a failure is a warning and
``symbolsvc_witness_submissions_total{witness,result}``, and is retried.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram

from ..errors import SymbolsvcError
from ..registry import LogStore, StoredCheckpoint
from .checkpoint import NoteError
from .cosignature import (
    WitnessKey,
    parse_witness_vkey,
    signature_lines,
    split_note,
    verify_cosignatures,
    with_cosignatures,
)
from .service import AccessLog

log = logging.getLogger("symbolsvc.witnessing")

SUBMISSIONS = Counter(
    "symbolsvc_witness_submissions_total",
    "add-checkpoint calls to witnesses, by witness and result (cosigned, conflict, "
    "refused, error).", ["witness", "result"])
ROUND_TRIP = Histogram(
    "symbolsvc_witness_round_trip_seconds",
    "Time from sending a checkpoint to a witness to its cosignature being stored.",
    ["witness"], buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))


@dataclass
class Peer:
    """One witness as the log sees it: its URL, key and the size it last cosigned."""

    url: str
    key: WitnessKey
    known_size: int = 0
    cosigned: int = -1  # the checkpoint size whose cosignature is stored
    failures: int = 0


class Submitter:
    """The submission loop; see the module docstring."""

    def __init__(self, store: LogStore, access_log: AccessLog,
                 wake: Callable[[int, float], Awaitable[None]],
                 peers: Sequence[tuple[str, str]], *, is_leader: Callable[[], bool],
                 timeout_ms: int = 5_000, retry_ms: int = 2_000) -> None:
        self.store = store
        self.access_log = access_log
        self.wake = wake  # LogNotifier.wait_for_growth
        self.peers = [Peer(url, parse_witness_vkey(vkey)) for url, vkey in peers]
        self.is_leader = is_leader
        self.timeout = timeout_ms / 1000
        self.retry = retry_ms / 1000
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: Any = None

    async def start(self) -> None:
        import httpx  # the witness extra (docs/WITNESS.md)

        self._client = httpx.AsyncClient(timeout=self.timeout, http2=False,
                                         follow_redirects=False)
        # one loop per witness: a hung or slow witness holds up no other
        self._tasks = [asyncio.create_task(self._run(peer), name=f"witness-{peer.key.name}")
                       for peer in self.peers]

    async def stop(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()

    async def _run(self, peer: Peer) -> None:
        while not self._stop.is_set():
            size = await self._step(peer)
            if size is None:  # not the sequencer, or no checkpoint yet
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.retry)
                continue
            # the next checkpoint, or a retry after a failure (or, idle, a periodic look
            # at the lease)
            await self.wake(size, self.retry if peer.cosigned != size else 1.0)

    async def _step(self, peer: Peer) -> int | None:
        if not self.is_leader():
            return None
        try:
            cp = await self.store.latest_checkpoint()
        except SymbolsvcError as exc:
            log.warning("witnessing: cannot read the latest checkpoint: %s", exc.message)
            return None
        if cp is None:
            return None
        if peer.cosigned != cp.tree_size:
            await self._submit_one(peer, cp)
        return cp.tree_size

    async def submit(self, cp: StoredCheckpoint) -> list[str]:
        """Ask every witness that has not cosigned ``cp`` yet, concurrently (the
        benchmark's entry point; the server's loops call :meth:`_submit_one`)."""
        todo = [p for p in self.peers if p.cosigned != cp.tree_size]
        results = await asyncio.gather(*(self._submit_one(p, cp) for p in todo))
        return [line for line in results if line is not None]

    async def _submit_one(self, peer: Peer, cp: StoredCheckpoint) -> str | None:
        name = peer.key.name
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(2):  # a 409 tells the witness's size: one more try with it
            try:
                body = await self._request_body(peer.known_size, cp)
                reply = await self._client.post(peer.url + "/add-checkpoint", content=body)
            except SymbolsvcError as exc:
                return self._failed(peer, "error", f"no consistency proof: {exc.message}")
            except Exception as exc:  # noqa: BLE001 - any transport failure is retried
                return self._failed(peer, "error", f"{type(exc).__name__}: {exc}")
            if reply.status_code == 200:
                line = self._accept(peer, cp, reply.text)
                if line is not None:
                    await self._store_lines(cp.tree_size, [line])
                    ROUND_TRIP.labels(name).observe(loop.time() - started)
                return line
            if (reply.status_code == 409
                    and reply.headers.get("content-type", "").startswith("text/x.tlog.size")):
                size_text = reply.text.strip()
                if size_text.isdigit() and int(size_text) != peer.known_size:
                    SUBMISSIONS.labels(name, "conflict").inc()
                    peer.known_size = int(size_text)
                    if peer.known_size > cp.tree_size:
                        return self._failed(peer, "refused", f"it has cosigned size "
                                            f"{peer.known_size}, beyond ours ({cp.tree_size}): "
                                            "the log has been rolled back")
                    continue
            return self._failed(peer, "refused", f"HTTP {reply.status_code}: "
                                f"{reply.text.strip()[:200]}")
        return self._failed(peer, "refused", "size conflict persists")

    async def _request_body(self, old: int, cp: StoredCheckpoint) -> bytes:
        proof: list[bytes] = []
        if 0 < old < cp.tree_size:
            proof = await self.access_log.consistency_proof(old, cp.tree_size)
        lines = "".join(base64.b64encode(h).decode("ascii") + "\n" for h in proof)
        return f"old {old}\n{lines}\n{cp.note}".encode()

    def _accept(self, peer: Peer, cp: StoredCheckpoint, text: str) -> str | None:
        try:
            body, _ = split_note(cp.note)
            lines = signature_lines(text)
            note = body + "\n" + "".join(line + "\n" for line in lines)
            _, found = verify_cosignatures(note, [peer.key], 1)
        except NoteError as exc:
            return self._failed(peer, "refused", f"its answer does not verify: {exc}")
        peer.known_size = cp.tree_size
        peer.cosigned = cp.tree_size
        peer.failures = 0
        SUBMISSIONS.labels(peer.key.name, "cosigned").inc()
        return found[0].line

    def _failed(self, peer: Peer, result: str, why: str) -> str | None:
        SUBMISSIONS.labels(peer.key.name, result).inc()
        peer.failures += 1
        level = logging.WARNING if peer.failures in (1, 10) or peer.failures % 100 == 0 \
            else logging.DEBUG  # not a line per retry while a witness is down
        log.log(level, "witness %s did not cosign (attempt %d): %s", peer.key.name,
                peer.failures, why)
        return None

    async def _store_lines(self, tree_size: int, lines: list[str]) -> None:
        for _ in range(5):  # compare-and-set against concurrent additions
            try:
                cp = await self.store.checkpoint_at(tree_size)
                if cp is None:
                    return
                new = with_cosignatures(cp.note, lines)
                if new == cp.note or await self.store.replace_note(tree_size, cp.note, new):
                    return
            except (SymbolsvcError, NoteError) as exc:
                log.warning("witnessing: cannot store cosignatures for checkpoint %d: %s",
                            tree_size, exc)
                return
        log.warning("witnessing: checkpoint %d kept changing; cosignatures not stored",
                    tree_size)
