"""CONTRACT §4 over the wire: issue, translate, resolve, release, with the test permission table.

The permission table is helpers.TEST_POLICY:

    pension-service  survivor-pension   resident-tax-income  <- city-chiyoda, city-minato
    city-chiyoda     resident-tax       national-tax-income  <- tax-office
    tax-office       tax-investigation  resident-record      <- city-chiyoda
    municipalities   child-allowance    pension-status       <- pension-service
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import grpc
import pytest
from helpers import AGENCIES, Clients, NumberSource, ServerProcess, call_error, wait_until
from symbolsvc_client import CallError

from symbolsvc.v1 import broker_service_pb2 as broker_pb
from symbolsvc.v1 import disclosure_service_pb2 as disclosure_pb

Code = grpc.StatusCode
_xid = itertools.count(1)


def xid() -> str:
    return f"exchange-{next(_xid)}"


@dataclass(frozen=True)
class Exchange:
    requester: str
    office_work: str
    info_item: str
    provider: str


CHIYODA_TO_TAX = Exchange("city-chiyoda", "resident-tax", "national-tax-income", "tax-office")
TAX_TO_CHIYODA = Exchange("tax-office", "tax-investigation", "resident-record", "city-chiyoda")
PENSION_TO_MINATO = Exchange("pension-service", "survivor-pension", "resident-tax-income",
                             "city-minato")
PENSION_TO_CHIYODA = Exchange("pension-service", "survivor-pension", "resident-tax-income",
                              "city-chiyoda")
MINATO_TO_PENSION = Exchange("city-minato", "child-allowance", "pension-status",
                             "pension-service")


def issue_all(clients: Clients, number: str, agencies: tuple[str, ...] = AGENCIES
              ) -> dict[str, str]:
    return {a: clients.agency(a).issue(number).symbol for a in agencies}


def translate(clients: Clients, ex: Exchange, symbol: str) -> broker_pb.TranslateSymbolResponse:
    return clients.broker().translate(ex.requester, symbol, ex.provider, ex.office_work,
                                      ex.info_item, xid())


# -- issue -------------------------------------------------------------------------------------


def test_same_number_same_agency_same_symbol(clients: Clients, numbers: NumberSource) -> None:
    agency = clients.agency("city-chiyoda")
    n = numbers.one()
    first = agency.issue(n)
    second = agency.issue(n)
    assert first.newly_registered is True
    assert second.newly_registered is False
    assert first.symbol == second.symbol
    assert first.symbol.startswith(f"k{first.key_version}.") and first.key_version >= 1
    # The batch form agrees with the unary form.
    (batched,) = agency.issue_batch([n])
    assert batched.issued.symbol == first.symbol and not batched.issued.newly_registered


def test_different_agencies_get_different_symbols(clients: Clients,
                                                  numbers: NumberSource) -> None:
    n = numbers.one()
    symbols = issue_all(clients, n)
    symbols["portal"] = clients.portal().agency.issue(n).symbol
    assert len(set(symbols.values())) == len(symbols)
    # Different numbers, same agency: different symbols.
    other = clients.agency("city-chiyoda").issue(numbers.one()).symbol
    assert other not in symbols.values()
    # Symbols reveal nothing of the number (CONTRACT §5.1): no digit run of it appears.
    for s in symbols.values():
        assert n not in s and n[:6] not in s


# -- translate ---------------------------------------------------------------------------------


def test_translate_returns_exactly_the_providers_symbol_and_back(
        clients: Clients, numbers: NumberSource) -> None:
    n = numbers.one()
    s = issue_all(clients, n)
    there = translate(clients, CHIYODA_TO_TAX, s["city-chiyoda"])
    assert there.provider_symbol == s["tax-office"]
    back = translate(clients, TAX_TO_CHIYODA, s["tax-office"])
    assert back.provider_symbol == s["city-chiyoda"]
    to_minato = translate(clients, PENSION_TO_MINATO, s["pension-service"])
    assert to_minato.provider_symbol == s["city-minato"]
    assert 0 < there.record_id < back.record_id < to_minato.record_id


def test_translation_is_per_subject(clients: Clients, numbers: NumberSource) -> None:
    a, b = numbers.many(2)
    sa, sb = issue_all(clients, a), issue_all(clients, b)
    assert translate(clients, CHIYODA_TO_TAX, sa["city-chiyoda"]).provider_symbol == \
        sa["tax-office"]
    assert translate(clients, CHIYODA_TO_TAX, sb["city-chiyoda"]).provider_symbol == \
        sb["tax-office"]


NOT_ALLOWED = [
    # the reverse of an allowed direction
    Exchange("tax-office", "resident-tax", "national-tax-income", "city-chiyoda"),
    # an allowed requester and provider, with another rule's office work
    Exchange("city-chiyoda", "tax-investigation", "national-tax-income", "tax-office"),
    # ... with another rule's info item
    Exchange("city-chiyoda", "resident-tax", "resident-record", "tax-office"),
    # a provider outside the rule's list
    Exchange("tax-office", "tax-investigation", "resident-record", "city-minato"),
    # a group member that the rule does not name as requester
    Exchange("city-minato", "resident-tax", "national-tax-income", "tax-office"),
    # an office work and item no rule knows
    Exchange("city-chiyoda", "demo-exchange", "demo-record", "city-minato"),
    # the portal is an agency, but no rule names it
    Exchange("portal", "survivor-pension", "resident-tax-income", "city-chiyoda"),
]


@pytest.mark.parametrize("ex", NOT_ALLOWED, ids=lambda e: f"{e.requester}-{e.office_work}-"
                         f"{e.info_item}-{e.provider}")
def test_not_allowed_exchange_is_permission_denied(clients: Clients, numbers: NumberSource,
                                                   server: ServerProcess, ex: Exchange) -> None:
    n = numbers.one()
    s = issue_all(clients, n)
    s["portal"] = clients.portal().agency.issue(n).symbol
    mark = server.security_log_path.stat().st_size
    exchange_id = xid()
    err = call_error(clients.broker().translate, ex.requester, s[ex.requester], ex.provider,
                     ex.office_work, ex.info_item, exchange_id)
    assert err.code == Code.PERMISSION_DENIED
    assert err.reason == "NOT_PERMITTED"
    assert s[ex.provider] not in err.message and n not in err.message

    def logged() -> list[dict[str, str]]:
        lines = server.security_log_path.read_bytes()[mark:].decode().splitlines()
        return [e for e in map(json.loads, lines) if e.get("event") == "policy_denied"
                and e.get("exchange_id") == exchange_id]

    (event,) = wait_until(logged, 5, "the policy denial in the security log")
    assert (event["requester"], event["provider"], event["office_work"], event["info_item"]) \
        == (ex.requester, ex.provider, ex.office_work, ex.info_item)
    # The security log names agencies and purposes, never a subject.
    assert s[ex.requester] not in json.dumps(event) and n not in json.dumps(event)


def test_permission_is_checked_before_holdings(clients: Clients, numbers: NumberSource) -> None:
    """CONTRACT §4's order: the table first, so a refused exchange reveals nothing of holdings."""
    held = issue_all(clients, numbers.one())["tax-office"]
    never = "k1." + "a" * 52  # well-formed, held by nobody
    for symbol in (held, never):
        err = call_error(translate, clients, NOT_ALLOWED[0], symbol)
        assert (err.code, err.reason) == (Code.PERMISSION_DENIED, "NOT_PERMITTED")


