"""The load generator still runs: 200 calls against a spawned server and the baseline.

No speed is asserted (this machine is shared); the test keeps bench/ from
rotting by checking that both phases ran, every call succeeded, and the JSON
report has its fields.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.servers import Spawned
from symbolsvc.deploy import init_deployment

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("rpc", ["IssueSymbol", "TranslateSymbol"])
def test_load_generator_smoke(tmp_path: Path, rpc: str) -> None:
    deployment = tmp_path / "dep"
    init_deployment(deployment, [])
    out = tmp_path / "report.json"
    md = tmp_path / "report.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.load", "--deployment", str(deployment), "--spawn",
         "--baseline", "--rpc", rpc, "--concurrency", "8", "--processes", "1",
         # The run ends by count (200 calls), not by time, and has no warm-up: every call is
         # measured, so however slow the machine, each phase has calls to report.
         "--channels", "2", "--warmup", "0", "--duration", "300", "--max-calls", "200",
         "--population", "50",
         "--json", str(out), "--markdown", str(md), "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["config"]["rpc"] == rpc
    assert set(report["runs"]) == {"baseline", "service"}
    for label, run in report["runs"].items():
        assert run["calls"] > 0, label
        assert run["errors"] == {}, (label, run["errors"])
        assert run["item_errors"] == 0
        lat = run["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert run["calls_per_s"] > 0 and run["items_per_s"] >= run["calls_per_s"]
        assert run["server"]["rss_mb"] > 0
    assert report["runs"]["service"]["not_new"] == 0  # every issue was a new holding
    assert report["ratios"]["throughput"] > 0 and report["ratios"]["p99"] > 0
    assert report["machine"]["nproc"] >= 1
    assert "| service |" in md.read_text()


@pytest.mark.parametrize("variant", ["nosync", "inline", "norecords"])
def test_the_ceiling_servers_answer_correctly(tmp_path: Path, variant: str) -> None:
    """bench.ceilings' servers (the service with a storage cost patched out) serve the
    same calls as the shipped one without an error: a ceiling of a broken server would
    measure nothing. TranslateSymbol reads, writes records and signs receipts."""
    deployment = tmp_path / "dep"
    init_deployment(deployment, [])
    server = Spawned.start(variant, [sys.executable, "-m", "bench.variant_server", variant,
                                     "serve", "--config", str(deployment / "config.toml"),
                                     "--listen", "127.0.0.1:0"])
    out = tmp_path / "report.json"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.load", "--deployment", str(deployment),
             "--target", server.address, "--rpc", "TranslateSymbol", "--concurrency", "4",
             "--processes", "1", "--channels", "1", "--warmup", "0", "--duration", "300",
             "--max-calls", "100", "--population", "20", "--json", str(out), "--quiet"],
            cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = json.loads(out.read_text())["runs"]["service"]
    assert run["calls"] > 0 and run["errors"] == {} and run["item_errors"] == 0


def test_the_in_process_translate_row_runs_under_a_ceiling_variant(tmp_path: Path) -> None:
    """bench.ceilings' row 5: Core.translate_many in a process with the variant's patch
    (here the write runs inline on the loop, without fsync) reports µs per item."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.variant_server", "inline", "translate-row",
         str(tmp_path), "1"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (us,) = json.loads(proc.stdout)
    assert us > 0
