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
from dataclasses import dataclass
from typing import TypeVar

from . import rotation
from .blinding import Blinder
from .errors import InvalidArgument, NotFound, PermissionDenied, SymbolsvcError
from .inquiries import Asked, InquiryChecker
from .numbers import validate_individual_number
from .policy import PolicyHolder, is_ident
from .records import AccessKind, AccessRecord
from .registry import Built, HoldingsStore, NewRecord
from .sealing import SealKey
from .subjects import seal_record_subject, unseal_holding
from .symbols import Deriver, symbol_version

MAX_BATCH = 1000
YIELD_EVERY = 100
"""A batch lets other calls run on the event loop after deriving this many items."""
MAX_EXCHANGE_ID = 128

R = TypeVar("R")

security_log = logging.getLogger("symbolsvc.security")


@dataclass(frozen=True, slots=True)
class Issued:
    symbol: str
    newly_registered: bool
    key_version: int


@dataclass(frozen=True, slots=True)
class TranslateRequest:
    requester_agency: str
    symbol: str
    provider_agency: str
    office_work: str
    info_item: str
    exchange_id: str
    inquiry_signature: bytes = b""  # the requester's signature (symbolsvc.inquiry), if any
    issued_at_us: int = 0


@dataclass(frozen=True, slots=True)
class Translated:
    provider_symbol: str  # empty under blind translation
    record_id: int
    sealed: bytes = b""  # the provider's symbol sealed to its HPKE key (blind translation)


@dataclass(frozen=True, slots=True)
class ResolveRequest:
    requester_agency: str
    symbol: str
    office_work: str
    info_item: str
    exchange_id: str
    inquiry_signature: bytes = b""
    issued_at_us: int = 0


@dataclass(frozen=True, slots=True)
class Resolved:
    provider_agencies: tuple[str, ...]
    record_id: int


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
        inquiries: InquiryChecker | None = None,
        blinder: Blinder | None = None,
    ) -> None:
        self.deriver = deriver
        self.registry = registry
        self.policy = policy
        self._clock_us = clock_us
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
            issued = await rotation.issue_subjects(d, self.registry, agency, sids)
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
        if d.older_versions:  # a holding may have rows under several versions
            sealed = await self.registry.lookup(agency, symbol)
            sid = None if sealed is None else self._unseal(sealed, agency, symbol)
            return await rotation.release(d, self.registry, agency, symbol, sid)
        was_held = await self.registry.release(agency, symbol)
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
            try:
                _check_exchange(r, prefix)
                self.deriver.version_of(r.symbol, prefix + "symbol")
                _check_ident(r.provider_agency, prefix + "provider_agency")
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
        results = await self.registry.append_for_holdings(
            [((reqs[i].requester_agency, reqs[i].symbol),
              self._translation(d, reqs[i], now, versions.get(i, d.current_version), exts[i]))
             for i in todo]
        )
        for i, res in zip(todo, results, strict=True):
            if not res.held:
                out[i] = _requester_not_holding()
            elif isinstance(res.value, SymbolsvcError):
                out[i] = res.value
            elif res.record_id is None or res.value is None:
                # the requester's holding was live in the same transaction: the provider's
                # was not (the record required both)
                out[i] = NotFound(
                    "PROVIDER_NOT_HOLDING",
                    f"the provider agency {reqs[i].provider_agency!r} holds no records "
                    "on this subject",
                )
            elif i in keys:  # blind: the broker relays ciphertext only
                r = reqs[i]
                out[i] = Translated("", res.record_id, Blinder.seal(
                    keys[i], res.value, r.exchange_id, r.requester_agency))
            else:
                out[i] = Translated(res.value, res.record_id)
        return _filled(out)

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
        self, d: Deriver, r: TranslateRequest, now: int, provider_version: int,
        ext: dict[str, bytes],
    ) -> Callable[[bytes], Built[str | SymbolsvcError]]:
        """The write unit's build step for one translation, run in the registry's writer
        with the requester's sealed reference. It never raises: it returns the record and
        the provider's symbol, or no record and the error. The provider's symbol is under
        ``provider_version`` (the version it holds the subject at, else d's current one)."""

        def build(sealed_ref: bytes) -> Built[str | SymbolsvcError]:
            try:
                sid = self._unseal(sealed_ref, r.requester_agency, r.symbol)
                provider_symbol = d.symbol(r.provider_agency, sid, provider_version)
                record = self._record(
                    AccessKind.TRANSLATE, now, r.requester_agency, r.office_work, r.info_item,
                    r.exchange_id, (r.provider_agency,), sid,
                    ((r.requester_agency, r.symbol), (r.provider_agency, provider_symbol)), ext,
                )
            except SymbolsvcError as err:
                return Built(None, err)
            return Built(record, provider_symbol)

        return build

    async def resolve(self, r: ResolveRequest) -> Resolved:
        """CONTRACT §4 Resolve providers: permitted providers that hold the subject, logged."""
        _check_exchange(r, "")
        self.deriver.version_of(r.symbol)
        ext = self._signed(AccessKind.RESOLVE, r, "", "")
        permitted = self.policy.current.permitted_providers(
            r.requester_agency, r.office_work, r.info_item
        )
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
        record = self._record(
            AccessKind.RESOLVE, self._clock_us(), r.requester_agency, r.office_work,
            r.info_item, r.exchange_id, holders, sid, ((r.requester_agency, r.symbol),), ext,
        )
        (rid,) = await self.registry.append_records([record])
        if rid is None:  # released between the lookup and the append
            raise _requester_not_holding()
        return Resolved(holders, rid)

    # -- helpers ----------------------------------------------------------------

    def _unseal(self, sealed_ref: bytes, agency: str, symbol: str) -> bytes:
        return unseal_holding(self.deriver, sealed_ref, agency, symbol)

    def _signed(self, kind: AccessKind, r: TranslateRequest | ResolveRequest, provider: str,
                prefix: str) -> dict[str, bytes]:
        """The record's extensions for a verified signed inquiry; raises PermissionDenied."""
        if self.inquiries is None:
            return {}
        return self.inquiries.check(Asked(
            kind, r.requester_agency, r.symbol, provider, r.office_work, r.info_item,
            r.exchange_id, r.inquiry_signature, r.issued_at_us), prefix)

    def _record(
        self, kind: AccessKind, now: int, requester: str, office_work: str, info_item: str,
        exchange_id: str, providers: tuple[str, ...], sid: bytes,
        require: tuple[tuple[str, str], ...], ext: dict[str, bytes] | None = None,
    ) -> NewRecord:
        pseudonym = self.deriver.log_pseudonym(sid)
        leaf = AccessRecord(kind, now, requester, office_work, info_item, exchange_id,
                            providers, pseudonym).with_ext(**(ext or {})).encode()
        return NewRecord(leaf, pseudonym, seal_record_subject(self.deriver, sid), require)


