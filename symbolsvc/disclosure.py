"""Disclosure: what the portal may learn about one subject's access records, without gRPC.

The behaviour behind DisclosureService (docs/ACCESS_LOG.md, "Serving"): a
page of the subject's records, the watch over newly integrated records about
any subject the portal holds, and a record's inclusion proof. The portal names
a subject only by its own symbol; every record is matched by the subject's log
pseudonym, never by anything an agency sees.

It sits beside the core, not inside the log: it reads holdings through the
:class:`~symbolsvc.registry.HoldingsStore`, records through the
:class:`~symbolsvc.registry.LogStore`, and proofs through
:class:`~symbolsvc.log.service.AccessLog`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from .errors import FailedPrecondition, InvalidArgument, NotFound, SymbolsvcError, Unavailable
from .log.fanout import SharedScans
from .log.sequencer import LogNotifier
from .log.service import AccessLog
from .paging import bounded
from .records import AccessRecord, LeafError
from .registry import HoldingsStore, LogStore, StoredRecord
from .rotation import newest_live
from .subjects import unseal_holding, unseal_record_subject
from .symbols import Deriver

log = logging.getLogger("symbolsvc.log")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
PROGRESS_INTERVAL_S = 5.0
"""A watch sends a progress-only message (cursor, no record) at most this often."""
WATCH_SCAN = 500
"""Leaves one watch step examines (one read, one holdings look-up per subject)."""
_MAX_INDEX = (1 << 63) - 1  # leaf indices and sizes are signed 64-bit in storage
_CURSOR = re.compile(r"L(0|[1-9][0-9]{0,18})")


@dataclass(frozen=True, slots=True)
class DisclosedRecord:
    id: int
    record: AccessRecord
    leaf_index: int | None = None  # None until the sequencer integrates the record


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


class Disclosure:
    """The portal's view of the access log, over the holdings and the log store."""

    def __init__(
        self, deriver: Deriver, holdings: HoldingsStore, store: LogStore,
        access_log: AccessLog, notifier: LogNotifier, *, poll_seconds: float = 1.0,
    ) -> None:
        self.deriver = deriver
        self._holdings = holdings
        self._store = store
        self._log = access_log
        self._notifier = notifier
        self._poll = poll_seconds
        self._scans: SharedScans[tuple[list[StoredRecord], list[str | None]]] = \
            SharedScans(self._scan)

    async def subject_pseudonym(self, portal: str, symbol: str) -> bytes:
        """The log pseudonym of the subject the portal knows by ``symbol``."""
        self.deriver.version_of(symbol)
        sealed_ref = await self._holdings.lookup(portal, symbol)
        if sealed_ref is None:
            raise NotFound("NOT_HOLDING", "the portal holds no subject with that symbol", "symbol")
        return self.deriver.log_pseudonym(unseal_holding(self.deriver, sealed_ref, portal, symbol))

    async def list_records(
        self, portal: str, symbol: str, page_size: int, page_token: str
    ) -> tuple[list[DisclosedRecord], str]:
        """One page of the subject's records, newest first, and the next page token: at most
        ``page_size`` records and :data:`~symbolsvc.paging.PAGE_BYTES` of leaves."""
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(
                "BAD_PAGE_SIZE", f"page_size must be between 0 and {MAX_PAGE_SIZE}", "page_size"
            )
        before = _page_token(page_token)
        pseudonym = await self.subject_pseudonym(portal, symbol)
        if before is not None:
            # A token names the last record of the previous page: one this subject has.
            row = await self._store.record_by_id(before)
            if row is None or not _about(row.leaf, pseudonym):
                raise InvalidArgument("BAD_PAGE_TOKEN", "page_token was not issued for this "
                                      "subject; pass back a next_page_token this service "
                                      "returned, or empty for the first page", "page_token")
        size = page_size or DEFAULT_PAGE_SIZE
        found = await self._holdings.records_for_subject(pseudonym, before, size + 1)
        rows = bounded(found[:size], lambda row: len(row.leaf))  # and by bytes
        more = len(found) > len(rows)
        page = [DisclosedRecord(row.id, AccessRecord.decode(row.leaf), row.leaf_index)
                for row in rows]
        return page, (str(rows[-1].id) if more else "")

    async def portal_symbols(self, portal: str, rows: Sequence[StoredRecord]
                             ) -> list[str | None]:
        """For access records: the portal's symbol (under the newest key version it
        holds the subject at) for each record's subject, else None.

        A record whose sealed subject fails authentication for that record (damaged,
        swapped or copied from another record) is reported and delivered to nobody, so
        one damaged row cannot stall a watch nor reach the wrong person.
        """
        sids = [unseal_record_subject(self.deriver, r.sealed_subject, r.leaf, r.id)
                for r in rows]
        asked = [(portal, sid) for sid in sids if sid is not None]
        found = iter(await newest_live(self.deriver, self._holdings, asked))
        return [None if sid is None else next(found) for sid in sids]

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
        """One watch step's read, shared by every watcher at the same point
        (:mod:`.log.fanout`)."""
        rows = await self._store.integrated_after(after, WATCH_SCAN)
        if not rows:
            return rows, []
        return rows, await self.portal_symbols(portal, rows)

    async def record_proof(self, portal: str, symbol: str, record_id: int) -> RecordProof:
        """The record's leaf and its inclusion proof against the latest checkpoint."""
        pseudonym = await self.subject_pseudonym(portal, symbol)
        row = await self._store.record_by_id(record_id) if 0 < record_id <= _MAX_INDEX else None
        if row is None or not _about(row.leaf, pseudonym):
            raise NotFound("NO_SUCH_RECORD", "no access record with that id is about this "
                           "subject", "record_id")
        cp = await self._store.latest_checkpoint()
        if row.leaf_index is None or cp is None or row.leaf_index >= cp.tree_size:
            raise FailedPrecondition(
                "NOT_YET_INTEGRATED", "the record is not in a signed checkpoint yet; retry "
                "after the maximum merge delay (1 s at the defaults)")
        hashes = await self._log.inclusion_hashes(row.leaf_index, cp.tree_size)
        return RecordProof(row.leaf, row.leaf_index, cp.note, hashes)


def _page_token(token: str) -> int | None:
    """The record id a page token names (ASCII digits, 1 .. 2**63-1), None for ''."""
    if not token:
        return None
    if (not token.isascii() or not token.isdigit() or len(token) > 19
            or not 0 < int(token) <= _MAX_INDEX):
        raise InvalidArgument("BAD_PAGE_TOKEN", "page_token is malformed: pass back a "
                              "next_page_token this service returned", "page_token")
    return int(token)


def _about(leaf: bytes, pseudonym: bytes) -> bool:
    try:
        return hmac.compare_digest(AccessRecord.decode(leaf).pseudonym, pseudonym)
    except LeafError:
        log.error("a stored access record does not decode")
        return False


def _shutting_down() -> SymbolsvcError:
    return Unavailable("SHUTTING_DOWN", "the server is shutting down; resume the watch from "
                       "the last cursor received")


__all__ = ["DEFAULT_PAGE_SIZE", "MAX_PAGE_SIZE", "DisclosedRecord", "Disclosure",
           "RecordProof", "WatchItem", "format_cursor", "parse_cursor"]
