"""Network-free pieces of issue 11: the limiter, its configuration, and the bodies marker."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from symbolsvc.bodies import UNDECODABLE, BadBodies, lenient
from symbolsvc.errors import ConfigError
from symbolsvc.limits import Limiter, LimitExceeded, parse_limits
from symbolsvc.v1 import symbol_service_pb2 as pb

AGENCY = frozenset({"agency"})
M = "/symbolsvc.v1.SymbolService/IssueSymbol"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"


def limiter(doc: dict | None = None, server_max: int = 100) -> Limiter:
    return Limiter(parse_limits(doc or {}, Path("config.toml")), server_max)


def test_concurrent_calls_and_streams_are_separate_budgets() -> None:
    lim = limiter({"roles": {"agency": {"concurrent_calls": 2, "streams": 1}}})
    calls = [lim.admit("a", AGENCY, M, stream=False, items=1) for _ in range(2)]
    with pytest.raises(LimitExceeded) as info:
        lim.admit("a", AGENCY, M, stream=False, items=1)
    assert info.value.reason == "CONCURRENT_CALLS_LIMIT" and info.value.retry_after > 0
    stream = lim.admit("a", AGENCY, M, stream=True, items=1)
    with pytest.raises(LimitExceeded, match="streams open"):
        lim.admit("a", AGENCY, M, stream=True, items=1)
    lim.admit("b", AGENCY, M, stream=False, items=1).release()  # another principal: fine
    calls[0].release()
    calls[0].release()  # idempotent
    lim.admit("a", AGENCY, M, stream=False, items=1).release()
    stream.release()
    calls[1].release()
    assert lim.in_flight == 0


def test_server_cap_spares_health() -> None:
    lim = limiter(server_max=2)
    held = [lim.admit(n, AGENCY, M, stream=False, items=1) for n in ("a", "b")]
    with pytest.raises(LimitExceeded) as info:
        lim.admit("c", AGENCY, M, stream=False, items=1)
    assert info.value.reason == "SERVER_CALLS_LIMIT"
    watch = lim.admit("c", AGENCY, HEALTH_WATCH, stream=True, items=1)
    assert lim.in_flight == 2
    watch.release()
    for h in held:
        h.release()
    assert lim.in_flight == 0


def test_token_bucket_admits_a_full_batch_then_goes_into_debt() -> None:
    lim = limiter({"principals": {"a": {"rate": 1, "burst": 1000}}})
    lim.admit("a", AGENCY, M, stream=False, items=999).release()
    lim.admit("a", AGENCY, M, stream=False, items=1000).release()  # one token left: admitted
    with pytest.raises(LimitExceeded) as info:
        lim.admit("a", AGENCY, M, stream=False, items=1)
    assert info.value.reason == "RATE_LIMIT" and info.value.retry_after > 900


def test_refusals_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    lim = limiter({"roles": {"agency": {"streams": 1}}})
    lim.admit("a", AGENCY, M, stream=True, items=1)
    with caplog.at_level(logging.WARNING, logger="symbolsvc.security"):
        for _ in range(50):
            with pytest.raises(LimitExceeded):
                lim.admit("a", AGENCY, M, stream=True, items=1)
    assert len([r for r in caplog.records if r.msg == "call refused: over a limit"]) == 1


def test_principal_overrides_merge_over_the_role() -> None:
    cfg = parse_limits({"principals": {"broker": {"rate": 5}}}, Path("c"))
    b = cfg.budget("broker", frozenset({"broker"}))
    assert (b.rate, b.concurrent_calls) == (5, 256)
    both = cfg.budget("x", frozenset({"agency", "portal"}))
    assert both.streams == 512 and both.concurrent_calls == 64


def test_a_rate_below_one_item_per_second_is_kept() -> None:
    """0.01 items/s was once truncated to 0 (a division by zero, INTERNAL, per call)."""
    cfg = parse_limits({"principals": {"a": {"rate": 0.01}},
                        "roles": {"agency": {"rate": 0.5}}}, Path("c"))
    assert cfg.budget("a", frozenset({"agency"})).rate == 0.01
    assert cfg.budget("b", frozenset({"agency"})).rate == 0.5
    limiter = Limiter(cfg, 100)
    limiter.admit("a", frozenset({"agency"}), "/m", stream=False, items=2000).release()
    with pytest.raises(LimitExceeded) as info:
        limiter.admit("a", frozenset({"agency"}), "/m", stream=False, items=1)
    assert info.value.retry_after > 50


@pytest.mark.parametrize("doc", [
    {"roles": {"agency": {"rate": 0}}},
    {"roles": {"agency": {"burst": 999}}},
    {"roles": {"agency": {"nonsense": 1}}},
    {"roles": {"wizard": {}}},
    {"principals": {"a": {"streams": True}}},
    {"principals": {"a": {"concurrent_calls": 2.5}}},
    {"stream_idle_seconds": -1},
    {"typo": 1},
    {"roles": []},
])
def test_bad_limits_are_refused(doc: dict) -> None:
    with pytest.raises(ConfigError):
        parse_limits(doc, Path("c"))


def test_lenient_decoding_and_quiet_rejection(caplog: pytest.LogCaptureFixture) -> None:
    decode = lenient(pb.IssueSymbolRequest.FromString)
    assert decode is not None
    assert decode(b"\xff") is UNDECODABLE
    assert decode(b"").individual_number == ""
    bodies = BadBodies()
    with caplog.at_level(logging.WARNING, logger="symbolsvc.security"):
        errs = [bodies.reject("a", M) for _ in range(20)]
    assert {e.reason for e in errs} == {"MALFORMED_REQUEST"}
    assert len(caplog.records) == 1
    assert not any(r.exc_info for r in caplog.records)


def test_refusals_over_concurrent_calls_back_off_while_they_keep_coming(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The pushback doubles with each refusal within a second of the last (to 1 s, with
    jitter of up to half), and is short again after a quiet second."""
    import symbolsvc.limits as limits

    clock = [1000.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: clock[0])
    lim = limiter({"roles": {"agency": {"concurrent_calls": 1}}})
    held = lim.admit("a", AGENCY, M, stream=False, items=1)

    def refused() -> float:
        with pytest.raises(LimitExceeded) as info:
            lim.admit("a", AGENCY, M, stream=False, items=1)
        clock[0] += 0.01
        return info.value.retry_after

    delays = [refused() for _ in range(8)]
    for n, d in enumerate(delays):
        full = min(1.0, 0.05 * 2 ** n)
        assert full / 2 <= d <= full
    clock[0] += 1.5
    assert 0.025 <= refused() <= 0.05
    refused()  # a's streak grows again; b's is its own:
    other = lim.admit("b", AGENCY, M, stream=False, items=1)
    with pytest.raises(LimitExceeded) as info:
        lim.admit("b", AGENCY, M, stream=False, items=1)
    assert 0.025 <= info.value.retry_after <= 0.05
    other.release()
    held.release()
