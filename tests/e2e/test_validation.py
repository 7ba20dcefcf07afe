"""Bad input (CONTRACT §5.6): a clear INVALID_ARGUMENT with a reason, per item in batches and
streams, nothing written, and the input never echoed: not in the error, not in the server's
log, not in the security log (CONTRACT §5.4)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from helpers import (
    SERVING,
    Clients,
    NumberSource,
    ServerProcess,
    call_error,
    call_rows,
    wrong_check_digit,
)
from symbolsvc_client import CallError

from symbolsvc.v1 import broker_service_pb2 as broker_pb

Code = grpc.StatusCode
INVALID = Code.INVALID_ARGUMENT.value[0]
# Digits 0-9 -> FULLWIDTH DIGIT ZERO..NINE (U+FF10..U+FF19), as a Japanese IME types them.
FULL_WIDTH = {ord(str(d)): 0xFF10 + d for d in range(10)}
CONTRACT_WIDE = "123456789018".translate(FULL_WIDTH)  # CONTRACT §6's first valid example


@dataclass(frozen=True)
class Bad:
    name: str
    value: str
    reason: str
    # What must never be echoed: the input itself and the digits inside it.
    secrets: tuple[str, ...]


def bad_inputs(n: str) -> list[Bad]:
    """Bad individual numbers built from the valid number ``n`` (fresh for each test, so a
    match in a log can only come from this test's input)."""
    wide = n.translate(FULL_WIDTH)
    return [
        Bad("wrong-check-digit", wrong_check_digit(n), "BAD_CHECK_DIGIT",
            (wrong_check_digit(n), n[:11])),
        Bad("11-digits", n[:11], "BAD_FORMAT", (n[:11],)),
        Bad("13-digits", n + "7", "BAD_FORMAT", (n + "7", n)),
        Bad("full-width", wide, "BAD_FORMAT", (wide, n)),
        Bad("full-width-spec-example", CONTRACT_WIDE, "BAD_FORMAT", (CONTRACT_WIDE,)),
        Bad("letters", n[:5] + "ab" + n[7:], "BAD_FORMAT", (n[:5] + "ab" + n[7:],)),
        Bad("empty", "", "BAD_FORMAT", ()),
        Bad("leading-space", " " + n, "BAD_FORMAT", (n,)),
        Bad("trailing-space", n + " ", "BAD_FORMAT", (n,)),
        Bad("trailing-newline", n + "\n", "BAD_FORMAT", (n,)),
        Bad("inner-space", n[:4] + " " + n[4:8] + " " + n[8:], "BAD_FORMAT",
            (n[:4] + " " + n[4:8],)),
        Bad("hyphens", f"{n[:4]}-{n[4:8]}-{n[8:]}", "BAD_FORMAT", (f"{n[:4]}-{n[4:8]}-{n[8:]}",)),
    ]


BAD_NAMES = [b.name for b in bad_inputs("123456789018")]
def written(server: ServerProcess) -> dict[str, int]:
    """Rows of the tables a call writes (the sequencer updates its own in the background)."""
    return call_rows(server.config)


def assert_not_echoed(server: ServerProcess, secrets: tuple[str, ...], *texts: str) -> None:
    for secret in secrets:
        assert len(secret) >= 8  # a meaningful search
        for text in texts:
            assert secret not in text
        assert secret not in server.log_text(), "an input appears in the server log"
        assert secret not in server.security_log_text(), "an input appears in the security log"


@pytest.fixture
def bad(request: pytest.FixtureRequest, numbers: NumberSource) -> Iterator[Bad]:
    (b,) = [b for b in bad_inputs(numbers.one()) if b.name == request.param]
    yield b


@pytest.mark.parametrize("bad", BAD_NAMES, indirect=True)
def test_issue_rejects_bad_number(bad: Bad, server: ServerProcess, clients: Clients) -> None:
    before = written(server)
    err = call_error(clients.agency("city-chiyoda").issue, bad.value)
    assert err.code == Code.INVALID_ARGUMENT
    assert err.reason == bad.reason
    assert err.field == "individual_number"
    assert err.message.startswith("individual number")  # says what is wrong, not the input
    assert written(server) == before
    assert_not_echoed(server, bad.secrets, err.message, str(err))


@pytest.mark.parametrize("bad", BAD_NAMES, indirect=True)
def test_batch_reports_bad_number_per_item(bad: Bad, server: ServerProcess, clients: Clients,
                                           numbers: NumberSource) -> None:
    agency = clients.agency("city-minato")
    good = numbers.many(2)
    before = written(server)
    results = agency.issue_batch([good[0], bad.value, good[1]])
    assert [r.WhichOneof("outcome") for r in results] == ["issued", "error", "issued"]
    e = results[1].error
    assert (e.code, e.reason, e.field) == (INVALID, bad.reason, "individual_numbers[1]")
    assert results[0].issued.newly_registered and results[2].issued.newly_registered
    after = written(server)
    assert after["holdings"] == before["holdings"] + 2
    # the two new holdings' ISSUE records (docs/DISCLOSURE.md); the bad number wrote nothing
    assert after["access_records"] == before["access_records"] + 2
    assert [agency.issue(g).symbol for g in good] == \
        [results[0].issued.symbol, results[2].issued.symbol]
    assert_not_echoed(server, bad.secrets, e.message)


@pytest.mark.parametrize("bad", BAD_NAMES, indirect=True)
def test_stream_reports_bad_number_per_item(bad: Bad, server: ServerProcess, clients: Clients,
                                            numbers: NumberSource) -> None:
    agency = clients.agency("tax-office")
    good = numbers.many(3)
    before = written(server)
    replies = list(agency.issue_stream([[good[0], bad.value, good[1]], [good[2]]], timeout=10))
    assert [r.chunk_id for r in replies] == [0, 1]
    first, second = replies
    assert [r.WhichOneof("outcome") for r in first.results] == ["issued", "error", "issued"]
    e = first.results[1].error
    assert (e.code, e.reason, e.field) == (INVALID, bad.reason, "individual_numbers[1]")
    assert second.results[0].issued.newly_registered
    assert written(server)["holdings"] == before["holdings"] + 3
    assert_not_echoed(server, bad.secrets, e.message)


def test_batch_too_large_writes_nothing(server: ServerProcess, clients: Clients,
                                        numbers: NumberSource) -> None:
    agency = clients.agency("city-chiyoda")
    batch = numbers.many(1001)
    before = written(server)
    err = call_error(agency.issue_batch, batch)
    assert (err.code, err.reason) == (Code.INVALID_ARGUMENT, "BATCH_TOO_LARGE")
    assert "1000" in err.message
    assert written(server) == before
    assert agency.issue(batch[0]).newly_registered  # nothing of the batch was written
    assert agency.issue(batch[-1]).newly_registered
    # The documented maximum itself is fine.
    results = agency.issue_batch(batch[1:1001])
    assert len(results) == 1000 and all(r.issued.newly_registered for r in results[:-1])


def test_empty_batch_is_invalid(server: ServerProcess, clients: Clients) -> None:
    before = written(server)
    err = call_error(clients.agency("city-chiyoda").issue_batch, [])
    assert (err.code, err.reason) == (Code.INVALID_ARGUMENT, "EMPTY_BATCH")
    assert written(server) == before


def test_stream_oversized_chunk_fails_alone(server: ServerProcess, clients: Clients,
                                            numbers: NumberSource) -> None:
    """The .proto: an oversized chunk fails alone, with one error (issue 11: one error per
    number made a 100k-number chunk a 9 MB reply that ended the stream), and the stream
    continues."""
    agency = clients.agency("city-chiyoda")
    big, after = numbers.many(1001), numbers.many(2)
    before = written(server)
    replies = list(agency.issue_stream([big, after], timeout=20))
    assert [r.chunk_id for r in replies] == [0, 1]
    assert len(replies[0].results) == 1
    assert {(r.error.code, r.error.reason) for r in replies[0].results} == \
        {(INVALID, "BATCH_TOO_LARGE")}
    assert all(r.issued.newly_registered for r in replies[1].results)
    assert written(server)["holdings"] == before["holdings"] + 2


def test_stream_empty_chunk_fails_alone(server: ServerProcess, clients: Clients,
                                       numbers: NumberSource) -> None:
    agency = clients.agency("city-minato")
    good = numbers.many(2)
    before = written(server)
    replies = list(agency.issue_stream([[], good], timeout=10))
    assert [r.chunk_id for r in replies] == [0, 1]
    assert replies[0].results and {(r.error.code, r.error.reason) for r in replies[0].results} \
        == {(INVALID, "EMPTY_BATCH")}
    assert all(r.issued.newly_registered for r in replies[1].results)
    assert written(server)["holdings"] == before["holdings"] + 2


# -- malformed exchange fields ------------------------------------------------------------------

GOOD_TRANSLATE = {
    "requester_agency": "city-chiyoda", "provider_agency": "tax-office",
    "office_work": "resident-tax", "info_item": "national-tax-income", "exchange_id": "x-1",
}
MALFORMED = [
    ("requester_agency", "City-Chiyoda", "BAD_IDENTIFIER"),
    ("requester_agency", "", "BAD_IDENTIFIER"),
    ("requester_agency", "a" * 65, "BAD_IDENTIFIER"),
    ("requester_agency", "city chiyoda", "BAD_IDENTIFIER"),
    ("provider_agency", "@municipalities", "BAD_IDENTIFIER"),
    ("provider_agency", "tax-office\n", "BAD_IDENTIFIER"),
    ("office_work", "", "BAD_IDENTIFIER"),
    ("office_work", "Resident Tax", "BAD_IDENTIFIER"),
    ("info_item", "x" * 65, "BAD_IDENTIFIER"),
    ("info_item", "所得", "BAD_IDENTIFIER"),
    ("symbol", "", "BAD_SYMBOL"),
    ("symbol", "k1.short", "BAD_SYMBOL"),
    ("symbol", "K1." + "a" * 52, "BAD_SYMBOL"),
    ("symbol", "k0." + "a" * 52, "BAD_SYMBOL"),
    ("symbol", "k1." + "a" * 51 + "1", "BAD_SYMBOL"),
    ("symbol", "k1." + "a" * 52 + " ", "BAD_SYMBOL"),
    ("symbol", "123456789018", "BAD_SYMBOL"),
    ("exchange_id", "", "BAD_EXCHANGE_ID"),
    ("exchange_id", "x" * 129, "BAD_EXCHANGE_ID"),
    ("exchange_id", "line\nbreak", "BAD_EXCHANGE_ID"),
    ("exchange_id", "交換-1", "BAD_EXCHANGE_ID"),
]


@pytest.fixture(scope="module")
def held(clients: Clients, numbers: NumberSource) -> dict[str, str]:
    n = numbers.one()
    return {a: clients.agency(a).issue(n).symbol
            for a in ("city-chiyoda", "tax-office", "pension-service")}


@pytest.mark.parametrize(("field", "value", "reason"), MALFORMED,
                         ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(MALFORMED)])
