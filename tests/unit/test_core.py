"""symbolsvc.core.Core in-process: CONTRACT §4 semantics and check order, batches, no writes on
invalid input. A real SqliteRegistry, a real Deriver and a PolicyHolder on a policy file."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from helpers import make_number, number_for

from symbolsvc.core import (
    MAX_BATCH,
    Core,
    Issued,
    ResolveRequest,
    Translated,
    TranslateRequest,
)
from symbolsvc.errors import InvalidArgument, NotFound, PermissionDenied, SymbolsvcError
from symbolsvc.keys import Keyring
from symbolsvc.policy import PolicyHolder
from symbolsvc.records import AccessKind, AccessRecord, Outcome
from symbolsvc.registry import NewRecord
from symbolsvc.registry.sqlite import SqliteRegistry
from symbolsvc.symbols import Deriver

POLICY = """
[groups]
cities = ["city-a", "city-b", "city-c"]

[[allow]]
requester   = "pension-service"
office_work = "survivor-pension"
info_item   = "resident-tax-income"
providers   = ["@cities"]

[[allow]]
requester   = "city-a"
office_work = "child-allowance"
info_item   = "pension-record"
providers   = ["pension-service"]
"""

N1 = make_number("12345678901")
N2 = make_number("98765432109")
BAD_NUMBERS = ["", "12345678901", "1234567890123", N1[:11] + str((int(N1[11]) + 1) % 10),
               "".join(chr(0xFF10 + int(c)) for c in N1),  # full-width digits
               "12345678901a", " " + N1[:11], "¹²³⁴⁵⁶⁷⁸⁹⁰¹⁸"]


@dataclass
class Env:
    core: Core
    registry: SqliteRegistry
    deriver: Deriver
    policy_path: Path
    run: asyncio.Runner

    def issue(self, agency: str, number: str) -> str:
        return self.run.run(self.core.issue(agency, number)).symbol

    def records(self) -> list[AccessRecord]:
        rows = self.run.run(self.registry.records_after(0, 10_000))
        return [AccessRecord.decode(r.leaf) for r in rows]

    def writes(self) -> tuple[int, int]:
        return self.registry.commit_stats

    def tr(self, symbol: str, requester: str = "pension-service", provider: str = "city-a",
           office_work: str = "survivor-pension", info_item: str = "resident-tax-income",
           exchange_id: str = "ex-1") -> TranslateRequest:
        return TranslateRequest(requester, symbol, provider, office_work, info_item, exchange_id)

    def rs(self, symbol: str, requester: str = "pension-service",
           office_work: str = "survivor-pension", info_item: str = "resident-tax-income",
           exchange_id: str = "ex-r") -> ResolveRequest:
        return ResolveRequest(requester, symbol, office_work, info_item, exchange_id)


@pytest.fixture
def env(tmp_path: Path, aio: asyncio.Runner) -> Iterator[Env]:
    policy_path = tmp_path / "policy.toml"
    policy_path.write_text(POLICY, encoding="utf-8")
    deriver = Deriver(Keyring.generate())
    registry = SqliteRegistry(tmp_path / "registry.sqlite3")
    clock = iter(range(1_767_225_600_000_000, 1_767_225_600_000_000 + 10**9))
    core = Core(deriver, registry, PolicyHolder(policy_path), clock_us=lambda: next(clock))
    try:
        yield Env(core, registry, deriver, policy_path, aio)
    finally:
        aio.run(registry.close())


def _raises(env: Env, coro: object, kind: type[SymbolsvcError], reason: str) -> SymbolsvcError:
    with pytest.raises(kind) as info:
        env.run.run(coro)  # type: ignore[arg-type]
    assert info.value.reason == reason, info.value
    return info.value


# -- issue --------------------------------------------------------------------------------


def test_issue_idempotent_and_per_agency(env: Env) -> None:
    first = env.run.run(env.core.issue("city-a", N1))
    assert isinstance(first, Issued) and first.newly_registered and first.key_version == 1
    again = env.run.run(env.core.issue("city-a", N1))
    assert again.symbol == first.symbol and not again.newly_registered
    other = env.run.run(env.core.issue("city-b", N1))
    assert other.newly_registered and other.symbol != first.symbol
    assert env.issue("city-a", N2) not in (first.symbol, other.symbol)
    # the symbol is the deriver's, and the holding's sealed reference opens to the subject
    sid = env.deriver.subject_id(N1.encode())
    assert first.symbol == env.deriver.symbol("city-a", sid)
    sealed = env.run.run(env.registry.lookup("city-a", first.symbol))
    assert sealed is not None and env.deriver.unseal(sealed, "city-a", first.symbol) == sid


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_issue_invalid_number_writes_nothing(env: Env, bad: str) -> None:
    before = env.writes()
    err = _raises(env, env.core.issue("city-a", bad), InvalidArgument,
                  "BAD_CHECK_DIGIT" if len(bad) == 12 and bad.isascii() and bad.isdigit()
                  else "BAD_FORMAT")
    assert err.field == "individual_number"
    assert env.writes() == before
    if len(bad) >= 4:
        assert bad not in str(err)


def test_issue_many_per_item(env: Env) -> None:
    numbers = [N1, "123", N2, N1, BAD_NUMBERS[3]]
    out = env.run.run(env.core.issue_many("city-a", numbers))
    assert isinstance(out[0], Issued) and out[0].newly_registered
    assert isinstance(out[1], InvalidArgument) and out[1].field == "individual_numbers[1]"
    assert isinstance(out[2], Issued) and out[2].newly_registered
    assert isinstance(out[3], Issued) and out[3].symbol == out[0].symbol
    assert not out[3].newly_registered  # duplicate within the batch
    assert isinstance(out[4], InvalidArgument) and out[4].reason == "BAD_CHECK_DIGIT"
    assert out[4].field == "individual_numbers[4]"
    for o in out:
        assert not (isinstance(o, SymbolsvcError) and o.reason == "PENDING")
        assert N1 not in str(o) and N2 not in str(o)


def test_issue_many_all_invalid_writes_nothing(env: Env) -> None:
    before = env.writes()
    out = env.run.run(env.core.issue_many("city-a", BAD_NUMBERS))
    assert all(isinstance(o, InvalidArgument) for o in out)
    assert env.writes() == before


def test_issue_many_one_commit(env: Env) -> None:
    before = env.writes()
    out = env.run.run(env.core.issue_many("city-a", [number_for(i) for i in range(MAX_BATCH)]))
    assert all(isinstance(o, Issued) and o.newly_registered for o in out)
    assert env.writes()[0] - before[0] == 1  # one durable commit for the whole batch


@pytest.mark.parametrize(("size", "reason"), [(0, "EMPTY_BATCH"), (MAX_BATCH + 1,
                                                                     "BATCH_TOO_LARGE")])
def test_issue_batch_limits(env: Env, size: int, reason: str) -> None:
    before = env.writes()
    err = _raises(env, env.core.issue_many("city-a", [N1] * size), InvalidArgument, reason)
    assert err.field == "individual_numbers"
    assert env.writes() == before


# -- release ----------------------------------------------------------------------------------


def test_release(env: Env) -> None:
    symbol = env.issue("city-a", N1)
    assert env.run.run(env.core.release("city-a", symbol)) is True
    assert env.run.run(env.core.release("city-a", symbol)) is False
    _raises(env, env.core.release("city-b", symbol), NotFound, "NOT_ISSUED")
    before = env.writes()
    _raises(env, env.core.release("city-a", "not-a-symbol"), InvalidArgument, "BAD_SYMBOL")
    assert env.writes() == before
    # the symbol stays derivable; issuing again re-creates the holding
    again = env.run.run(env.core.issue("city-a", N1))
    assert again.symbol == symbol and again.newly_registered


# -- translate ----------------------------------------------------------------------------------


def test_translate_returns_providers_symbol_and_logs_first(env: Env) -> None:
    requester_symbol = env.issue("pension-service", N1)
    provider_symbol = env.issue("city-a", N1)
    env.issue("city-a", N2)
    got = env.run.run(env.core.translate(env.tr(requester_symbol, exchange_id="ex-42")))
    assert isinstance(got, Translated) and got.provider_symbol == provider_symbol
    (record,) = env.records()
    sid = env.deriver.subject_id(N1.encode())
    assert record == AccessRecord(
        AccessKind.TRANSLATE, record.time_us, "pension-service", "survivor-pension",
        "resident-tax-income", "ex-42", ("city-a",), env.deriver.log_pseudonym(sid))
    rows = env.run.run(env.registry.records_after(0, 10))
    assert rows[0].id == got.record_id
    # the record names no symbol and no number
    leaf = rows[0].leaf
    for secret in (N1.encode(), requester_symbol.encode(), provider_symbol.encode()):
        assert secret not in leaf
    # and back, where the policy allows it (city-a -> pension-service for child-allowance)
    back = env.run.run(env.core.translate(env.tr(
        provider_symbol, requester="city-a", provider="pension-service",
        office_work="child-allowance", info_item="pension-record")))
    assert back.provider_symbol == requester_symbol


def test_translate_check_order(env: Env) -> None:
    holder = env.issue("pension-service", N1)
    stranger = env.deriver.symbol("pension-service", env.deriver.subject_id(N2.encode()))
    env.issue("city-a", N1)
    before = env.writes()
    # not permitted, and the requester does not hold either: PERMISSION_DENIED first
    _raises(env, env.core.translate(env.tr(stranger, provider="tax-office")),
            PermissionDenied, "NOT_PERMITTED")
    _raises(env, env.core.translate(env.tr(stranger, office_work="child-allowance")),
            PermissionDenied, "NOT_PERMITTED")
    _raises(env, env.core.translate(env.tr(stranger, requester="city-b")),
            PermissionDenied, "NOT_PERMITTED")
    # permitted, neither holds: the requester is reported
    _raises(env, env.core.translate(env.tr(stranger, provider="city-b")), NotFound,
            "REQUESTER_NOT_HOLDING")
    # permitted, requester holds, provider does not
    err = _raises(env, env.core.translate(env.tr(holder, provider="city-b")), NotFound,
                  "PROVIDER_NOT_HOLDING")
    assert "city-b" in str(err)
    # the refusal is recorded with its outcome (issue 10 item 5), the others are not
    assert [r.outcome for r in env.records()] == [Outcome.PROVIDER_NOT_HOLDING]
    # the two refused translations: each one writer unit (the requester's holding is
    # read in the append's transaction)
    assert env.writes()[1] - before[1] == 2


def test_translate_after_release(env: Env) -> None:
    requester = env.issue("pension-service", N1)
    provider = env.issue("city-a", N1)
    env.run.run(env.core.release("city-a", provider))
    _raises(env, env.core.translate(env.tr(requester)), NotFound, "PROVIDER_NOT_HOLDING")
    env.run.run(env.core.release("pension-service", requester))
    _raises(env, env.core.translate(env.tr(requester)), NotFound, "REQUESTER_NOT_HOLDING")
    assert [r.outcome for r in env.records()] == [Outcome.PROVIDER_NOT_HOLDING]


def test_translate_record_requires_both_holdings(env: Env) -> None:
    """The requester's holding is read in the append's transaction, and the record
    requires it as well as the provider's: a release cannot slip in between."""
    requester = env.issue("pension-service", N1)
    provider = env.issue("city-a", N1)
    append_for_holdings = env.registry.append_for_holdings
    built: list[NewRecord | None] = []

    async def spy(items: list[tuple[tuple[str, str], Any]]) -> list[Any]:
        def wrap(build: Any) -> Any:
            def recorded(sealed: bytes) -> Any:
                result = build(sealed)
                built.append(result.record)
                return result
            return recorded
        return await append_for_holdings([(key, wrap(b)) for key, b in items])

    env.registry.append_for_holdings = spy  # type: ignore[method-assign]
    assert env.run.run(env.core.translate(env.tr(requester))).provider_symbol == provider
    (record,) = built
    assert record is not None
    assert set(record.require) == {("pension-service", requester), ("city-a", provider)}