def test_requester_and_provider_not_holding_are_distinct_not_found(
        clients: Clients, numbers: NumberSource) -> None:
    n = numbers.one()
    chiyoda = clients.agency("city-chiyoda").issue(n).symbol  # tax-office does not hold n
    err_p = call_error(translate, clients, CHIYODA_TO_TAX, chiyoda)
    assert (err_p.code, err_p.reason) == (Code.NOT_FOUND, "PROVIDER_NOT_HOLDING")

    stranger = clients.agency("city-chiyoda").issue(numbers.one()).symbol
    # A symbol tax-office was never issued (it is city-chiyoda's):
    err_r = call_error(translate, clients, TAX_TO_CHIYODA, stranger)
    assert (err_r.code, err_r.reason) == (Code.NOT_FOUND, "REQUESTER_NOT_HOLDING")
    assert err_r.message != err_p.message
    assert "requester" in err_r.message and "provider" in err_p.message


def test_exchanges_and_provider_refusals_are_recorded(clients: Clients,
                                                     numbers: NumberSource) -> None:
    """Each translation and resolution leaves one access record the subject can see, and
    so does a translation refused because the provider holds nothing (outcome
    PROVIDER_NOT_HOLDING: someone asked where the data is); one refused by the permission
    table leaves none (read back through the portal, CONTRACT §4 Disclosure)."""
    n = numbers.one()
    s = issue_all(clients, n, ("city-chiyoda", "pension-service"))
    portal = clients.portal()
    portal_symbol = portal.agency.issue(n).symbol
    ok = clients.broker().translate(
        PENSION_TO_CHIYODA.requester, s["pension-service"], PENSION_TO_CHIYODA.provider,
        PENSION_TO_CHIYODA.office_work, PENSION_TO_CHIYODA.info_item, "the-one-that-worked")
    assert ok.provider_symbol == s["city-chiyoda"]
    err = call_error(translate, clients, CHIYODA_TO_TAX, s["city-chiyoda"])
    assert (err.code, err.reason) == (Code.NOT_FOUND, "PROVIDER_NOT_HOLDING")
    err = call_error(translate, clients, NOT_ALLOWED[1], s["city-chiyoda"])
    assert err.reason == "NOT_PERMITTED"
    resolved = clients.broker().resolve("pension-service", s["pension-service"],
                                        "survivor-pension", "resident-tax-income", "where")
    assert list(resolved.provider_agencies) == ["city-chiyoda"]

    records = portal.all_records(portal_symbol)
    assert [(r.requester_agency, list(r.provider_agencies), r.office_work, r.info_item,
             r.outcome) for r in records] == [
        ("pension-service", ["city-chiyoda"], "survivor-pension", "resident-tax-income",
         disclosure_pb.ACCESS_OUTCOME_ANSWERED),
        ("city-chiyoda", ["tax-office"], CHIYODA_TO_TAX.office_work, CHIYODA_TO_TAX.info_item,
         disclosure_pb.ACCESS_OUTCOME_PROVIDER_NOT_HOLDING),
        ("pension-service", ["city-chiyoda"], "survivor-pension", "resident-tax-income",
         disclosure_pb.ACCESS_OUTCOME_ANSWERED),
    ]  # newest first
    assert [records[0].exchange_id, records[2].exchange_id] == ["where", "the-one-that-worked"]
    assert [r.kind for r in records] == [2, 1, 1]  # RESOLVE, TRANSLATE, TRANSLATE
    assert all(r.subject_symbol == portal_symbol for r in records)