def _filled(out: Sequence[R | None]) -> list[R]:
    """Per-item outcomes, every slot filled (a None left over is a bug, not a result)."""
    if any(o is None for o in out):
        raise AssertionError("an item was left without an outcome")
    return [o for o in out if o is not None]


def check_batch(n: int, field: str) -> None:
    if n == 0:
        raise InvalidArgument("EMPTY_BATCH", "the batch is empty", field)
    if n > MAX_BATCH:
        raise InvalidArgument(
            "BATCH_TOO_LARGE", f"a batch holds at most {MAX_BATCH} items (got {n})", field
        )


def _check_ident(value: str, field: str) -> None:
    if not is_ident(value):
        raise InvalidArgument(
            "BAD_IDENTIFIER",
            f"{field} must be 1-64 lower-case ASCII letters, digits, '.', '_' or '-'",
            field,
        )


def _check_exchange(r: TranslateRequest | ResolveRequest, prefix: str) -> None:
    _check_ident(r.requester_agency, prefix + "requester_agency")
    symbol_version(r.symbol, prefix + "symbol")
    _check_ident(r.office_work, prefix + "office_work")
    _check_ident(r.info_item, prefix + "info_item")
    x = r.exchange_id
    if not (0 < len(x) <= MAX_EXCHANGE_ID and x.isascii() and x.isprintable()):
        raise InvalidArgument(
            "BAD_EXCHANGE_ID",
            f"exchange_id must be 1-{MAX_EXCHANGE_ID} printable ASCII characters",
            prefix + "exchange_id",
        )


def _requester_not_holding() -> NotFound:
    return NotFound(
        "REQUESTER_NOT_HOLDING",
        "the requester agency holds no subject with that symbol",
        "symbol",
    )


__all__ = [
    "MAX_BATCH",
    "Core",
    "Issued",
    "Outcome",
    "ResolveRequest",
    "Resolved",
    "TranslateRequest",
    "Translated",
]
