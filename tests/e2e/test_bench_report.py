"""The load generator against real servers, briefly: each schedule, a shipped scenario,
the report's structure, percentiles against the recorded samples, the HTML page in a
real headless Chromium, and ``compare`` catching an injected regression.

No speed is asserted (the machine is shared): only structure, agreement between the
histograms and the raw samples, and verdicts whose direction is fixed by construction
(a server that sleeps 150 ms per call against one that does not).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import browser
from bench.servers import Spawned, spawn_baseline
from bench.stats import percentile
from symbolsvc.deploy import init_deployment

ROOT = Path(__file__).resolve().parents[2]
QUICK = ["--processes", "2", "--channels", "2", "--warmup", "0.5", "--quiet", "--samples"]


def bench(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "bench.load", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def assert_percentiles_match_samples(run: dict[str, Any], corrected: bool = False) -> None:
    """The merged HDR histograms' percentiles are within HDR's 3-digit precision of the
    nearest-rank percentiles of every recorded sample (all client processes)."""
    ref = sorted(v * 1000 for v in run["samples_s"])
    assert len(ref) == run["calls"] > 0
    lat = run["latency_ms_uncorrected"] if corrected else run["latency_ms"]
    for q in (50, 90, 99, 99.9):
        exact = percentile(ref, q)
        assert math.isclose(lat[f"p{q:g}"], exact, rel_tol=2e-3, abs_tol=2e-3), (q, lat, exact)
    assert math.isclose(lat["max"], ref[-1], rel_tol=2e-3, abs_tol=2e-3)


@pytest.fixture(scope="module")
def step_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    """One step run (3 steps) against symbolsvc and the baseline, HTML and charts, with an
    SLO no server meets over TLS (p99 <= 1 µs), so that the search's path is fixed by
    construction: every step misses, and one bisection probe (10/s) misses too."""
    out = tmp_path_factory.mktemp("step")
    bench("--deployment", str(out / "dep"), "--spawn", "--baseline", "--rpc", "IssueSymbol",
          "--schedule", "step", "--rate-start", "20", "--rate-step", "20", "--rate-end", "60",
          "--step-duration", "1", "--slo", "p99<=0.001ms,errors<=1%", "--refine", "1", *QUICK,
          "--json", str(out / "r.json"), "--html", str(out / "r.html"),
          "--charts", str(out / "charts"), "--markdown", str(out / "r.md"))
    yield json.loads((out / "r.json").read_text()), out


def test_step_schedule_report(step_run: tuple[dict[str, Any], Path]) -> None:
    report, out = step_run
    assert report["config"]["schedule"]["kind"] == "step"
    assert set(report["runs"]) == {"baseline", "service"}
    for label, run in report["runs"].items():
        assert run["errors"] == {} and run["calls"] > 0, label
        assert [w["offered_per_s"] for w in run["windows"]] == [20, 40, 60]
        assert sum(w["calls"] for w in run["windows"]) == run["calls"]
        assert len(run["series"]) == 3 and run["distribution"]
        srv = run["server"]
        assert srv["rss_mb"] > 0 and srv["series"] and srv["threads_cpu_s"]
        assert all(isinstance(x["cpu_pct"], dict) for x in srv["series"])
        assert_percentiles_match_samples(run)
        assert all(w["slo_broken"] == ["p99<=0.001ms"] for w in run["windows"])
        cap = report["capacity"][label]
        assert cap["slo"] == "p99<=0.001ms,errors<=1%"
        assert cap["offered_per_s"] == 0.0 and cap["first_miss"] == 0 and cap["bounded"]
        probes = cap["refined"]["probes"]
        assert [p["offered_per_s"] for p in probes] == [10.0]
        assert probes[0]["slo_broken"] == ["p99<=0.001ms"] and probes[0]["calls_per_s"] > 0
        assert cap["refined"]["offered_per_s"] == 0.0
    assert report["capacity"]["ratio"] is None  # no baseline capacity to divide by
    md = (out / "r.md").read_text()
    assert "| offered calls/s |" in md and "capacity under SLO" in md
    names = {p.name for p in (out / "charts").iterdir()}
    for chart in ("throughput", "latency-over-time", "latency-distribution",
                  "latency-vs-load", "server"):
        assert {f"{chart}.png", f"{chart}.svg"} <= names
    # the saved report renders again on its own
    bench("report", str(out / "r.json"), "--html", str(out / "again.html"))
    assert (out / "again.html").read_text().count("<figure class=chart") == 5


def test_html_report_renders_in_headless_chromium(step_run: tuple[dict[str, Any], Path]) -> None:
    _, out = step_run
    if not browser.available():
        message = "needs Debian's chromium and chromium-driver (.ci/run installs them)"
        if os.environ.get("SYMBOLSVC_NO_SKIPS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    page = (out / "r.html").read_text()
    # Self-contained: nothing that loads or runs anything from elsewhere.
    for forbidden in ("<script", "<link", "<img", "<iframe", "src=", 'href="http', "@import"):
        assert forbidden not in page, forbidden
    assert not re.search(r"url\((?!#)", page)  # only the page's own clip paths
    result = browser.check_page(out / "r.html", out / "shot.png")
    assert result.console_errors == []
    ids = {c[0] for c in result.charts}
    assert ids == {"chart-throughput", "chart-latency-over-time", "chart-latency-distribution",
                   "chart-latency-vs-load", "chart-server"}
    assert all(w > 100 and h > 100 for _, w, h in result.charts)
    assert {"summary", "per-rpc", "windows", "threads"} <= set(result.tables)
    assert (out / "shot.png").stat().st_size > 10_000


def test_ramp_schedule(tmp_path: Path) -> None:
    bench("--deployment", str(tmp_path / "dep"), "--spawn", "--rpc", "TranslateSymbol",
          "--population", "50", "--schedule", "ramp", "--rate-start", "10", "--rate-end",
          "50", "--duration", "2", "--ramp-windows", "4", *QUICK, "--json",
          str(tmp_path / "r.json"))
    run = json.loads((tmp_path / "r.json").read_text())["runs"]["service"]
    assert [w["offered_per_s"] for w in run["windows"]] == [15, 25, 35, 45]
    assert run["errors"] == {} and run["calls"] > 0
    assert "latency_ms_uncorrected" not in run  # open loop: nothing to correct
    assert_percentiles_match_samples(run)


def test_closed_loop_is_corrected_for_coordinated_omission(tmp_path: Path) -> None:
    bench("--deployment", str(tmp_path / "dep"), "--spawn", "--rpc", "ListAccessRecords",
          "--population", "30", "--concurrency", "4", "--duration", "1.5", *QUICK,
          "--json", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text())
    run = report["runs"]["service"]
    assert report["config"]["mode"] == "closed" and run["errors"] == {}
    assert run["co_interval_ms"] > 0
    assert_percentiles_match_samples(run, corrected=True)
    # The correction only adds samples (below each stall), never a larger maximum.
    assert run["co_backfilled"] >= 0
    assert run["latency_ms"]["max"] == run["latency_ms_uncorrected"]["max"]


def test_shipped_scenario_runs(tmp_path: Path) -> None:
    bench("--deployment", str(tmp_path / "dep"), "--spawn", "--scenario", "weekday-peak",
          "--rate", "0", "--concurrency", "4", "--duration", "1.5", *QUICK,
          "--json", str(tmp_path / "r.json"))
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["scenario"]["name"] == "weekday-peak" and report["scenario"]["assumptions"]
    assert report["setup"]["subjects"] == 5000
    run = report["runs"]["service"]
    assert run["errors"] == {} and run["item_errors"] == 0 and run["calls"] > 0
    assert set(run["per_rpc"]) == {"TranslateSymbol", "BatchTranslateSymbols",
                                   "ResolveProviders", "IssueSymbol", "ListAccessRecords"}
    assert sum(x["calls"] for x in run["per_rpc"].values()) == run["calls"]
    assert_percentiles_match_samples(run, corrected=True)


@pytest.fixture
def two_baselines(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A deployment, its empty-handler server, and one that sleeps 150 ms per call."""
    dep = tmp_path / "dep"
    init_deployment(dep, [])
    fast = spawn_baseline(dep, 1, label="fast")
    slow: Spawned | None = None
    try:
        slow = spawn_baseline(dep, 1, delay_ms=150, label="slow")
        yield dep, fast.address, slow.address
    finally:
        fast.stop()
        if slow is not None:
            slow.stop()