def test_exchange_replay_and_reuse_over_grpc(clients: Clients, numbers: NumberSource) -> None:
    """(requester, exchange id) names one exchange: a replay gets the same answer and record
    (no second record); the id with other content is ALREADY_EXISTS, per item in a batch."""
    n = numbers.one()
    s = issue_all(clients, n)
    portal = clients.portal()
    portal_symbol = portal.agency.issue(n).symbol
    broker, x = clients.broker(), xid()
    ex = PENSION_TO_CHIYODA
    first = broker.translate(ex.requester, s[ex.requester], ex.provider, ex.office_work,
                             ex.info_item, x)
    again = broker.translate(ex.requester, s[ex.requester], ex.provider, ex.office_work,
                             ex.info_item, x)
    assert (again.provider_symbol, again.record_id) == (first.provider_symbol, first.record_id)
    err = call_error(broker.translate, ex.requester, s[ex.requester], "city-minato",
                     ex.office_work, ex.info_item, x)
    assert (err.code, err.reason) == (Code.ALREADY_EXISTS, "EXCHANGE_ID_REUSED")
    out = broker.translate_batch([broker_pb.TranslateSymbolRequest(
        requester_agency=ex.requester, symbol=s[ex.requester], provider_agency=p,
        office_work=ex.office_work, info_item=ex.info_item, exchange_id=x)
        for p in ("city-chiyoda", "city-minato")])
    assert out[0].translated.record_id == first.record_id
    assert (out[1].error.reason, out[1].error.field) == ("EXCHANGE_ID_REUSED",
                                                          "requests[1].exchange_id")
    assert [r.record_id for r in portal.all_records(portal_symbol)] == [first.record_id]


