"""Bulk load against a real server that never runs out by itself, so that a signal sent
while it runs lands in the middle of it by construction."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from symbolsvc_client import CallError, Deployment
from symbolsvc_client.clients import AgencyClient

from .numbers import NumberSource

T = TypeVar("T")


def chunked(items: list[T], size: int) -> list[list[T]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class BulkLoad:
    """Open-ended bulk issuance against a server, on threads, remembering every acknowledged
    symbol.

    One bidirectional StreamIssueSymbols for ``stream_agency`` (chunks of ``chunk``) and
    ``batch_threads`` threads of BatchIssueSymbols for ``batch_agency``, all at once. The
    stream first sends ``stream_prefix``, then fresh numbers from ``numbers``; the batches
    draw fresh numbers too. Neither ever runs out: the load goes on until the server goes
    away (the calls then fail; the failures are kept in ``errors``), :meth:`stop` is called,
    or ``max_seconds`` pass. So a kill or a SIGTERM sent while the load runs lands in the
    middle of it by construction, however fast the machine. A symbol counts as acknowledged
    only once its chunk's or batch's reply has arrived.
    """

    def __init__(self, deployment: Deployment, address: str, numbers: NumberSource, *,
                 stream_agency: str, batch_agency: str, stream_prefix: Sequence[str] = (),
                 batch_threads: int = 2, chunk: int = 500, batch_size: int = 250,
                 max_seconds: float = 300.0) -> None:
        self.deployment = deployment
        self.address = address
        self.numbers = numbers
        self.stream_agency, self.stream_prefix = stream_agency, list(stream_prefix)
        self.batch_agency = batch_agency
        self.batch_threads, self.chunk, self.batch_size = batch_threads, chunk, batch_size
        self.acked: dict[str, dict[str, str]] = {stream_agency: {}, batch_agency: {}}
        self.errors: list[tuple[str, CallError]] = []  # ("stream" | "batch", error)
        self.item_errors: list[str] = []
        self.stream_finished = False  # the server ended the stream without an error
        self._deadline = time.monotonic() + max_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._clients: list[AgencyClient] = []

    def start(self) -> BulkLoad:
        self._threads.append(threading.Thread(target=self._stream, daemon=True))
        for _ in range(self.batch_threads):
            self._threads.append(threading.Thread(target=self._batches, daemon=True))
        for t in self._threads:
            t.start()
        return self

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _client(self, agency: str) -> AgencyClient:
        client = self.deployment.agency(agency, self.address)
        with self._lock:
            self._clients.append(client)
        return client

    def _record(self, agency: str, numbers: list[str], results: Iterable[Any]) -> None:
        with self._lock:
            for n, r in zip(numbers, results, strict=True):
                if r.WhichOneof("outcome") == "issued":
                    self.acked[agency][n] = r.issued.symbol
                else:
                    self.item_errors.append(r.error.reason)

    def _stream(self) -> None:
        sent: dict[int, list[str]] = {}

        def chunks() -> Iterator[list[str]]:
            prefix = chunked(self.stream_prefix, self.chunk)
            for i, part in enumerate(prefix):
                sent[i] = part
                yield part
            # Not len(sent): replies pop their chunks while the prefix is still being sent,
            # and a reused id would pair numbers with another chunk's symbols.
            i = len(prefix)
            while self._running():
                sent[i] = self.numbers.many(self.chunk)
                yield sent[i]
                i += 1

        client = self._client(self.stream_agency)
        try:
            for reply in client.issue_stream(chunks(), timeout=self._deadline - time.monotonic()):
                self._record(self.stream_agency, sent.pop(reply.chunk_id), reply.results)
            self.stream_finished = True
        except CallError as err:
            self.errors.append(("stream", err))

    def _batches(self) -> None:
        client = self._client(self.batch_agency)
        while self._running():
            batch = self.numbers.many(self.batch_size)
            try:
                results = client.issue_batch(batch)
            except CallError as err:
                self.errors.append(("batch", err))
                return
            self._record(self.batch_agency, batch, results)

    def count(self, agency: str) -> int:
        with self._lock:
            return len(self.acked[agency])

    def snapshot(self) -> dict[str, dict[str, str]]:
        with self._lock:
            return {a: dict(m) for a, m in self.acked.items()}

    def stop(self) -> None:
        """Send nothing more: the stream ends after its last chunk, the batch threads after
        their current batch."""
        self._stop.set()

    def join(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
            assert not t.is_alive(), "a load thread did not finish"
        for c in self._clients:
            c.close()


def assert_still_issued(client: AgencyClient, acked: Mapping[str, str]) -> None:
    """Every acknowledged number still yields the same symbol, and it is not a new holding."""
    items = list(acked.items())
    for part in chunked(items, 1000):
        results = client.issue_batch([n for n, _ in part])
        for (_, symbol), r in zip(part, results, strict=True):
            assert r.WhichOneof("outcome") == "issued", r
            assert r.issued.symbol == symbol, "an acknowledged symbol changed"
            assert r.issued.newly_registered is False, "an acknowledged holding was lost"
