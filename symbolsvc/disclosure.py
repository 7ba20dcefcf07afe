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

import hmac
import logging
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from .errors import FailedPrecondition, InvalidArgument, NotFound, SymbolsvcError, Unavailable
from .log.sequencer import LogNotifier
from .log.service import AccessLog
from .records import AccessRecord, LeafError
from .registry import HoldingsStore, LogStore
from .subjects import unseal_holding, unseal_record_subject
from .symbols import Deriver, symbol_version

log = logging.getLogger("symbolsvc.log")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
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

    async def subject_pseudonym(self, portal: str, symbol: str) -> bytes:
        """The log pseudonym of the subject the portal knows by ``symbol``."""
        symbol_version(symbol)
        sealed_ref = await self._holdings.lookup(portal, symbol)
        if sealed_ref is None:
            raise NotFound("NOT_HOLDING", "the portal holds no subject with that symbol", "symbol")
        return self.deriver.log_pseudonym(unseal_holding(self.deriver, sealed_ref, portal, symbol))

    async def list_records(
        self, portal: str, symbol: str, page_size: int, page_token: str
    ) -> tuple[list[DisclosedRecord], str]:
        """One page of the subject's records, newest first, and the next page token."""
        if page_size < 0 or page_size > MAX_PAGE_SIZE:
            raise InvalidArgument(
                "BAD_PAGE_SIZE", f"page_size must be between 0 and {MAX_PAGE_SIZE}", "page_size"
            )
        before: int | None = None
        if page_token:
            if not page_token.isdigit() or len(page_token) > 19:
                raise InvalidArgument("BAD_PAGE_TOKEN", "page_token is malformed", "page_token")
            before = int(page_token)
        pseudonym = await self.subject_pseudonym(portal, symbol)
        size = page_size or DEFAULT_PAGE_SIZE
        rows = await self._holdings.records_for_subject(pseudonym, before, size + 1)
        more = len(rows) > size
        rows = rows[:size]
        page = [DisclosedRecord(row.id, AccessRecord.decode(row.leaf), row.leaf_index)
                for row in rows]
        return page, (str(rows[-1].id) if more else "")

    async def portal_symbols(self, portal: str, sealed: Sequence[bytes]) -> list[str | None]:
        """For access records' sealed subjects: the portal's symbol (current key version)
        for each record's subject when the portal holds that subject, else None.

        A record whose sealed subject fails authentication is reported to the
        operator and treated as not held, so one damaged row cannot stall a watch.
        """
        version = self.deriver.current_version
        symbols: list[str | None] = []
        for ref in sealed:
            sid = unseal_record_subject(self.deriver, ref)
            symbols.append(None if sid is None else self.deriver.symbol(portal, sid, version))
        keys = [(portal, sym) for sym in symbols if sym is not None]
        live = iter(await self._holdings.lookup_many(keys)) if keys else iter(())
        return [sym if sym is not None and next(live) is not None else None
                for sym in symbols]

    async def watch(self, portal: str, cursor: str) -> AsyncIterator[WatchItem]:
        """Integrated records about subjects ``portal`` holds, in leaf order, from
        ``cursor`` on, forever. After examining leaves the portal may not see, a
        progress item (no record) carries the cursor past them."""
        after = parse_cursor(cursor)
        while not self._notifier.closed:
            rows = await self._store.integrated_after(after, WATCH_SCAN)
            if rows:
                labels = await self.portal_symbols(portal, [r.sealed_subject for r in rows])
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
                if labels[-1] is None:
                    yield WatchItem(None, "", format_cursor(last))
                after = last
                if len(rows) == WATCH_SCAN:
                    continue
            await self._notifier.wait_for_growth(after + 1, self._poll)
        raise _shutting_down()

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
