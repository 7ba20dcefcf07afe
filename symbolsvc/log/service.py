"""Serving the access log: audit reads, proofs, the portal's watch and record proofs.

The behaviour of AuditService and of DisclosureService's log RPCs
(docs/ACCESS_LOG.md, "Serving"), without gRPC: the servicers translate
protobuf to these methods and back. Every proof is built from stored perfect
nodes (``tree_nodes``) with the pure functions of :mod:`.merkle`, so it costs
O(log n) reads, and is bounded by the latest checkpoint: nothing is proved
about a tree that has not been signed.

Errors: malformed sizes, indices and cursors raise
:class:`~symbolsvc.errors.InvalidArgument` (``ProofError`` / ``ValueError``
from :mod:`.merkle` never reach the caller as such).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from ..core import Core, DisclosedRecord
from ..errors import FailedPrecondition, InvalidArgument, NotFound, SymbolsvcError, Unavailable
from ..records import AccessRecord, LeafError
from ..registry import LogStore, StoredCheckpoint, StoredRecord
from .fanout import SharedScans
from .merkle import (
    NodeID,
    NodeSpec,
    ProofError,
    consistency_proof_nodes,
    inclusion_proof_nodes,
    resolve_nodes,
)
from .sequencer import LogNotifier

log = logging.getLogger("symbolsvc.log")

MAX_ENTRIES = 1000
"""Most leaves one ListEntries call returns."""
PROGRESS_INTERVAL_S = 5.0
"""A watch sends a progress-only message (cursor, no record) at most this often."""
WATCH_SCAN = 500
"""Leaves one watch step examines (one read, one holdings look-up per subject)."""
_MAX_INDEX = (1 << 63) - 1  # leaf indices and sizes are signed 64-bit in storage
_CURSOR = re.compile(r"L(0|[1-9][0-9]{0,18})")


@dataclass(frozen=True, slots=True)
class WatchItem:
    """One watch message: a record for the portal, or (``record`` None) progress only.

    ``cursor`` resumes after this point; see :func:`format_cursor`.
    """

    record: DisclosedRecord | None
    subject_symbol: str
    cursor: str


@dataclass(frozen=True, slots=True)
class RecordProof:
    leaf: bytes
    leaf_index: int
    checkpoint: str
    hashes: list[bytes]


def format_cursor(last_leaf_index: int) -> str:
    """The watch cursor after leaf ``last_leaf_index``: opaque to clients."""
    return f"L{last_leaf_index}"


def parse_cursor(cursor: str) -> int:
    """The last leaf index a cursor covers; -1 for the empty cursor (the log's start)."""
    if not cursor:
        return -1
    m = _CURSOR.fullmatch(cursor)
    if m is None or int(m.group(1)) > _MAX_INDEX:
        raise InvalidArgument("BAD_CURSOR", "cursor is malformed: pass back a cursor this "
                              "service returned, or empty to start at the beginning", "cursor")
    return int(m.group(1))


class _Fetched:
    """A :class:`~.merkle.NodeReader` over nodes already read for exactly these ids."""

    def __init__(self, ids: list[NodeID], hashes: list[bytes]) -> None:
        self._ids, self._hashes = ids, hashes

    def get_nodes(self, ids: list[NodeID]) -> list[bytes]:
        if ids != self._ids:
            raise ProofError("proof nodes were read for other ids")
        return self._hashes


class AccessLog:
    """Read side of the access log over a :class:`~symbolsvc.registry.LogStore`."""

    def __init__(
        self, core: Core, store: LogStore, notifier: LogNotifier, *, poll_seconds: float = 1.0
    ) -> None:
        self._core = core
        self._store = store
        self._notifier = notifier
        self._poll = poll_seconds
        self._scans: SharedScans[tuple[list[StoredRecord], list[str | None]]] = \
            SharedScans(self._scan)

    # -- audit ------------------------------------------------------------------

    async def checkpoint(self) -> StoredCheckpoint:
        """The latest signed checkpoint."""
        cp = await self._store.latest_checkpoint()
        if cp is None:
            raise FailedPrecondition(
                "NO_CHECKPOINT", "the access log has no checkpoint yet; retry in a second")
        return cp

    async def consistency_proof(self, first_size: int, second_size: int) -> list[bytes]:
        """RFC 9162 §2.1.4 proof that tree ``second_size`` extends tree ``first_size``."""
        latest = (await self.checkpoint()).tree_size
        if not 0 < first_size <= second_size <= latest:
            raise InvalidArgument(
                "BAD_TREE_SIZE",
                f"need 0 < first_size <= second_size <= {latest} (the latest checkpoint's "
                f"size); got {first_size} and {second_size}", "first_size")
        return await self._resolve(_specs(consistency_proof_nodes, first_size, second_size))

    async def inclusion_proof(self, leaf_index: int, tree_size: int) -> list[bytes]:
        """RFC 9162 §2.1.3 proof that leaf ``leaf_index`` is in tree ``tree_size``."""
        latest = (await self.checkpoint()).tree_size
        if not 0 <= leaf_index < tree_size <= latest:
            raise InvalidArgument(
                "BAD_TREE_SIZE",
                f"need leaf_index < tree_size <= {latest} (the latest checkpoint's size); "
                f"got {leaf_index} and {tree_size}", "tree_size")
        return await self._resolve(_specs(inclusion_proof_nodes, leaf_index, tree_size))

    async def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Exact leaves ``[start, min(end, start + MAX_ENTRIES, latest size))``."""
        latest = (await self.checkpoint()).tree_size
        if start >= end:
            raise InvalidArgument("BAD_RANGE", f"start ({start}) must be below end ({end})",
                                  "start")
        if start > latest:
            raise InvalidArgument(
                "BAD_RANGE", f"start ({start}) is beyond the latest checkpoint's size "
                f"({latest})", "start")
        stop = min(end, latest, start + MAX_ENTRIES)
        if start == stop:
            return []
        rows = await self._store.entries(start, stop)
        if [i for i, _ in rows] != list(range(start, stop)):
            log.error("access log leaves %d..%d are not all stored", start, stop - 1)
            raise SymbolsvcError("LOG_DAMAGED", "the access log's stored leaves are incomplete; "
                                 "the operator has been alerted")
        return rows

    async def _resolve(self, specs: list[NodeSpec]) -> list[bytes]:
        ids = [node for spec in specs for node in spec.ids]
        try:
            hashes = await self._store.get_nodes(ids) if ids else []
        except KeyError:
            log.error("the access log's tree_nodes lack a node a proof needs")
            raise SymbolsvcError("LOG_DAMAGED", "the access log's stored tree is incomplete; "
                                 "the operator has been alerted") from None
        return resolve_nodes(specs, _Fetched(ids, hashes))

    # -- disclosure ------------------------------------------------------------

    async def watch(self, portal: str, cursor: str) -> AsyncIterator[WatchItem]:
        """Integrated records about subjects ``portal`` holds, in leaf order, from
        ``cursor`` on, forever. After examining leaves the portal may not see, a
        progress item (no record) carries the cursor past them."""
        after = parse_cursor(cursor)
        loop = asyncio.get_running_loop()
        quiet_until = 0.0  # the first step reports progress at once
        while not self._notifier.closed:
            rows, labels = await self._scans.get(portal, after, self._notifier.size)
            if rows:
                for row, label in zip(rows, labels, strict=True):
                    if label is None or row.leaf_index is None:
                        continue
                    record = DisclosedRecord(row.id, AccessRecord.decode(row.leaf),
                                             row.leaf_index)
                    yield WatchItem(record, label, format_cursor(row.leaf_index))
                last = rows[-1].leaf_index
                if last is None:  # integrated_after returns integrated rows only
                    raise SymbolsvcError("LOG_DAMAGED", "the access log returned an "
                                         "unintegrated record as integrated")
                if labels[-1] is None and loop.time() >= quiet_until:
                    # Progress only now and then: with thousands of watchers, one message
                    # each per integration would cost more than the records themselves.
                    yield WatchItem(None, "", format_cursor(last))
                if labels[-1] is not None or loop.time() >= quiet_until:
                    quiet_until = loop.time() + PROGRESS_INTERVAL_S
                after = last
                if len(rows) == WATCH_SCAN:
                    continue
            await self._notifier.wait_for_growth(after + 1, self._poll)
        raise _shutting_down()

    async def _scan(self, portal: str, after: int) -> tuple[list[StoredRecord],
                                                          list[str | None]]:
        """One watch step's read, shared by every watcher at the same point."""
        rows = await self._store.integrated_after(after, WATCH_SCAN)
        if not rows:
            return rows, []
        return rows, await self._core.portal_symbols(portal, [r.sealed_subject for r in rows])

    async def record_proof(self, portal: str, symbol: str, record_id: int) -> RecordProof:
        """The record's leaf and its inclusion proof against the latest checkpoint."""
        pseudonym = await self._core.subject_pseudonym(portal, symbol)
        row = await self._store.record_by_id(record_id) if 0 < record_id <= _MAX_INDEX else None
        if row is None or not _about(row.leaf, pseudonym):
            raise NotFound("NO_SUCH_RECORD", "no access record with that id is about this "
                           "subject", "record_id")
        cp = await self._store.latest_checkpoint()
        if row.leaf_index is None or cp is None or row.leaf_index >= cp.tree_size:
            raise FailedPrecondition(
                "NOT_YET_INTEGRATED", "the record is not in a signed checkpoint yet; retry "
                "after the maximum merge delay (1 s at the defaults)")
        hashes = await self._resolve(inclusion_proof_nodes(row.leaf_index, cp.tree_size))
        return RecordProof(row.leaf, row.leaf_index, cp.note, hashes)


def _specs(fn: Callable[[int, int], list[NodeSpec]], a: int, b: int) -> list[NodeSpec]:
    try:
        return fn(a, b)
    except ValueError as exc:  # ProofError is a ValueError
        raise InvalidArgument("BAD_TREE_SIZE", str(exc)) from None


def _about(leaf: bytes, pseudonym: bytes) -> bool:
    try:
        return hmac.compare_digest(AccessRecord.decode(leaf).pseudonym, pseudonym)
    except LeafError:
        log.error("a stored access record does not decode")
        return False


def _shutting_down() -> SymbolsvcError:
    return Unavailable("SHUTTING_DOWN", "the server is shutting down; resume the watch from "
                       "the last cursor received")


__all__ = ["MAX_ENTRIES", "AccessLog", "RecordProof", "WatchItem", "format_cursor",
           "parse_cursor"]
