"""PostgreSQL vs SQLite vs the empty-handler baseline, 1 and 2 replicas (issue 5).

    python -m pytest bench/test_postgres.py -s          # the whole matrix, ~5 min
    SYMBOLSVC_BENCH_SECONDS=3 python -m pytest bench/test_postgres.py -s   # quicker

Each case runs ``bench.load --spawn --baseline`` (same load on the empty-handler
server and on symbolsvc, ratios quoted against the baseline of the same run) on
one deployment whose ``[storage] url`` is either a fresh SQLite file or a fresh
PostgreSQL database. "2 replicas" is ``serve --workers 2``: two full server
processes (each with its own connection pool, group committer and sequencer
competing for the lease) behind one port, which is what two replicas behind a
load balancer are to the database. The table (items/s, ratio to baseline, ratio
to SQLite with the same replica count) is printed and written to
``$SYMBOLSVC_BENCH_OUT/symbolsvc-postgres-bench.md`` and ``.json`` (default: the
system temp directory). No speed is asserted: machines differ.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from helpers.postgres import fresh_database, init_deployment, require_postgres  # noqa: E402

SECONDS = float(os.environ.get("SYMBOLSVC_BENCH_SECONDS", "8"))
CASES = [(rpc, replicas) for rpc in ("IssueSymbol", "TranslateSymbol") for replicas in (1, 2)]
RESULTS: dict[str, Any] = {}


def _run(deployment: Path, rpc: str, workers: int, out: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.load", "--deployment", str(deployment), "--spawn",
         "--baseline", "--workers", str(workers), "--rpc", rpc, "--concurrency", "64",
         "--processes", "2", "--channels", "4", "--warmup", "2", "--duration", str(SECONDS),
         "--population", "2000", "--json", str(out), "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize(("rpc", "replicas"), CASES)
def test_postgres_against_sqlite_and_baseline(tmp_path: Path, rpc: str, replicas: int) -> None:
    require_postgres()
    agencies = ["city-chiyoda", "city-minato"]
    row: dict[str, Any] = {}
    sqlite_dep = tmp_path / "sqlite"
    init_deployment(sqlite_dep, "sqlite:data/registry.db", agencies)
    row["sqlite"] = _run(sqlite_dep, rpc, replicas, tmp_path / "sqlite.json")
    with fresh_database() as url:
        pg_dep = tmp_path / "pg"
        init_deployment(pg_dep, url, agencies)
        row["postgres"] = _run(pg_dep, rpc, replicas, tmp_path / "pg.json")
    RESULTS[f"{rpc} x{replicas}"] = row
    for backend, report in row.items():
        assert report["runs"]["service"]["errors"] == {}, (backend, report["runs"]["service"])
    _write()


def _figures(report: dict[str, Any]) -> tuple[float, float, float, float]:
    svc, base = report["runs"]["service"], report["runs"]["baseline"]
    return (svc["items_per_s"], base["items_per_s"], report["ratios"]["throughput"],
            svc["latency_ms"]["p99"])


def _write() -> None:
    lines = ["| RPC x replicas | backend | items/s | baseline items/s | ÷ baseline | "
             "÷ SQLite | p99 ms |", "|---|---|---:|---:|---:|---:|---:|"]
    for case, row in RESULTS.items():
        sqlite_rate = _figures(row["sqlite"])[0]
        for backend in ("sqlite", "postgres"):
            rate, base, ratio, p99 = _figures(row[backend])
            lines.append(f"| {case} | {backend} | {rate:,.0f} | {base:,.0f} | {ratio:.2f} | "
                         f"{rate / sqlite_rate:.2f} | {p99:.1f} |")
    table = "\n".join(lines)
    print("\n" + table)
    out = Path(os.environ.get("SYMBOLSVC_BENCH_OUT", tempfile.gettempdir()))
    (out / "symbolsvc-postgres-bench.md").write_text(table + "\n")
    (out / "symbolsvc-postgres-bench.json").write_text(json.dumps(RESULTS, indent=1, default=str))