def test_translate_rejects_malformed_field(field: str, value: str, reason: str,
                                           server: ServerProcess, clients: Clients,
                                           held: dict[str, str]) -> None:
    req = {**GOOD_TRANSLATE, "symbol": held["city-chiyoda"], field: value}
    broker = clients.broker()
    before = written(server)
    err = call_error(broker.translate, req["requester_agency"], req["symbol"],
                     req["provider_agency"], req["office_work"], req["info_item"],
                     req["exchange_id"])
    assert (err.code, err.reason, err.field) == (Code.INVALID_ARGUMENT, reason, field)
    (result,) = broker.translate_batch([broker_pb.TranslateSymbolRequest(**req)])
    assert (result.error.code, result.error.reason, result.error.field) == \
        (INVALID, reason, f"requests[0].{field}")
    if field != "provider_agency":
        err = call_error(broker.resolve, "pension-service" if field != "requester_agency"
                         else value, held["pension-service"] if field != "symbol" else value,
                         "survivor-pension" if field != "office_work" else value,
                         "resident-tax-income" if field != "info_item" else value,
                         "r-1" if field != "exchange_id" else value)
        assert (err.code, err.reason, err.field) == (Code.INVALID_ARGUMENT, reason, field)
    assert written(server) == before
    # The well-formed request works: the refusals above were about the one field.
    ok = broker.translate(*(({**GOOD_TRANSLATE, "symbol": held["city-chiyoda"]})[k] for k in (
        "requester_agency", "symbol", "provider_agency", "office_work", "info_item",
        "exchange_id")))
    assert ok.provider_symbol == held["tax-office"]


