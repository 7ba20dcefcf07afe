"""The bench suite's pure parts, without a server: schedules, SLOs and the capacity rule,
mixes and scenarios, HDR percentiles against a reference, merging across processes, and
the compare verdicts."""

from __future__ import annotations

import copy
import math
import random
from pathlib import Path
from typing import Any

import pytest

from bench import schedule as sched
from bench.compare import compare, parse_threshold
from bench.plan import Plan, Requests
from bench.scenario import load_scenario, parse_mix
from bench.stats import Recorder, latency_ms, merge, percentile, summarise


def test_step_and_ramp_schedules() -> None:
    s = sched.steps(100, 500, 200, 2.0)
    assert [seg.rate for seg in s.segments] == [100, 300, 500]
    assert s.duration == 6.0 and s.rate_at(-1) == 100 and s.rate_at(3.0) == 300
    r = sched.ramp(100, 500, 4.0, 4)
    assert len(r.segments) == 4 and r.rate_at(0) == 100 and r.rate_at(2.0) == 300
    assert [seg.rate for seg in r.segments] == [150, 250, 350, 450]
    assert r.scaled(0.5).rate_at(2.0) == 150
    with pytest.raises(ValueError):
        sched.steps(0, 100, 10, 1)


def test_slo_parsing_and_errors() -> None:
    slo = sched.parse_slo("p99<=50ms, errors<=0.1%,p99.9<=0.2s,achieved>=95%")
    assert [(o.metric, o.value) for o in slo] == [
        ("p99", 50.0), ("errors", 0.001), ("p99.9", 200.0), ("achieved", 0.95)]
    for bad in ("p98<=5ms", "p99>=5ms", "errors>=1%", "p99<=5%", "throughput<=1"):
        with pytest.raises(ValueError):
            sched.parse_slo(bad)


def _window(rate: float, p99: float, errors: int = 0, calls: int = 100) -> dict[str, Any]:
    return {"offered_per_s": rate, "calls_per_s": rate, "calls": calls, "error_count": errors,
            "latency_ms": {"p50": p99 / 4, "p99": p99, "p99.9": p99 * 2, "max": p99 * 3}}


def test_capacity_is_the_knee_before_the_first_miss() -> None:
    slo = sched.parse_slo("p99<=50ms,errors<=1%")
    windows = [_window(100, 10), _window(200, 40), _window(300, 80), _window(400, 30),
               _window(500, 20, errors=5)]
    cap = sched.capacity(slo, windows)
    assert cap["offered_per_s"] == 200 and cap["first_miss"] == 2 and cap["bounded"]
    assert cap["highest_met"] == 400  # met again above the knee: noise, reported apart
    assert windows[2]["slo_broken"] == ["p99<=50ms"]
    assert windows[4]["slo_broken"] == ["errors<=1%"]
    every = sched.capacity(slo, [_window(100, 1), _window(200, 2)])
    assert every["offered_per_s"] == 200 and not every["bounded"]
    none = sched.capacity(slo, [_window(100, 90)])
    assert none["offered_per_s"] == 0.0 and none["window"] is None
    both = sched.capacities(slo, {"service": {"windows": [_window(100, 1), _window(200, 90)]},
                                  "baseline": {"windows": [_window(100, 1), _window(200, 2)]}})
    assert both["ratio"] == 0.5


def test_mix_parsing() -> None:
    assert parse_mix("IssueSymbol=60,BatchTranslateSymbols=5:20") == (
        ("IssueSymbol", 60.0, 1), ("BatchTranslateSymbols", 5.0, 20))
    for bad in ("Nope=1", "IssueSymbol=0", "BatchIssueSymbols=1:5000",
                "StreamIssueSymbols=1,IssueSymbol=1"):
        with pytest.raises(ValueError):
            parse_mix(bad)


@pytest.mark.parametrize("name", ["weekday-peak", "onboarding-day"])
def test_shipped_scenarios_load_and_skew(name: str) -> None:
    sc = load_scenario(name)
    assert sc.assumptions and sc.description and sum(w for _, w, _ in sc.mix) == 100
    holders = sc.holders(seed=7)
    assert len(holders) == sc.subjects
    homes = [h[0] for h in holders]
    # Zipf: the largest municipality holds far more subjects than the smallest.
    assert homes.count("muni-0001") > 5 * max(1, homes.count(f"muni-{sc.municipalities:04d}"))
    assert all(len(h) >= 2 for h in holders)  # translate needs two holders


def test_requests_follow_the_mix_weights() -> None:
    sc = load_scenario("weekday-peak")
    plan = Plan(target="", ca=b"", identities={}, mix=sc.mix, mode="open", concurrency=1,
                schedule=sched.const(1, 1), channels=1, start_at=0, warmup=0, max_calls=1,
                max_inflight=1, timeout=1, number_base=12345, issuers=("muni-0001",),
                issuer_weights=(1.0,))
    req = Requests(plan)
    drawn = [req.pick()[0] for _ in range(20_000)]
    share = drawn.count("TranslateSymbol") / len(drawn)
    assert 0.57 < share < 0.63  # weight 60 of 100; 20,000 draws: ~5 sigma either side