def test_batch_translate_reports_per_item(clients: Clients, numbers: NumberSource) -> None:
    n, lonely = numbers.many(2)
    s = issue_all(clients, n)
    lonely_chiyoda = clients.agency("city-chiyoda").issue(lonely).symbol

    def req(ex: Exchange, symbol: str) -> broker_pb.TranslateSymbolRequest:
        return broker_pb.TranslateSymbolRequest(
            requester_agency=ex.requester, symbol=symbol, provider_agency=ex.provider,
            office_work=ex.office_work, info_item=ex.info_item, exchange_id=xid())

    results = clients.broker().translate_batch([
        req(CHIYODA_TO_TAX, s["city-chiyoda"]),           # ok
        req(NOT_ALLOWED[0], s["tax-office"]),             # not permitted
        req(CHIYODA_TO_TAX, lonely_chiyoda),              # provider not holding
        req(TAX_TO_CHIYODA, lonely_chiyoda),              # requester not holding
        req(CHIYODA_TO_TAX, "not-a-symbol"),              # malformed
        req(PENSION_TO_MINATO, s["pension-service"]),     # ok
    ])
    assert len(results) == 6
    assert results[0].translated.provider_symbol == s["tax-office"]
    assert results[5].translated.provider_symbol == s["city-minato"]
    assert results[0].translated.record_id < results[5].translated.record_id
    expected = [
        (1, Code.PERMISSION_DENIED, "NOT_PERMITTED"),
        (2, Code.NOT_FOUND, "PROVIDER_NOT_HOLDING"),
        (3, Code.NOT_FOUND, "REQUESTER_NOT_HOLDING"),
        (4, Code.INVALID_ARGUMENT, "BAD_SYMBOL"),
    ]
    for i, code, reason in expected:
        assert results[i].WhichOneof("outcome") == "error", i
        assert (results[i].error.code, results[i].error.reason) == (code.value[0], reason), i
    assert results[4].error.field == "requests[4].symbol"


# -- resolve -----------------------------------------------------------------------------------


def test_resolve_returns_exactly_the_permitted_holders(clients: Clients,
                                                       numbers: NumberSource) -> None:
    n = numbers.one()
    s = issue_all(clients, n)  # all four agencies hold the subject
    broker = clients.broker()
    r = broker.resolve("pension-service", s["pension-service"], "survivor-pension",
                       "resident-tax-income", xid())
    # tax-office holds the subject too, but the table does not name it for this item.
    assert list(r.provider_agencies) == ["city-chiyoda", "city-minato"]
    assert r.record_id > 0
    r2 = broker.resolve("tax-office", s["tax-office"], "tax-investigation", "resident-record",
                        xid())
    assert list(r2.provider_agencies) == ["city-chiyoda"]
    assert r2.record_id > r.record_id

    m = numbers.one()
    only = issue_all(clients, m, ("pension-service", "city-minato", "tax-office"))
    r3 = broker.resolve("pension-service", only["pension-service"], "survivor-pension",
                        "resident-tax-income", xid())
    assert list(r3.provider_agencies) == ["city-minato"]

    k = numbers.one()
    alone = issue_all(clients, k, ("pension-service",))
    r4 = broker.resolve("pension-service", alone["pension-service"], "survivor-pension",
                        "resident-tax-income", xid())
    assert list(r4.provider_agencies) == []


