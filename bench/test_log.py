"""Access log benchmarks (pytest-benchmark): append, integration, proofs at 1M+ leaves.

    python -m pytest bench/test_log.py --benchmark-only
    SYMBOLSVC_BENCH_LOG_SIZES=1000000,10000000 python -m pytest bench/test_log.py -k proof

* ``test_append_records`` — the request path's cost: 1,000 records appended in
  one durable commit (the group commit a burst of translations gets).
* ``test_integrate_batch`` — one sequencer step over 10,000 queued records: leaf
  indices, tree nodes, frontier and a signed checkpoint in ONE transaction.
* ``test_inclusion_proof`` / ``test_consistency_proof`` — the AuditService path
  (:class:`symbolsvc.log.service.AccessLog`: latest checkpoint, node ids, one
  ``tree_nodes`` read, combine) for a random leaf of a tree of N leaves. The
  tree is built directly with :class:`~symbolsvc.log.compact.Frontier` into a
  registry file (cached per size under the pytest cache directory); the figure
  should grow with log2(N), not N. Sizes default to 1M and 4M (building 10M
  takes minutes and ~1.5 GB here); set SYMBOLSVC_BENCH_LOG_SIZES to change them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from symbolsvc.log.compact import Frontier
from symbolsvc.log.integrate import planner
from symbolsvc.log.proofs import inclusion_proof_nodes
from symbolsvc.log.sequencer import checkpoint_signer
from symbolsvc.log.service import AccessLog
from symbolsvc.registry import NewRecord
from symbolsvc.registry.sqlite import SqliteRegistry

ORIGIN = "bench.local/access-log"
SIGN = checkpoint_signer(ORIGIN, Ed25519PrivateKey.generate())
SIZES = [int(s) for s in os.environ.get("SYMBOLSVC_BENCH_LOG_SIZES",
                                        "1000000,4000000").split(",")]


def _record(i: int) -> NewRecord:
    leaf = b"\x01\x01" + i.to_bytes(8, "big") + b"\x00" * 60 + hashlib.sha256(b"%d" % i).digest()
    return NewRecord(leaf, hashlib.sha256(b"p%d" % (i % 1000)).digest(), b"\x01" + b"s" * 60)


@pytest.fixture
def registry(tmp_path: Path, loop: asyncio.AbstractEventLoop) -> Iterator[SqliteRegistry]:
    reg = SqliteRegistry(tmp_path / "log.db")
    yield reg
    loop.run_until_complete(reg.close())


def test_append_records(benchmark, registry: SqliteRegistry,  # type: ignore[no-untyped-def]
                        loop: asyncio.AbstractEventLoop) -> None:
    counter = iter(range(10**9))

    def append() -> None:
        start = next(counter) * 1000
        loop.run_until_complete(registry.append_records([_record(start + i)
                                                         for i in range(1000)]))

    benchmark.pedantic(append, rounds=20, iterations=1, warmup_rounds=1)
    benchmark.extra_info["records_per_round"] = 1000


def test_integrate_batch(benchmark, registry: SqliteRegistry,  # type: ignore[no-untyped-def]
                         loop: asyncio.AbstractEventLoop) -> None:
    counter = iter(range(10**9))
    batch = 10_000

    def setup() -> tuple[tuple[()], dict[str, object]]:
        start = next(counter) * batch
        recs = [_record(start + i) for i in range(batch)]
        for k in range(0, batch, 1000):
            loop.run_until_complete(registry.append_records(recs[k:k + 1000]))
        return (), {}

    def integrate() -> None:
        result = loop.run_until_complete(
            registry.integrate(batch, "bench", 60_000, planner(SIGN)))
        assert result.integrated == batch

    benchmark.pedantic(integrate, setup=setup, rounds=8, iterations=1, warmup_rounds=1)
    benchmark.extra_info["records_per_round"] = batch


# -- proofs on large trees ----------------------------------------------------------


def _build(path: Path, size: int) -> None:
    """A registry file whose log holds ``size`` leaves: tree_nodes, log_state, a checkpoint.

    Leaf hashes stand in for leaves (the proof path never reads access_records)."""
    tmp = path.with_suffix(".building")
    tmp.unlink(missing_ok=True)
    asyncio.run(SqliteRegistry(tmp).close())  # the schema
    db = sqlite3.connect(tmp, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    frontier = Frontier()
    chunk: list[tuple[int, int, bytes]] = []
    sha = hashlib.sha256
    for i in range(size):
        chunk.extend(frontier.append(sha(b"\x00" + i.to_bytes(8, "big")).digest()))
        if len(chunk) >= 200_000:
            db.executemany("INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)", chunk)
            chunk.clear()
    db.executemany("INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)", chunk)
    db.execute("INSERT INTO log_state (id, tree_size, frontier) VALUES (1, ?, ?)",
               (size, frontier.to_bytes()))
    db.execute("INSERT INTO checkpoints (tree_size, note, signed_at_us) VALUES (?, ?, 0)",
               (size, SIGN(size, frontier.root())))
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    tmp.rename(path)
    for suffix in ("-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)


@pytest.fixture(scope="module", params=SIZES, ids=lambda n: f"{n // 1_000_000}M")
def big_log(request: pytest.FixtureRequest) -> tuple[int, Path]:
    size: int = request.param
    cache = Path(request.config.cache.mkdir("symbolsvc-log-bench"))  # type: ignore[union-attr]
    path = cache / f"log-{size}.db"
    if not path.exists():
        _build(path, size)
    return size, path


def _access_log(path: Path) -> tuple[AccessLog, SqliteRegistry]:
    reg = SqliteRegistry(path)
    return AccessLog(reg), reg


def test_inclusion_proof(benchmark, big_log: tuple[int, Path],  # type: ignore[no-untyped-def]
                         loop: asyncio.AbstractEventLoop) -> None:
    size, path = big_log
    log, reg = _access_log(path)
    rng = random.Random(1)

    def prove() -> list[bytes]:
        return loop.run_until_complete(log.inclusion_proof(rng.randrange(size), size))

    proof = benchmark.pedantic(prove, rounds=2000, iterations=1, warmup_rounds=50)
    benchmark.extra_info["tree_size"] = size
    benchmark.extra_info["proof_hashes"] = len(proof)
    benchmark.extra_info["nodes_read_max"] = max(
        sum(len(s.ids) for s in inclusion_proof_nodes(i, size))
        for i in (0, size // 3, size - 1))
    loop.run_until_complete(reg.close())


def test_consistency_proof(benchmark, big_log: tuple[int, Path],  # type: ignore[no-untyped-def]
                           loop: asyncio.AbstractEventLoop) -> None:
    size, path = big_log
    log, reg = _access_log(path)
    rng = random.Random(2)

    def prove() -> list[bytes]:
        return loop.run_until_complete(log.consistency_proof(rng.randrange(1, size), size))

    proof = benchmark.pedantic(prove, rounds=2000, iterations=1, warmup_rounds=50)
    benchmark.extra_info["tree_size"] = size
    benchmark.extra_info["proof_hashes"] = len(proof)
    loop.run_until_complete(reg.close())