def _recorder(samples: list[tuple[float, float]], closed: bool = False) -> Recorder:
    rec = Recorder(["IssueSymbol"], closed, t_measure=100.0, duration=4.0,
                   windows=[(0.0, 2.0), (2.0, 4.0)])
    for t, lat in samples:
        rec.record(0, 100.0 + t, 100.0 + t + lat, (1, 0, 0))
    return rec


def test_hdr_percentiles_agree_with_the_reference_and_merge_across_processes() -> None:
    rng = random.Random(3)
    a = [(rng.uniform(0, 4), rng.lognormvariate(-5, 1.2)) for _ in range(6000)]
    b = [(rng.uniform(0, 4), rng.lognormvariate(-4, 0.8)) for _ in range(4000)]
    digests = [_recorder(a).digest(None), _recorder(b).digest(None)]
    run = summarise(digests, [1.0, 2.0], 4.0, [(0.0, 2.0), (2.0, 4.0)])
    ref = sorted(lat * 1000 for _, lat in a + b)
    assert run["calls"] == 10_000
    for q in (50, 90, 99, 99.9):
        exact = percentile(ref, q)
        assert math.isclose(run["latency_ms"][f"p{q:g}"], exact, rel_tol=2e-3, abs_tol=2e-3)
    assert math.isclose(run["latency_ms"]["max"], ref[-1], rel_tol=2e-3)
    assert sum(w["calls"] for w in run["windows"]) == 10_000
    assert sum(s["calls_per_s"] for s in run["series"]) == 10_000
    # Few samples: the nearest rank, not hdrhistogram's rounded rank (p90 of 116 is the 105th).
    few = [(i / 40, (i + 1) / 1000) for i in range(116)]
    small = summarise([_recorder(few).digest(None)], [1.0, 1.0], 4.0, [(0, 2), (2, 4)])
    assert small["latency_ms"]["p90"] == pytest.approx(105.0, rel=2e-3)
    # Merging the encoded histograms equals one histogram over all samples.
    whole = merge([_recorder(a + b).digest(None)["per_rpc"]["IssueSymbol"]["hist"]])
    assert latency_ms(whole) == run["latency_ms"]


def test_closed_loop_correction_backfills_the_tail() -> None:
    # 99 fast calls and one stall of 1 s, at an expected interval of 10 ms.
    samples = [(i * 0.01, 0.01) for i in range(99)] + [(1.0, 1.0)]
    d = _recorder(samples, closed=True).digest(co_interval_ms=10.0)
    run = summarise([d], [1.0, 1.0], 4.0, [(0.0, 2.0), (2.0, 4.0)])
    assert run["latency_ms_uncorrected"]["p99"] == pytest.approx(10.0, rel=2e-3)
    # The stall hid ~99 calls that would have waited 990, 980, ... ms: the tail shows it.
    assert run["latency_ms"]["p90"] > 400 and run["latency_ms"]["max"] == pytest.approx(
        1000, rel=2e-3)
    assert run["co_interval_ms"] == 10.0


def _report(throughput: float, p50: float, p99: float) -> dict[str, Any]:
    run = {"calls_per_s": 100.0, "items_per_s": 100.0, "per_rpc": {},
           "latency_ms": {"p50": 1.0, "p99": 2.0, "p99.9": 3.0}}
    return {"config": {"mode": "closed", "mix": [], "concurrency": 4, "batch": 1},
            "runs": {"service": run, "baseline": copy.deepcopy(run)},
            "ratios": {"throughput": throughput, "p50": p50, "p99": p99, "p99.9": p99}}


def test_compare_verdicts() -> None:
    old = _report(0.5, 2.0, 3.0)
    rows, warnings = compare(old, old, 0.05)
    assert not warnings and {r["verdict"] for r in rows} == {"same"}
    rows, _ = compare(old, _report(0.45, 2.05, 2.0), 0.05)
    verdict = {r["figure"]: r["verdict"] for r in rows}
    assert verdict == {"throughput ratio": "REGRESSED", "p50 latency ratio": "same",
                       "p99 latency ratio": "improved", "p99.9 latency ratio": "improved"}
    assert parse_threshold("5%") == 0.05 and parse_threshold("0.1") == 0.1
    # With rounds, a median that moved within the overlap of the rounds' ranges is noise.
    a, b = _report(0.5, 2.0, 3.0), _report(0.5, 2.0, 4.0)
    a["rounds"] = [{"runs": a["runs"], "ratios": {**a["ratios"], "p99": v}}
                   for v in (2.5, 3.0, 3.6)]
    b["rounds"] = [{"runs": b["runs"], "ratios": {**b["ratios"], "p99": v}}
                   for v in (3.5, 4.0, 4.4)]
    verdict = {r["figure"]: r["verdict"] for r in compare(a, b, 0.05)[0]}
    assert verdict["p99 latency ratio"] == "same (within the rounds' spread)"
    b["rounds"] = [{"runs": b["runs"], "ratios": {**b["ratios"], "p99": v}}
                   for v in (3.7, 4.0, 4.4)]
    verdict = {r["figure"]: r["verdict"] for r in compare(a, b, 0.05)[0]}
    assert verdict["p99 latency ratio"] == "REGRESSED"


