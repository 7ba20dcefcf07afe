"""The storage floor: a batch issuance's rows, written straight into the registry's schema.

What ``BatchIssueSymbols`` of 1,000 new numbers must do on the disk, with
nothing else: open the registry's own schema (its migrations,
``symbolsvc/registry/migrations/sqlite/``) with the registry's durability (WAL, ``synchronous =
FULL``, so each COMMIT fsyncs), then per batch one ``BEGIN IMMEDIATE``, the
registry's own upsert statement per row (its row count is what tells a new
holding from an old one), one COMMIT. Rows have the real sizes: a 55-character
symbol (``k1.`` + 52 base32 characters of a random 32-byte value, which is what
an HMAC output looks like) and a 61-byte sealed subject reference.

The same inserter pre-fills a deployment's registry with millions of holdings
for the large-registry benchmark (without gRPC and without derivation, which
would take hours and measure nothing about the registry's size):

    python -m bench.floor prefill --deployment DIR --holdings 10000000
"""

from __future__ import annotations

import argparse
import base64
import os
import sqlite3
import sys
import time
from pathlib import Path

from symbolsvc.registry import NewHolding, NewRecord, PlanFn
from symbolsvc.registry import sqlite_sql as sql
from symbolsvc.registry.migrations import migrations

# The statement SqliteRegistry uses for issuance (symbolsvc/registry/sqlite.py).
UPSERT = (
    "INSERT INTO holdings (agency, symbol, sealed_subject) VALUES (?, ?, ?) "
    "ON CONFLICT (agency, symbol) DO UPDATE SET released = 0 WHERE released = 1"
)
SEALED_LEN = 1 + 12 + 32 + 16  # version || nonce || AES-GCM-SIV(subject id) || tag


def schema_sql() -> str:
    """The registry's whole SQLite schema: its migrations, in order."""
    return "\n".join(m.sql for m in migrations("sqlite"))


def open_floor(path: Path, *, cache_mib: int = 0) -> sqlite3.Connection:
    """A connection with the registry's schema and durability (WAL, synchronous=FULL)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] != "wal":
        raise RuntimeError(f"{path}: cannot use WAL")
    conn.execute("PRAGMA synchronous = FULL")
    if cache_mib:
        conn.execute(f"PRAGMA cache_size = -{cache_mib * 1024}")
    conn.executescript(schema_sql())
    if conn.execute("SELECT 1 FROM meta WHERE key = 'schema_version'").fetchone() is None:
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '1')")
    return conn


def fake_rows(agency: str, n: int) -> list[tuple[str, str, bytes]]:
    """``n`` holdings of one agency with real-sized, random (HMAC-like) symbols."""
    rows = []
    for _ in range(n):
        digest = os.urandom(32)
        symbol = "k1." + base64.b32encode(digest).decode("ascii").rstrip("=").lower()
        rows.append((agency, symbol, b"\x01" + os.urandom(SEALED_LEN - 1)))
    return rows


def insert_batch(conn: sqlite3.Connection, rows: list[tuple[str, str, bytes]]) -> list[bool]:
    """One durable transaction, one upsert per row, as a batch issuance does it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        execute = conn.execute
        fresh = [execute(UPSERT, row).rowcount == 1 for row in rows]
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return fresh


RECORD_LEAF_LEN = 65  # an ISSUE record: kind, time, the agency, empty fields, pseudonym


def recorded_batch(conn: sqlite3.Connection, rows: list[tuple[str, str, bytes]],
                   plan: PlanFn) -> None:
    """What a batch issuance writes with the features every issued item carries, through
    the registry's own functions (``symbolsvc.registry.sqlite_sql``) and nothing else:
    one durable transaction for the holdings and their ISSUE records (random, real-sized
    leaves, pseudonyms and sealed references, untagged), then one sequencer step that
    integrates them (leaf indices, tree nodes, frontier, a signed checkpoint)."""
    holdings = [NewHolding(agency, symbol, sealed, NewRecord(
        os.urandom(RECORD_LEAF_LEN), os.urandom(32), b"\x01" + os.urandom(SEALED_LEN - 1)))
        for agency, symbol, sealed in rows]
    for step in (lambda: sql.issue_merged(conn, [holdings]),
                 lambda: sql.integrate(conn, len(rows), "floor", 60_000, plan)):
        conn.execute("BEGIN IMMEDIATE")
        try:
            step()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def prefill(db: Path, holdings: int, agencies: list[str], *, batch: int = 50_000,
            cache_mib: int = 1024, progress: bool = True) -> float:
    """Add ``holdings`` random holdings spread over ``agencies``; return seconds taken.

    Batches are sorted by key so that each transaction touches the B-tree in
    order (the finished file is the same; it is only faster to build).
    """
    conn = open_floor(db, cache_mib=cache_mib)
    t0 = time.monotonic()
    done = 0
    try:
        while done < holdings:
            k = min(batch, holdings - done)
            rows = []
            for i, agency in enumerate(agencies):
                share = k // len(agencies) + (1 if i < k % len(agencies) else 0)
                rows += fake_rows(agency, share)
            rows.sort()
            insert_batch(conn, rows)
            done += k
            if progress:
                rate = done / (time.monotonic() - t0)
                print(f"\r  prefill: {done:,}/{holdings:,} holdings, {rate:,.0f}/s",
                      end="", file=sys.stderr, flush=True)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    if progress:
        print(file=sys.stderr)
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prefill", help="add random holdings to a deployment's SQLite registry")
    p.add_argument("--deployment", required=True, type=Path)
    p.add_argument("--holdings", required=True, type=int)
    p.add_argument("--agencies", default="city-chiyoda,city-minato,pension-service,tax-office",
                   help="comma-separated agencies to spread the holdings over")
    p.add_argument("--batch", type=int, default=50_000, help="rows per transaction")
    args = parser.parse_args(argv)
    from symbolsvc.config import load_config

    db = load_config(args.deployment / "config.toml").sqlite_path()
    db.parent.mkdir(parents=True, exist_ok=True)
    seconds = prefill(db, args.holdings, args.agencies.split(","), batch=args.batch)
    size = db.stat().st_size / 2**20
    print(f"prefilled {args.holdings:,} holdings into {db} in {seconds:.0f} s "
          f"({args.holdings / seconds:,.0f}/s); file {size:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