@pytest.mark.parametrize(
    ("change", "field"),
    [({"requester_agency": "Pension Service"}, "requester_agency"),
     ({"symbol": "k1.short"}, "symbol"),
     ({"provider_agency": ""}, "provider_agency"),
     ({"office_work": "x" * 65}, "office_work"),
     ({"info_item": "@cities"}, "info_item"),
     ({"exchange_id": ""}, "exchange_id"),
     ({"exchange_id": "x" * 129}, "exchange_id"),
     ({"exchange_id": "ex\n1"}, "exchange_id"),
     ({"exchange_id": "交換"}, "exchange_id")],
)
def test_translate_invalid_argument_writes_nothing(env: Env, change: dict[str, str],
                                                   field: str) -> None:
    requester = env.issue("pension-service", N1)
    env.issue("city-a", N1)
    before = env.writes()
    req = replace(env.tr(requester), **change)
    with pytest.raises(InvalidArgument) as info:
        env.run.run(env.core.translate(req))
    assert info.value.field == field
    out = env.run.run(env.core.translate_many([env.tr(requester), req]))
    assert isinstance(out[0], Translated)
    assert isinstance(out[1], InvalidArgument) and out[1].field == f"requests[1].{field}"
    assert len(env.records()) == 1  # only the valid item's record
    assert env.writes()[1] - before[1] == 1


