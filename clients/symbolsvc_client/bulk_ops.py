"""The bulk operations symbolctl runs through :mod:`.bulk`: issue, translate, upgrade,
release.

Each is a small class with a name, its output fields, the statuses it counts, and a
``run`` that turns chunks of input items into per-item outcomes once they are durable.
Adding one is a class here, an entry in :data:`OPERATIONS` and a subparser in :mod:`.cli`.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .bulk import Item, Outcome, RunContext, error_outcome
from .clients import AgencyClient, BrokerClient
from .errors import CallError
from .v1 import broker_service_pb2 as broker_pb
from .v1 import common_pb2
from .v1 import symbol_service_pb2 as symbol_pb

WINDOW = 8  # unanswered stream chunks at most (gRPC flow control bounds bytes, not chunks)
# A whole call failing with one of these stops the run (the state stays before the chunk,
# so --resume sends it again) instead of marking the chunk's items failed.
TRANSIENT = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "CANCELLED",
                       "INTERNAL", "UNKNOWN", "ABORTED"})


def _item_error(err: common_pb2.ItemError) -> Outcome:
    import grpc

    code = next((c.name for c in grpc.StatusCode if c.value[0] == err.code), str(err.code))
    return error_outcome(None, code, err.reason, err.message)


@dataclass
class IssueOp:
    """``symbolctl issue``: StreamIssueSymbols, one stream chunk per input chunk."""

    agency: AgencyClient
    name: str = "issue"
    fields: tuple[str, ...] = ("symbol", "newly_registered", "key_version")
    counted: tuple[str, ...] = ("new", "existing", "failed")

    @staticmethod
    def outcome(result: symbol_pb.IssueResult) -> Outcome:
        if result.WhichOneof("outcome") == "issued":
            r = result.issued
            return {"status": "new" if r.newly_registered else "existing", "symbol": r.symbol,
                    "newly_registered": r.newly_registered, "key_version": r.key_version}
        return _item_error(result.error)

    def run(self, chunks: Iterator[list[Item]], context: RunContext) -> Iterator[list[Outcome]]:
        window = threading.Semaphore(WINDOW)
        stop = threading.Event()
        # Sizes of the chunks handed out, in order; empty ones (all blank) are answered here.
        sizes: collections.deque[int] = collections.deque()
        lock = threading.Condition()

        def requests() -> Iterator[list[str]]:
            for chunk in chunks:
                with lock:
                    sizes.append(len(chunk))
                    lock.notify_all()
                if not chunk:
                    continue
                while not window.acquire(timeout=0.5):
                    if stop.is_set():
                        return
                yield [i.value for i in chunk]
            with lock:
                sizes.append(-1)  # the end
                lock.notify_all()

        def leading_empties() -> Iterator[list[Outcome]]:
            while True:
                with lock:
                    if not sizes or sizes[0] != 0:
                        return
                    sizes.popleft()
                yield []

        try:
            for reply in self.agency.issue_stream(requests()):
                window.release()
                yield from leading_empties()
                with lock:
                    sizes.popleft()
                yield [self.outcome(r) for r in reply.results]
            while True:  # the stream ended: chunks after the last answered one were empty
                with lock:
                    lock.wait_for(lambda: bool(sizes))
                    size = sizes.popleft()
                if size == -1:
                    return
                yield []
        finally:
            stop.set()


@dataclass
class TranslateOp:
    """``symbolctl translate``: BatchTranslateSymbols per chunk of requester symbols.

    Exchange ids are ``PREFIX-RUNID-LINE``: stable across ``--resume``, so a chunk sent
    again after a crash is refused per item (EXCHANGE_ID_REUSED, where the server checks
    reuse) rather than logged twice."""

    broker: BrokerClient
    requester: str
    provider: str
    office_work: str
    info_item: str
    exchange_prefix: str = "symbolctl"
    name: str = "translate"
    fields: tuple[str, ...] = ("provider_symbol", "record_id", "exchange_id")
    counted: tuple[str, ...] = ("translated", "failed")

    def run(self, chunks: Iterator[list[Item]], context: RunContext) -> Iterator[list[Outcome]]:
        for chunk in chunks:
            if not chunk:
                yield []
                continue
            ids = [f"{self.exchange_prefix}-{context.run_id}-{i.line}" for i in chunk]
            requests = [broker_pb.TranslateSymbolRequest(
                requester_agency=self.requester, symbol=i.value, provider_agency=self.provider,
                office_work=self.office_work, info_item=self.info_item, exchange_id=x)
                for i, x in zip(chunk, ids, strict=True)]
            try:
                results = self.broker.translate_batch(requests)
            except CallError as err:
                if err.code.name in TRANSIENT:
                    raise
                yield [{**error_outcome(err), "exchange_id": x} for x in ids]
                continue
            out: list[Outcome] = []
            for r, x in zip(results, ids, strict=True):
                if r.WhichOneof("outcome") == "translated":
                    out.append({"status": "translated", "exchange_id": x,
                                "provider_symbol": r.translated.provider_symbol,
                                "record_id": r.translated.record_id})
                else:
                    out.append({**_item_error(r.error), "exchange_id": x})
            yield out


@dataclass
class ReleaseOp:
    """``symbolctl release``: ReleaseSymbol per symbol (no batch RPC), several in flight."""

    agency: AgencyClient
    parallel: int = 16
    name: str = "release"
    fields: tuple[str, ...] = ("symbol", "was_held")
    counted: tuple[str, ...] = ("released", "already_released", "failed")

    def _one(self, symbol: str) -> Outcome:
        try:
            held = self.agency.release(symbol)
        except CallError as err:
            return {**error_outcome(err), "symbol": symbol}
        return {"status": "released" if held else "already_released", "symbol": symbol,
                "was_held": held}

    def run(self, chunks: Iterator[list[Item]], context: RunContext) -> Iterator[list[Outcome]]:
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="release") as pool:
            for chunk in chunks:
                yield list(pool.map(self._one, [i.value for i in chunk]))


@dataclass
class UpgradeOp:
    """``symbolctl upgrade``: UpgradeSymbols per chunk of stored symbols (at most 1,000),
    each answered with the current-version symbol; idempotent, so a resumed chunk is safe."""

    agency: AgencyClient
    name: str = "upgrade"
    fields: tuple[str, ...] = ("symbol", "upgraded_symbol")
    counted: tuple[str, ...] = ("upgraded", "current", "failed")

    def run(self, chunks: Iterator[list[Item]], context: RunContext) -> Iterator[list[Outcome]]:
        for chunk in chunks:
            if not chunk:
                yield []
                continue
            symbols = [i.value for i in chunk]
            try:
                results = self.agency.upgrade(symbols)
            except CallError as err:
                if err.code.name in TRANSIENT:
                    raise
                yield [{**error_outcome(err), "symbol": s} for s in symbols]
                continue
            out: list[Outcome] = []
            for old, r in zip(symbols, results, strict=True):
                if r.WhichOneof("outcome") == "symbol":
                    out.append({"status": "current" if r.symbol == old else "upgraded",
                                "symbol": old, "upgraded_symbol": r.symbol})
                else:
                    out.append({**_item_error(r.error), "symbol": old})
            yield out


OPERATIONS = ("issue", "translate", "upgrade", "release")