def test_compare_flags_an_injected_regression(two_baselines: tuple[Path, str, str],
                                              tmp_path: Path) -> None:
    dep, fast, slow = two_baselines
    for name, target in (("old", fast), ("new", slow)):
        bench("--deployment", str(dep), "--target", target, "--baseline", "--rpc",
              "IssueSymbol", "--concurrency", "4", "--duration", "1.5", *QUICK,
              "--json", str(tmp_path / f"{name}.json"))
    old, new = str(tmp_path / "old.json"), str(tmp_path / "new.json")
    same = bench("compare", old, old, "--threshold", "5%", check=False)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "no figure regressed" in same.stdout
    worse = bench("compare", old, new, "--threshold", "5%", "--json",
                  str(tmp_path / "cmp.json"), check=False)
    assert worse.returncode == 1, worse.stdout + worse.stderr
    rows = {r["figure"]: r for r in json.loads((tmp_path / "cmp.json").read_text())["rows"]}
    assert rows["p50 latency ratio"]["verdict"] == "REGRESSED"
    assert rows["p50 latency ratio"]["new"] > rows["p50 latency ratio"]["old"]
    assert "**REGRESSED**" in worse.stdout
    bad = bench("compare", old, str(tmp_path / "missing.json"), check=False)
    assert bad.returncode == 2