def test_translate_many_per_item_outcomes(env: Env) -> None:
    a1 = env.issue("pension-service", N1)
    env.issue("city-a", N1)
    city_b_n1 = env.issue("city-b", N1)
    env.run.run(env.core.release("city-b", city_b_n1))
    stranger = env.deriver.symbol("pension-service", env.deriver.subject_id(N2.encode()))
    reqs = [
        env.tr(a1, exchange_id="x0"),
        env.tr(a1, provider="tax-office", exchange_id="x1"),
        env.tr(stranger, exchange_id="x2"),
        env.tr(a1, provider="city-b", exchange_id="x3"),
        env.tr(a1, provider="city-c", exchange_id="x4"),
        env.tr("bogus", exchange_id="x5"),
        env.tr(a1, exchange_id="x6"),
    ]
    out = env.run.run(env.core.translate_many(reqs))
    assert isinstance(out[0], Translated)
    assert isinstance(out[1], PermissionDenied)
    assert isinstance(out[2], NotFound) and out[2].reason == "REQUESTER_NOT_HOLDING"
    assert isinstance(out[3], NotFound) and out[3].reason == "PROVIDER_NOT_HOLDING"
    assert isinstance(out[4], NotFound) and out[4].reason == "PROVIDER_NOT_HOLDING"
    assert isinstance(out[5], InvalidArgument) and out[5].field == "requests[5].symbol"
    assert isinstance(out[6], Translated) and out[6].provider_symbol == out[0].provider_symbol
    assert out[6].record_id > out[0].record_id
    assert [(r.exchange_id, r.outcome) for r in env.records()] == [
        ("x0", Outcome.ANSWERED), ("x3", Outcome.PROVIDER_NOT_HOLDING),
        ("x4", Outcome.PROVIDER_NOT_HOLDING), ("x6", Outcome.ANSWERED)]
    for o in out:
        assert not (isinstance(o, SymbolsvcError) and o.reason == "PENDING")