def test_scenario_file_errors_are_precise(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[mix]\nIssueSymbol = 1\nFrobnicate = 2\n')
    with pytest.raises(ValueError, match="Frobnicate"):
        load_scenario(str(bad))
    with pytest.raises(ValueError, match="shipped"):
        load_scenario("no-such-scenario")


def test_soak_windows_read_the_servers_stall_histograms() -> None:
    from bench.soak import _histograms, _window_stats

    def text(lag: tuple[int, int, int], lag_sum: float, gen2: int) -> str:
        le_01, le_1, inf = lag
        return "\n".join([
            "# TYPE symbolsvc_event_loop_lag_seconds histogram",
            f'symbolsvc_event_loop_lag_seconds_bucket{{le="0.1"}} {le_01}',
            f'symbolsvc_event_loop_lag_seconds_bucket{{le="1.0"}} {le_1}',
            f'symbolsvc_event_loop_lag_seconds_bucket{{le="+Inf"}} {inf}',
            f"symbolsvc_event_loop_lag_seconds_count {inf}",
            f"symbolsvc_event_loop_lag_seconds_sum {lag_sum}",
            "# TYPE symbolsvc_gc_pause_seconds histogram",
            'symbolsvc_gc_pause_seconds_count{generation="0"} 99',
            f'symbolsvc_gc_pause_seconds_count{{generation="2"}} {gen2}',
            f'symbolsvc_gc_pause_seconds_sum{{generation="2"}} {gen2 * 0.01}',
        ])

    before = _histograms(text((10, 10, 10), 0.1, 1))
    quiet = _window_stats(before, _histograms(text((14, 14, 14), 0.2, 1)))
    assert quiet == {"loop_lag": {"n": 4, "s": 0.1, "max_le": 0.1}}  # no collection: absent
    stalled = _window_stats(before, _histograms(text((13, 13, 14), 1.6, 3)))
    assert stalled["loop_lag"] == {"n": 4, "s": 1.5, "max_le": float("inf")}
    assert stalled["gc_gen2"] == {"n": 2, "s": 0.02, "max_le": float("inf")}  # no buckets sent


def test_the_primitives_bound_times_the_products_own_per_item_work() -> None:
    """bench.primitives runs the per-item calls of issuance and translation (every tag
    verifies, or it raises) and reports µs per item."""
    from bench import primitives

    result = primitives.measure(items=20, repeat=1)
    assert result["issue_us"] > 0 and result["translate_us"] > 0


def test_the_recorded_floor_writes_and_integrates_what_issuance_writes(tmp_path: Path) -> None:
    """bench.floor.recorded_batch: the holdings, one ISSUE record each, all integrated
    into the tree under a signed checkpoint, through the registry's own functions."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bench.floor import fake_rows, open_floor, recorded_batch
    from symbolsvc.log.integrate import planner
    from symbolsvc.log.sequencer import checkpoint_signer

    conn = open_floor(tmp_path / "floor.db")
    plan = planner(checkpoint_signer("floor.local/access-log", Ed25519PrivateKey.generate()))
    recorded_batch(conn, fake_rows("city-chiyoda", 10), plan)
    recorded_batch(conn, fake_rows("city-chiyoda", 10), plan)
    assert conn.execute("SELECT COUNT(*) FROM holdings").fetchone() == (20,)
    assert conn.execute("SELECT COUNT(*), MIN(leaf_index), MAX(leaf_index) FROM access_records"
                        ).fetchone() == (20, 0, 19)
    assert conn.execute("SELECT MAX(tree_size) FROM checkpoints").fetchone() == (20,)
    conn.close()


def test_soak_sums_the_limit_rejections_over_their_labels() -> None:
    """bench.soak reads the refusals it rode out with prometheus_client's parser, as it
    reads the stall histograms: every label set, nothing but the counter's total, on the
    page prometheus_client itself writes."""
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    from bench.soak import rejections_in

    registry = CollectorRegistry()
    refused = Counter("symbolsvc_limit_rejections_total", "Calls refused by a limit.",
                      ["principal", "limit"], registry=registry)
    assert rejections_in(generate_latest(registry).decode()) == 0.0
    refused.labels("city-a", "rate").inc(3)
    refused.labels("city-b", "concurrency").inc(4)
    Counter("symbolsvc_other_total", "Not a refusal.", registry=registry).inc(100)
    assert rejections_in(generate_latest(registry).decode()) == 7.0