def test_batch_translate_limits(clients: Clients, held: dict[str, str],
                                server: ServerProcess) -> None:
    req = broker_pb.TranslateSymbolRequest(symbol=held["city-chiyoda"], **GOOD_TRANSLATE)
    before = written(server)
    for batch, reason in (([req] * 1001, "BATCH_TOO_LARGE"), ([], "EMPTY_BATCH")):
        err = call_error(clients.broker().translate_batch, batch)
        assert (err.code, err.reason) == (Code.INVALID_ARGUMENT, reason)
    assert written(server) == before


@pytest.mark.parametrize("symbol", ["", "k1.x", "k1." + "A" * 52])
def test_release_rejects_malformed_symbol(symbol: str, clients: Clients,
                                          server: ServerProcess) -> None:
    before = written(server)
    err = call_error(clients.agency("city-chiyoda").release, symbol)
    assert (err.code, err.reason) == (Code.INVALID_ARGUMENT, "BAD_SYMBOL")
    assert written(server) == before


# -- oversized messages ------------------------------------------------------------------------


def test_oversized_message_is_refused_and_the_server_survives(
        server: ServerProcess, clients: Clients, numbers: NumberSource) -> None:
    n = numbers.one()
    payload = n * (4 * 1024 * 1024 // 12 + 1000)  # > max_message_bytes (4 MiB)
    agency = clients.agency("city-chiyoda")
    before = written(server)
    err = call_error(agency.issue, payload)
    assert err.code == Code.RESOURCE_EXHAUSTED
    assert n not in err.message

    # Mid-stream: the chunk before is acknowledged and durable; the stream ends.
    first = numbers.many(3)
    acked = []
    with pytest.raises(CallError) as info:
        for reply in agency.issue_stream([first, [payload]], timeout=20):
            acked.append(reply)
    assert info.value.code == Code.RESOURCE_EXHAUSTED
    assert written(server)["holdings"] in (before["holdings"], before["holdings"] + 3)

    assert server.running
    assert agency.health() == SERVING
    assert agency.issue(n).newly_registered
    if acked:
        assert [agency.issue(x).symbol for x in first] == \
            [r.issued.symbol for r in acked[0].results]
    assert n not in server.log_text() and n not in server.security_log_text()