@pytest.mark.parametrize(("size", "reason"), [(0, "EMPTY_BATCH"), (MAX_BATCH + 1,
                                                                     "BATCH_TOO_LARGE")])
def test_translate_batch_limits(env: Env, size: int, reason: str) -> None:
    symbol = env.issue("pension-service", N1)
    env.issue("city-a", N1)
    err = _raises(env, env.core.translate_many([env.tr(symbol)] * size), InvalidArgument,
                  reason)
    assert err.field == "requests"
    assert env.records() == []


def test_translate_max_batch_accepted(env: Env) -> None:
    symbol = env.issue("pension-service", N1)
    env.issue("city-a", N1)
    out = env.run.run(env.core.translate_many(
        [env.tr(symbol, exchange_id=f"x{i}") for i in range(MAX_BATCH)]))
    assert all(isinstance(o, Translated) for o in out)
    assert len(env.records()) == MAX_BATCH


def test_policy_reload_takes_effect(env: Env) -> None:
    symbol = env.issue("pension-service", N1)
    env.issue("tax-office", N1)
    _raises(env, env.core.translate(env.tr(symbol, provider="tax-office")), PermissionDenied,
            "NOT_PERMITTED")
    env.policy_path.write_text(POLICY.replace('["@cities"]', '["@cities", "tax-office"]'),
                               encoding="utf-8")
    env.core.policy.reload()
    assert env.run.run(env.core.translate(env.tr(symbol, provider="tax-office")))


# -- resolve -------------------------------------------------------------------------------------


def test_resolve_lists_exactly_permitted_holders(env: Env) -> None:
    symbol = env.issue("pension-service", N1)
    env.issue("city-c", N1)
    env.issue("city-a", N1)
    env.issue("tax-office", N1)  # holds, but is not a permitted provider
    env.issue("city-b", N2)  # permitted, but holds another subject
    got = env.run.run(env.core.resolve(env.rs(symbol)))
    assert got.provider_agencies == ("city-a", "city-c")
    (record,) = env.records()
    assert record.kind is AccessKind.RESOLVE
    assert record.providers == ("city-a", "city-c")
    assert record.exchange_id == "ex-r"
    assert record.pseudonym == env.deriver.log_pseudonym(env.deriver.subject_id(N1.encode()))
    # a released holding disappears from the answer
    env.run.run(env.core.release("city-c", env.issue("city-c", N1)))
    assert env.run.run(env.core.resolve(env.rs(symbol, exchange_id="ex-r2"))
                       ).provider_agencies == ("city-a",)


