"""The service core: issue, release, translate, resolve — no network.

The gRPC servicers are thin translations onto these methods, so everything
here is testable in-process. Each method validates first and changes nothing
on invalid input; each write is durable before the method returns.

Batch methods return one outcome per item: either a result or the
:class:`~symbolsvc.errors.SymbolsvcError` the unary form would have raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TypeVar

from . import exchanges, rotation
from .blinding import Blinder
from .errors import InvalidArgument, NotFound, PermissionDenied, SymbolsvcError
from .inputs import MAX_BATCH, MAX_EXCHANGE_ID, check_batch, check_exchange, check_ident
from .inquiries import Asked, InquiryChecker
from .log.hashing import leaf_hash
from .log.receipts import ReceiptSigner
from .newrecords import exchange_record, linkage_record, linkage_records
from .numbers import validate_individual_number
from .policy import Policy, PolicyHolder, Rule
from .records import AccessKind, AccessRecord
from .records import Outcome as RecordOutcome
from .registry import Appended, Built, ExchangeTag, HoldingsStore, NewRecord
from .sealing import SealKey
from .subjects import unseal_holding
from .symbols import Deriver, symbol_version
from .values import Issued, Resolved, ResolveRequest, Translated, TranslateRequest

YIELD_EVERY = 100
"""A batch lets other calls run on the event loop after deriving this many items."""

R = TypeVar("R")

security_log = logging.getLogger("symbolsvc.security")


Outcome = Issued | Translated | SymbolsvcError


class Core:
    """symbolsvc's behaviour (CONTRACT §4) over a deriver, a registry and a permission table."""

    def __init__(
        self,
        deriver: Deriver,
        registry: HoldingsStore,
        policy: PolicyHolder,
        *,
        clock_us: Callable[[], int] = lambda: time.time_ns() // 1000,
        receipts: ReceiptSigner | None = None,
        inquiries: InquiryChecker | None = None,
        blinder: Blinder | None = None,
    ) -> None:
        self.deriver = deriver
        self.registry = registry
        self.policy = policy
        self._clock_us = clock_us
        # Signs a receipt for every record appended (None: replies carry no receipt).
        self.receipts = receipts
        self.inquiries = inquiries  # signed inquiries ([broker]; None: not checked)
        self.blinder = blinder  # blind translation ([broker] blind_translation; None: off)

    # -- issuance ------------------------------------------------------------

    async def issue(self, agency: str, number: str) -> Issued:
        result = (await self.issue_many(agency, [number], field=""))[0]
        if isinstance(result, SymbolsvcError):
            raise result
        return result

    async def issue_many(
        self, agency: str, numbers: Sequence[str], field: str = "individual_numbers"
    ) -> list[Issued | SymbolsvcError]:
        """Issue up to MAX_BATCH symbols in one durable commit; per-item outcomes."""
        check_batch(len(numbers), field or "individual_number")
        d = self.deriver
        version = d.current_version
        out: list[Issued | SymbolsvcError | None] = []
        pending: list[int] = []
        sids: list[bytes] = []
        for i, number in enumerate(numbers):
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # a 1,000-number batch must not stall other callers
            try:
                raw = validate_individual_number(
                    number, f"{field}[{i}]" if field else "individual_number"
                )
            except InvalidArgument as err:
                out.append(err)
                continue
            sids.append(d.subject_id(raw))
            pending.append(i)
            out.append(None)  # filled below
        if sids:
            now = self._clock_us()
            issued = await rotation.issue_subjects(
                d, self.registry, agency, sids,
                records=lambda s: linkage_records(d, AccessKind.ISSUE, now, agency, s))
            for i, (symbol, new) in zip(pending, issued, strict=True):
                out[i] = Issued(symbol, new, version)
        return _filled(out)

    async def upgrade_many(self, agency: str, symbols: Sequence[str]) -> list[str | SymbolsvcError]:
        """UpgradeSymbols: move up to MAX_BATCH holdings to the current key version."""
        check_batch(len(symbols), "symbols")
        return await rotation.upgrade(self.deriver, self.registry, agency, symbols, self._unseal)

    async def release(self, agency: str, symbol: str) -> bool:
        d = self.deriver  # one deriver for the whole call (a SIGHUP may swap it)
        d.version_of(symbol)
        # The RELEASE record depends only on the subject, which the symbol fixes: read it
        # from the row (live or not), build the record, and let the release append it in
        # its own transaction exactly when the holding was live.
        (row,) = await self.registry.holding_rows([(agency, symbol)])
        if row is None:
            raise NotFound("NOT_ISSUED", "this agency was never issued that symbol", "symbol")
        sid = self._unseal(row.sealed_subject, agency, symbol)
        now = self._clock_us()
        record = linkage_record(d, AccessKind.RELEASE, now, agency, sid)
        if d.older_versions:  # a holding may have rows under several versions
            return await rotation.release(d, self.registry, agency, symbol, sid, record=record)
        was_held = await self.registry.release(agency, symbol, record=record)
        if was_held is None:
            raise NotFound("NOT_ISSUED", "this agency was never issued that symbol", "symbol")
        return was_held

    # -- brokered exchange ----------------------------------------------------

    async def translate(self, req: TranslateRequest) -> Translated:
        result = (await self.translate_many([req], batch=False))[0]
        if isinstance(result, SymbolsvcError):
            raise result
        return result

    async def translate_many(
        self, reqs: Sequence[TranslateRequest], *, batch: bool = True
    ) -> list[Translated | SymbolsvcError]:
        """CONTRACT §4 Translate for each item: policy, requester holds, provider holds,
        durable record, then the provider's symbol."""
        if batch:
            check_batch(len(reqs), "requests")
        policy = self.policy.current
        out: list[Translated | SymbolsvcError | None] = []
        todo: list[int] = []
        exts: dict[int, dict[str, bytes]] = {}
        keys: dict[int, SealKey] = {}
        for i, r in enumerate(reqs):
            prefix = f"requests[{i}]." if batch else ""
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # signature checks cost ~0.1 ms each: let others run
            try:
                check_exchange(r, prefix, r.provider_agency)
                self.deriver.version_of(r.symbol, prefix + "symbol")
                check_ident(r.provider_agency, prefix + "provider_agency")
                exts[i] = self._signed(AccessKind.TRANSLATE, r, r.provider_agency, prefix)
                if self.blinder is not None:
                    keys[i] = self.blinder.key_for(r.provider_agency,
                                                   prefix + "provider_agency")
                if not policy.allows(r.requester_agency, r.office_work, r.info_item,
                                     r.provider_agency):
                    security_log.warning(
                        "translation denied by the permission table",
                        extra={"event": "policy_denied", "requester": r.requester_agency,
                               "provider": r.provider_agency, "office_work": r.office_work,
                               "info_item": r.info_item, "exchange_id": r.exchange_id},
                    )
                    raise PermissionDenied(
                        "NOT_PERMITTED",
                        f"the permission table does not allow {r.requester_agency!r} to obtain "
                        f"{r.info_item!r} from {r.provider_agency!r} for {r.office_work!r}",
                    )
            except SymbolsvcError as err:
                out.append(err)
                continue
            out.append(None)  # filled below
            todo.append(i)
        if not todo:
            return _filled(out)
        # One writer unit per item, merged per group: read the requester's holding,
        # derive and build the record, append it under both holdings, in one
        # transaction (no read-pool hop, and no release can slip in between).
        now = self._clock_us()
        # One deriver for the whole call: a SIGHUP may swap in a rotated keyring meanwhile.
        d = self.deriver
        versions = await self._provider_versions(d, reqs, todo)
        tags = {i: exchanges.tag(d, AccessKind.TRANSLATE, r.requester_agency, r.exchange_id,
                                 r.symbol, r.provider_agency, r.office_work, r.info_item)
                for i in todo for r in (reqs[i],)}
        results = await self.registry.append_for_holdings(
            [((reqs[i].requester_agency, reqs[i].symbol),
              self._translation(d, reqs[i], now, versions.get(i, d.current_version), policy,
                                tags[i], exts[i]))
             for i in todo]
        )
        replays = []
        done: list[tuple[int, str, int, bytes]] = []  # (i, provider symbol, record id, leaf)
        for i, res in zip(todo, results, strict=True):
            if not res.held:
                out[i] = _requester_not_holding()
            elif isinstance(res.value, SymbolsvcError):
                out[i] = res.value
            elif res.record_id is None or res.value is None:
                replays.append((i, res))  # the exchange key is taken (or a holding ended)
            elif res.fallback:
                # recorded with its outcome: the provider's holding was not live in the
                # transaction that appended the record
                out[i] = _provider_not_holding(reqs[i].provider_agency)
            else:
                symbol, leaf = res.value
                done.append((i, symbol, res.record_id, leaf))
        notes = await self._receipts([leaf for *_, leaf in done])
        for (i, symbol, record_id, _), note in zip(done, notes, strict=True):
            out[i] = Translated(symbol, record_id, note)
        settled = await asyncio.gather(*(self._translation_replayed(
            reqs[i], tags[i], res, batch, i) for i, res in replays))
        for (i, _), outcome in zip(replays, settled, strict=True):
            out[i] = outcome
        for n, (i, key) in enumerate(keys.items()):  # blind: the broker relays ciphertext only
            if n % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # an HPKE seal costs ~0.1-0.2 ms
            t, r = out[i], reqs[i]
            if isinstance(t, Translated):
                out[i] = Translated("", t.record_id, t.receipt, Blinder.seal(
                    key, t.provider_symbol, r.exchange_id, r.requester_agency))
        return _filled(out)

    async def _translation_replayed(
        self, r: TranslateRequest, tag: ExchangeTag,
        res: Appended[tuple[str, bytes] | SymbolsvcError],
        batch: bool, i: int,
    ) -> Translated | SymbolsvcError:
        """A translation whose record was not appended: a replay of exchange (requester,
        exchange id) gets the first answer and record; other content EXCHANGE_ID_REUSED.
        Under require_signed_inquiries any reuse is refused (INQUIRY_REPLAYED)."""
        found = await self.registry.prior_exchange(tag.key)
        if found is None:  # no record holds the key: the requester's holding ended meanwhile
            return _requester_not_holding()
        if self.inquiries is not None and self.inquiries.required:
            return self.inquiries.refuse_reuse(
                self._asked(AccessKind.TRANSLATE, r, r.provider_agency),
                f"requests[{i}]." if batch else "")
        if not exchanges.same(found, tag):
            return exchanges.reused(r.requester_agency, r.exchange_id,
                                    f"requests[{i}].exchange_id" if batch else "exchange_id")
        if AccessRecord.decode(found.leaf).outcome is RecordOutcome.PROVIDER_NOT_HOLDING:
            return _provider_not_holding(r.provider_agency)
        if not isinstance(res.value, tuple):
            return _requester_not_holding()
        (note,) = await self._receipts([found.leaf])
        return Translated(res.value[0], found.record_id, note)

    async def _receipts(self, leaves: list[bytes]) -> list[str]:
        """The signed receipts for the records ``leaves`` ("" each when not signing),
        signed off the event loop (log/receipts.py)."""
        if self.receipts is None or not leaves:
            return [""] * len(leaves)
        return await self.receipts.sign_many([leaf_hash(leaf) for leaf in leaves])

    async def _provider_versions(
        self, d: Deriver, reqs: Sequence[TranslateRequest], todo: list[int]
    ) -> dict[int, int]:
        """While several key versions are accepted: per item, the version the provider holds
        the subject at (its newest live row), read before the translation's write unit. A
        holding that moves in between keeps its older row live, so the answer stays valid."""
        if not d.older_versions:
            return {}
        sealed = await self.registry.lookup_many(
            [(reqs[i].requester_agency, reqs[i].symbol) for i in todo])
        asked: list[tuple[int, tuple[str, bytes]]] = []
        for i, ref in zip(todo, sealed, strict=True):
            if ref is not None:
                with suppress(SymbolsvcError):
                    sid = self._unseal(ref, reqs[i].requester_agency, reqs[i].symbol)
                    asked.append((i, (reqs[i].provider_agency, sid)))
        found = await rotation.newest_live(d, self.registry, [a for _, a in asked])
        return {i: symbol_version(sym) for (i, _), sym in zip(asked, found, strict=True)
                if sym is not None}

    def _translation(
        self, d: Deriver, r: TranslateRequest, now: int, provider_version: int, policy: Policy,
        tag: ExchangeTag, ext: dict[str, bytes],
    ) -> Callable[[bytes], Built[tuple[str, bytes] | SymbolsvcError]]:
        """The write unit's build step for one translation, run in the registry's writer
        with the requester's sealed reference. It never raises: it returns the record and
        (the provider's symbol, the leaf), or no record and the error. The provider's symbol
        is under ``provider_version`` (the version it holds the subject at, else d's
        current one). When the provider's holding is not live the record's ``otherwise``
        is appended: the same record with the outcome PROVIDER_NOT_HOLDING, requiring the
        requester's holding only, so the subject sees that someone asked."""
        rule = policy.grant(r.requester_agency, r.office_work, r.info_item, r.provider_agency)

        def build(sealed_ref: bytes) -> Built[tuple[str, bytes] | SymbolsvcError]:
            try:
                sid = self._unseal(sealed_ref, r.requester_agency, r.symbol)
                provider_symbol = d.symbol(r.provider_agency, sid, provider_version)
                requester = (r.requester_agency, r.symbol)
                record = self._record(
                    AccessKind.TRANSLATE, now, r.requester_agency, r.office_work, r.info_item,
                    r.exchange_id, (r.provider_agency,), sid,
                    (requester, (r.provider_agency, provider_symbol)), policy, rule,
                    tag, (requester,), ext,
                )
            except SymbolsvcError as err:
                return Built(None, err)
            return Built(record, (provider_symbol, record.leaf))

        return build

    async def resolve(self, r: ResolveRequest) -> Resolved:
        """CONTRACT §4 Resolve providers: permitted providers that hold the subject, logged."""
        check_exchange(r, "")
        self.deriver.version_of(r.symbol)
        ext = self._signed(AccessKind.RESOLVE, r, "", "")
        policy = self.policy.current
        permitted = policy.permitted_providers(r.requester_agency, r.office_work, r.info_item)
        if not permitted:
            security_log.warning(
                "resolution denied by the permission table",
                extra={"event": "policy_denied", "requester": r.requester_agency,
                       "office_work": r.office_work, "info_item": r.info_item,
                       "exchange_id": r.exchange_id},
            )
            raise PermissionDenied(
                "NOT_PERMITTED",
                f"the permission table names no provider of {r.info_item!r} to "
                f"{r.requester_agency!r} for {r.office_work!r}",
            )
        sealed_ref = await self.registry.lookup(r.requester_agency, r.symbol)
        if sealed_ref is None:
            raise _requester_not_holding()
        sid = self._unseal(sealed_ref, r.requester_agency, r.symbol)
        candidates = sorted(permitted)
        live = await rotation.newest_live(self.deriver, self.registry,
                                          [(p, sid) for p in candidates])
        holders = tuple(p for p, s in zip(candidates, live, strict=True) if s is not None)
        d = self.deriver
        tag = exchanges.tag(d, AccessKind.RESOLVE, r.requester_agency, r.exchange_id,
                            r.symbol, "", r.office_work, r.info_item)
        record = self._record(
            AccessKind.RESOLVE, self._clock_us(), r.requester_agency, r.office_work,
            r.info_item, r.exchange_id, holders, sid, ((r.requester_agency, r.symbol),),
            policy, policy.grant(r.requester_agency, r.office_work, r.info_item), tag, ext=ext,
        )
        (rid,) = await self.registry.append_records([record])
        if rid is not None:
            (note,) = await self._receipts([record.leaf])
            return Resolved(holders, rid, note)
        found = await self.registry.prior_exchange(tag.key)
        if found is None:  # released between the lookup and the append
            raise _requester_not_holding()
        if self.inquiries is not None and self.inquiries.required:
            raise self.inquiries.refuse_reuse(self._asked(AccessKind.RESOLVE, r, ""))
        if not exchanges.same(found, tag):
            raise exchanges.reused(r.requester_agency, r.exchange_id, "exchange_id")
        (note,) = await self._receipts([found.leaf])
        return Resolved(AccessRecord.decode(found.leaf).providers, found.record_id, note)

    # -- helpers ----------------------------------------------------------------

    def _unseal(self, sealed_ref: bytes, agency: str, symbol: str) -> bytes:
        return unseal_holding(self.deriver, sealed_ref, agency, symbol)

    def _signed(self, kind: AccessKind, r: TranslateRequest | ResolveRequest, provider: str,
                prefix: str) -> dict[str, bytes]:
        """The record's extensions for a verified signed inquiry; raises PermissionDenied."""
        if self.inquiries is None:
            return {}
        return self.inquiries.check(self._asked(kind, r, provider), prefix)

    @staticmethod
    def _asked(kind: AccessKind, r: TranslateRequest | ResolveRequest, provider: str) -> Asked:
        return Asked(kind, r.requester_agency, r.symbol, provider, r.office_work, r.info_item,
                     r.exchange_id, r.inquiry_signature, r.issued_at_us)

    def _record(
        self, kind: AccessKind, now: int, requester: str, office_work: str, info_item: str,
        exchange_id: str, providers: tuple[str, ...], sid: bytes,
        require: tuple[tuple[str, str], ...], policy: Policy, rule: Rule | None,
        tag: ExchangeTag | None = None, refused: tuple[tuple[str, str], ...] | None = None,
        ext: dict[str, bytes] | None = None,
    ) -> NewRecord:
        return exchange_record(self.deriver, kind, now, requester, office_work, info_item,
                               exchange_id, providers, sid, require, policy, rule, tag, refused,
                               ext)


def _filled(out: Sequence[R | None]) -> list[R]:
    """Per-item outcomes, every slot filled (a None left over is a bug, not a result)."""
    if any(o is None for o in out):
        raise AssertionError("an item was left without an outcome")
    return [o for o in out if o is not None]


def _provider_not_holding(provider: str) -> NotFound:
    return NotFound("PROVIDER_NOT_HOLDING",
                    f"the provider agency {provider!r} holds no records on this subject")


def _requester_not_holding() -> NotFound:
    return NotFound(
        "REQUESTER_NOT_HOLDING",
        "the requester agency holds no subject with that symbol",
        "symbol",
    )


__all__ = [
    "MAX_BATCH",
    "MAX_EXCHANGE_ID",
    "Core",
    "Issued",
    "Outcome",
    "ResolveRequest",
    "Resolved",
    "TranslateRequest",
    "Translated",
    "check_batch",
]