def test_resolve_refusals(clients: Clients, numbers: NumberSource) -> None:
    s = issue_all(clients, numbers.one())
    broker = clients.broker()
    err = call_error(broker.resolve, "tax-office", s["tax-office"], "survivor-pension",
                     "resident-tax-income", xid())
    assert (err.code, err.reason) == (Code.PERMISSION_DENIED, "NOT_PERMITTED")
    err = call_error(broker.resolve, "pension-service", s["city-chiyoda"], "survivor-pension",
                     "resident-tax-income", xid())
    assert (err.code, err.reason) == (Code.NOT_FOUND, "REQUESTER_NOT_HOLDING")


# -- release -----------------------------------------------------------------------------------


def test_release_removes_the_holding_from_translation_and_resolution(
        clients: Clients, numbers: NumberSource) -> None:
    n = numbers.one()
    s = issue_all(clients, n)
    minato = clients.agency("city-minato")
    broker = clients.broker()
    assert translate(clients, PENSION_TO_MINATO, s["pension-service"]).provider_symbol == \
        s["city-minato"]

    assert minato.release(s["city-minato"]) is True
    err = call_error(translate, clients, PENSION_TO_MINATO, s["pension-service"])
    assert (err.code, err.reason) == (Code.NOT_FOUND, "PROVIDER_NOT_HOLDING")
    r = broker.resolve("pension-service", s["pension-service"], "survivor-pension",
                       "resident-tax-income", xid())
    assert list(r.provider_agencies) == ["city-chiyoda"]
    # Other holdings of the subject are untouched.
    assert translate(clients, PENSION_TO_CHIYODA, s["pension-service"]).provider_symbol == \
        s["city-chiyoda"]
    # A released requester cannot ask either.
    err = call_error(translate, clients, MINATO_TO_PENSION, s["city-minato"])
    assert (err.code, err.reason) == (Code.NOT_FOUND, "REQUESTER_NOT_HOLDING")

    # Idempotent: the second release says it was not held.
    assert minato.release(s["city-minato"]) is False

    # Re-issue: the same symbol, a new holding, and translation works again.
    again = minato.issue(n)
    assert again.symbol == s["city-minato"] and again.newly_registered is True
    assert minato.issue(n).newly_registered is False
    assert translate(clients, PENSION_TO_MINATO, s["pension-service"]).provider_symbol == \
        s["city-minato"]
    r = broker.resolve("pension-service", s["pension-service"], "survivor-pension",
                       "resident-tax-income", xid())
    assert list(r.provider_agencies) == ["city-chiyoda", "city-minato"]


def test_release_of_unknown_or_foreign_symbol_is_not_found(
        clients: Clients, numbers: NumberSource) -> None:
    s = issue_all(clients, numbers.one())
    chiyoda = clients.agency("city-chiyoda")
    for symbol in ("k1." + "b" * 52, s["city-minato"]):  # never issued; another agency's
        err = call_error(chiyoda.release, symbol)
        assert (err.code, err.reason) == (Code.NOT_FOUND, "NOT_ISSUED")
    # city-minato's holding survived city-chiyoda's attempt.
    assert translate(clients, PENSION_TO_MINATO, s["pension-service"]).provider_symbol == \
        s["city-minato"]
    err = call_error(chiyoda.release, "K1.NOT-A-SYMBOL")
    assert isinstance(err, CallError) and err.code == Code.INVALID_ARGUMENT