def test_resolve_with_no_holders_is_logged_too(env: Env) -> None:
    symbol = env.issue("pension-service", N1)
    got = env.run.run(env.core.resolve(env.rs(symbol)))
    assert got.provider_agencies == ()
    (record,) = env.records()
    assert record.providers == ()


def test_resolve_check_order(env: Env) -> None:
    stranger = env.deriver.symbol("pension-service", env.deriver.subject_id(N2.encode()))
    _raises(env, env.core.resolve(env.rs(stranger, info_item="other")), PermissionDenied,
            "NOT_PERMITTED")
    _raises(env, env.core.resolve(env.rs(stranger, requester="city-b")), PermissionDenied,
            "NOT_PERMITTED")
    _raises(env, env.core.resolve(env.rs(stranger)), NotFound, "REQUESTER_NOT_HOLDING")
    symbol = env.issue("pension-service", N1)
    env.run.run(env.core.release("pension-service", symbol))
    _raises(env, env.core.resolve(env.rs(symbol)), NotFound, "REQUESTER_NOT_HOLDING")
    with pytest.raises(InvalidArgument):
        env.run.run(env.core.resolve(env.rs("k1.nope")))
    with pytest.raises(InvalidArgument):
        env.run.run(env.core.resolve(env.rs(symbol, exchange_id="")))
    assert env.records() == []


# -- disclosure ----------------------------------------------------------------------------------


def test_list_records_newest_first_paged(env: Env) -> None:
    from symbolsvc.disclosure import Disclosure
    from symbolsvc.log.sequencer import LogNotifier
    from symbolsvc.log.service import AccessLog

    disclosure = Disclosure(env.deriver, env.registry, env.registry, AccessLog(env.registry),
                            LogNotifier())
    portal = env.issue("portal", N1)
    requester = env.issue("pension-service", N1)
    other = env.issue("pension-service", N2)
    env.issue("city-a", N1)
    env.issue("city-a", N2)
    for k in range(5):
        env.run.run(env.core.translate(env.tr(requester, exchange_id=f"n1-{k}")))
        env.run.run(env.core.translate(env.tr(other, exchange_id=f"n2-{k}")))
    env.run.run(env.core.resolve(env.rs(requester, exchange_id="n1-r")))
    page, token = env.run.run(disclosure.list_records("portal", portal, 4, ""))
    seen = [r.record.exchange_id for r in page]
    while token:
        page, token = env.run.run(disclosure.list_records("portal", portal, 4, token))
        seen += [r.record.exchange_id for r in page]
    assert seen == ["n1-r", "n1-4", "n1-3", "n1-2", "n1-1", "n1-0"]
    everything, token = env.run.run(disclosure.list_records("portal", portal, 0, ""))
    assert token == "" and len(everything) == 6
    for bad in ("x", "-1", "1" * 20):
        _raises(env, disclosure.list_records("portal", portal, 4, bad), InvalidArgument,
                "BAD_PAGE_TOKEN")
    _raises(env, disclosure.list_records("portal", portal, -1, ""), InvalidArgument,
            "BAD_PAGE_SIZE")
    _raises(env, disclosure.list_records("portal", portal, 501, ""), InvalidArgument,
            "BAD_PAGE_SIZE")
    _raises(env, disclosure.list_records("portal", requester, 4, ""), NotFound, "NOT_HOLDING")


# -- no individual number anywhere ----------------------------------------------------------------


def test_numbers_never_logged(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    symbol = env.issue("pension-service", N1)
    for bad in BAD_NUMBERS:
        env.run.run(env.core.issue_many("city-a", [bad, N2]))
    env.run.run(env.core.translate_many([env.tr(symbol, provider="tax-office"),
                                         env.tr(symbol)]))
    for rec in caplog.records:
        text = rec.getMessage() + repr(rec.__dict__)
        for n in (N1, N2, N1[:11], N2[:11]):
            assert n not in text
