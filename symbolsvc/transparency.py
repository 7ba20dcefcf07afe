"""What the person sees beyond the records: who holds a link to them, and the published
permission tables (docs/DISCLOSURE.md). No gRPC here; services/disclosure.py maps it.

Holdings are keyed by (agency, symbol) and nothing in the registry links two agencies'
rows of one subject, so ListHoldings derives, from the subject id the portal's holding
unseals, every candidate agency's symbol under every accepted key version and reads
those rows (live or released). The candidates are the deployment's agencies (principals
with the agency role, reloaded on SIGHUP) and every agency named by an ISSUE record of
the subject (an agency since removed from the configuration still shows).

Holdings store no time (a time in a holding's row would join it to its ISSUE record
and so to the subject's pseudonym: docs/DISCLOSURE.md); the dates come from the
subject's ISSUE and RELEASE records. A holding from before ISSUE records existed has
no ``since``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .errors import InvalidArgument, NotFound
from .policy import PolicyHolder
from .policytable import Table, TableError, parse
from .records import AccessKind, AccessRecord, LeafError
from .registry import HoldingsStore, LogStore
from .subjects import unseal_holding
from .symbols import Deriver

RECORD_PAGE = 1000
MAX_RECORD_PAGES = 20
"""ListHoldings reads at most this many pages of the subject's records (newest first) for
the dates of its ISSUE and RELEASE records."""
_VERSION = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class HoldingView:
    agency: str
    since_us: int | None  # None: issued before times were stored (schema 6)
    released: bool
    released_at_us: int | None


@dataclass(frozen=True, slots=True)
class PolicyView:
    version: bytes
    canonical_table: str
    loaded_at_us: int
    record_id: int


class RuleTexts:
    """Purpose and basis of the rules records name, by (version, rule id): from the live
    table, else from the version's POLICY record (read once, kept for the process)."""

    MAX_VERSIONS = 64

    def __init__(self, holdings: HoldingsStore, store: LogStore, policy: PolicyHolder) -> None:
        self._holdings = holdings
        self._store = store
        self._policy = policy
        self._tables: dict[bytes, Table | None] = {}

    async def load(self, records: Iterable[AccessRecord]) -> None:
        """Make the versions ``records`` name available to :meth:`texts`."""
        for r in records:
            version = r.policy_version
            if (version is None or version == self._policy.current.version
                    or version in self._tables):
                continue
            if len(self._tables) >= self.MAX_VERSIONS:
                self._tables.pop(next(iter(self._tables)))
            self._tables[version] = await self._read(version)

    async def _read(self, version: bytes) -> Table | None:
        published = await self._holdings.policy_version(version)
        row = None if published is None else await self._store.record_by_id(published.record_id)
        try:
            text = None if row is None else AccessRecord.decode(row.leaf).policy_table
            return None if text is None else parse(text, "published table")
        except (LeafError, TableError):
            return None

    def texts(self, version: bytes, rule_id: str) -> tuple[str, str]:
        """(purpose, basis) of the rule, or empty strings when unknown."""
        current = self._policy.current
        table = current.table if version == current.version else self._tables.get(version)
        rule = None if table is None else table.rule(rule_id)
        return ("", "") if rule is None else (rule.purpose, rule.basis)


class Transparency:
    """ListHoldings and GetPolicy over the holdings and the log store."""

    def __init__(self, deriver: Deriver, holdings: HoldingsStore, store: LogStore,
                 policy: PolicyHolder, agencies: Callable[[], Iterable[str]]) -> None:
        self.deriver = deriver
        self._holdings = holdings
        self._store = store
        self._policy = policy
        self.agencies = agencies
        self.rule_texts = RuleTexts(holdings, store, policy)

    async def list_holdings(self, portal: str, symbol: str) -> list[HoldingView]:
        """Every agency holding, or having held, a link to the portal's subject; oldest
        first (holdings issued before schema 6, without a time, first of all)."""
        d = self.deriver
        d.version_of(symbol)
        sealed = await self._holdings.lookup(portal, symbol)
        if sealed is None:
            raise NotFound("NOT_HOLDING", "the portal holds no subject with that symbol", "symbol")
        sid = unseal_holding(d, sealed, portal, symbol)
        issued, released = await self._linkage_times(d.log_pseudonym(sid))
        agencies = sorted(set(self.agencies()) | {portal} | set(issued))
        keys = [(a, s) for a in agencies for s in d.symbols_all_versions(a, sid)]
        live: dict[str, bool] = {}
        for row in await self._holdings.holding_rows(keys):
            if row is not None:
                live[row.agency] = live.get(row.agency, False) or not row.released
        views = [HoldingView(a, issued.get(a), not is_live,
                             None if is_live else released.get(a))
                 for a, is_live in live.items()]
        views.sort(key=lambda v: (v.since_us or 0, v.agency))
        return views

    async def _linkage_times(self, pseudonym: bytes) -> tuple[dict[str, int], dict[str, int]]:
        """Per agency, the time of its latest ISSUE and latest RELEASE record about the
        subject (newest first, so the first seen is the latest)."""
        issued: dict[str, int] = {}
        released: dict[str, int] = {}
        before = None
        for _ in range(MAX_RECORD_PAGES):
            rows = await self._holdings.records_for_subject(pseudonym, before, RECORD_PAGE)
            for stored in rows:
                try:
                    record = AccessRecord.decode(stored.leaf)
                except LeafError:
                    continue
                if record.kind is AccessKind.ISSUE:
                    issued.setdefault(record.requester, record.time_us)
                elif record.kind is AccessKind.RELEASE:
                    released.setdefault(record.requester, record.time_us)
            if len(rows) < RECORD_PAGE:
                break
            before = rows[-1].id
        return issued, released

    async def get_policy(self, version_hex: str) -> PolicyView:
        """A published table by version (hex), or the current one for ''."""
        if not version_hex:
            version = self._policy.current.version
        elif _VERSION.fullmatch(version_hex):
            version = bytes.fromhex(version_hex)
        else:
            raise InvalidArgument("BAD_POLICY_VERSION", "version must be 64 lower-case hex "
                                  "digits (a SHA-256), or empty for the current table",
                                  "version")
        published = await self._holdings.policy_version(version)
        row = None if published is None else await self._store.record_by_id(published.record_id)
        if published is None or row is None:
            raise NotFound("NO_SUCH_POLICY", "no permission table with that version was "
                           "ever published", "version")
        table = AccessRecord.decode(row.leaf).policy_table or ""
        return PolicyView(version, table, published.loaded_at_us, published.record_id)
