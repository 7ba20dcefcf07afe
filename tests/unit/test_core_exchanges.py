"""Idempotent exchanges, recorded refusals and free-form fields in the core (issue 10
items 5, 6, 8): a real SqliteRegistry and Deriver (the ``env`` of test_core)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import make_number
from test_core import N1, POLICY, Env, _raises

from symbolsvc.core import Core, Resolved, Translated
from symbolsvc.errors import AlreadyExists, InvalidArgument, NotFound
from symbolsvc.exchanges import prior
from symbolsvc.keys import Keyring
from symbolsvc.policy import PolicyHolder
from symbolsvc.records import Outcome
from symbolsvc.registry.sqlite import SqliteRegistry
from symbolsvc.secevents import SECURITY_EVENTS
from symbolsvc.symbols import Deriver


@pytest.fixture
def env(tmp_path: Path, aio: asyncio.Runner) -> Iterator[Env]:
    """test_core's environment: a real SqliteRegistry, Deriver and permission table."""
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


def _count(event: str) -> float:
    return SECURITY_EVENTS.labels(event)._value.get()


def test_translation_replay_returns_the_same_answer_and_record(env: Env) -> None:
    symbol = env.issue("pension-service", N1)
    env.issue("city-a", N1)
    first = env.run.run(env.core.translate(env.tr(symbol, exchange_id="ex-7")))
    again = env.run.run(env.core.translate(env.tr(symbol, exchange_id="ex-7")))
    assert again == first
    batch = env.run.run(env.core.translate_many([env.tr(symbol, exchange_id="ex-7")] * 3))
    assert batch == [first] * 3
    assert len(env.records()) == 1
    found = env.run.run(prior(env.registry, env.deriver, "pension-service", "ex-7"))
    assert found is not None and found.record_id == first.record_id
    # the same id from another requester is another exchange
    assert env.run.run(prior(env.registry, env.deriver, "city-a", "ex-7")) is None


def test_exchange_id_reused_with_other_content(env: Env,
                                               caplog: pytest.LogCaptureFixture) -> None:
    symbol = env.issue("pension-service", N1)
    env.issue("city-a", N1)
    env.issue("city-b", N1)
    env.run.run(env.core.translate(env.tr(symbol, exchange_id="ex-8")))
    before = _count("exchange_id_reused")
    with caplog.at_level(logging.WARNING, "symbolsvc.security"):
        err = _raises(env, env.core.translate(env.tr(symbol, provider="city-b",
                                                     exchange_id="ex-8")),
                      AlreadyExists, "EXCHANGE_ID_REUSED")
        out = env.run.run(env.core.translate_many(
            [env.tr(symbol, exchange_id="ex-9"),
             env.tr(symbol, provider="city-b", exchange_id="ex-8")]))
        _raises(env, env.core.resolve(env.rs(symbol, exchange_id="ex-8")), AlreadyExists,
                "EXCHANGE_ID_REUSED")
    assert err.field == "exchange_id"
    assert isinstance(out[0], Translated)
    assert isinstance(out[1], AlreadyExists) and out[1].field == "requests[1].exchange_id"
    assert _count("exchange_id_reused") == before + 3
    assert [r.getMessage() for r in caplog.records].count(
        "an exchange id was reused for a different exchange; refused") == 3
    assert [r.exchange_id for r in env.records()] == ["ex-8", "ex-9"]


def test_resolution_replay(env: Env) -> None:
    symbol = env.issue("pension-service", N1)
    env.issue("city-a", N1)
    first = env.run.run(env.core.resolve(env.rs(symbol)))
    env.issue("city-c", N1)  # the answer would differ now: a replay gets the first one
    assert env.run.run(env.core.resolve(env.rs(symbol))) == first == Resolved(("city-a",),
                                                                              first.record_id)
    assert len(env.records()) == 1


def test_refused_translation_is_recorded_and_replayed(env: Env) -> None:
    symbol = env.issue("pension-service", N1)
    _raises(env, env.core.translate(env.tr(symbol, exchange_id="ex-n")), NotFound,
            "PROVIDER_NOT_HOLDING")
    (record,) = env.records()
    assert record.outcome is Outcome.PROVIDER_NOT_HOLDING and record.providers == ("city-a",)
    env.issue("city-a", N1)  # a replay keeps the first answer
    _raises(env, env.core.translate(env.tr(symbol, exchange_id="ex-n")), NotFound,
            "PROVIDER_NOT_HOLDING")
    assert len(env.records()) == 1


NUMBER = make_number("31415926535")
FULL_WIDTH = NUMBER.translate({0x30 + d: 0xFF10 + d for d in range(10)})


@pytest.mark.parametrize("value", [NUMBER, f"ex-{NUMBER}-1", f"9{NUMBER}", FULL_WIDTH,
                                   f"x{FULL_WIDTH}"])
@pytest.mark.parametrize("field", ["exchange_id", "office_work", "info_item", "provider"])
def test_free_form_number_refused_never_echoed(env: Env, caplog: pytest.LogCaptureFixture,
                                               field: str, value: str) -> None:
    symbol = env.issue("pension-service", N1)
    env.issue("city-a", N1)
    with caplog.at_level(logging.DEBUG):
        err = _raises(env, env.core.translate(env.tr(symbol, **{field: value})),
                      InvalidArgument, "LOOKS_LIKE_INDIVIDUAL_NUMBER")
        (item,) = env.run.run(env.core.translate_many([env.tr(symbol, **{field: value})]))
        if field != "provider":
            _raises(env, env.core.resolve(env.rs(symbol, **{field: value})), InvalidArgument,
                    "LOOKS_LIKE_INDIVIDUAL_NUMBER")
    wanted = "provider_agency" if field == "provider" else field
    assert err.field == wanted
    assert isinstance(item, InvalidArgument) and item.field == f"requests[0].{wanted}"
    digits = NUMBER[-8:]
    assert digits not in str(err) and digits not in str(item)
    assert all(digits not in r.getMessage() and digits not in str(r.__dict__)
               for r in caplog.records)
    assert env.records() == []


WRONG_CHECK = NUMBER[:11] + str((int(NUMBER[11]) + 1) % 10)


@pytest.mark.parametrize("value", [f"ex-{WRONG_CHECK}", "x" * 128, NUMBER[:11],
                                   "2026-12-06T07:00:00Z-000001"])
def test_free_form_without_a_number_passes(env: Env, value: str) -> None:
    symbol = env.issue("pension-service", N1)
    env.issue("city-a", N1)
    assert isinstance(env.run.run(env.core.translate(env.tr(symbol, exchange_id=value))),
                      Translated)
