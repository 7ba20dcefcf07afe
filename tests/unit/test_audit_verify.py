"""``symbolsvc audit verify``: the independent auditor's verifier of the access log.

The databases here are written by :class:`LogDB`, straight from the schema in
docs/ACCESS_LOG.md (not through the server's registry or sequencer code): leaves
from :class:`AccessRecord`, ``tree_nodes`` from ``Frontier.append``, checkpoints
signed with ``sign_checkpoint``, ``log_state`` from ``Frontier.to_bytes``. Each
tamper test changes one thing in a valid log and checks the verifier fails
naming the entry; the untouched log passes. The gRPC mode's logic runs against
an in-memory stand-in for the AuditService (:class:`FakeAuditor`).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers.memory_tree import MemoryTree

from symbolsvc.cli import main
from symbolsvc.log.checkpoint import Checkpoint, parse_vkey, sign_checkpoint, vkey_string
from symbolsvc.log.compact import Frontier
from symbolsvc.log.hashing import leaf_hash, node_hash
from symbolsvc.log.proofs import consistency_proof
from symbolsvc.records import AccessKind, AccessRecord
from symbolsvc.verify import (
    AuditFailure,
    TrustedState,
    load_state,
    load_vkey,
    save_state,
    verify_database,
    verify_remote,
)

ORIGIN = "symbolsvc.local/access-log"

# docs/ACCESS_LOG.md, "Data": the access log's tables (SQLite).
SCHEMA = """
CREATE TABLE access_records (
  id INTEGER PRIMARY KEY, pseudonym BLOB NOT NULL, sealed_subject BLOB NOT NULL,
  leaf BLOB NOT NULL, leaf_index INTEGER UNIQUE);
CREATE INDEX access_records_unsequenced ON access_records (id) WHERE leaf_index IS NULL;
CREATE INDEX access_records_by_subject ON access_records (pseudonym, id);
CREATE TABLE tree_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
  PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE checkpoints (tree_size INTEGER PRIMARY KEY, note TEXT NOT NULL,
  signed_at_us INTEGER NOT NULL);
CREATE TABLE log_state (id INTEGER PRIMARY KEY CHECK (id = 1), tree_size INTEGER NOT NULL,
  frontier BLOB NOT NULL);
CREATE TABLE sequencer_lease (id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL,
  expires_us INTEGER NOT NULL);
"""


def make_record(i: int) -> AccessRecord:
    """A valid, varied access record (translate or resolve) for the i-th exchange."""
    subject = hashlib.sha256(f"subject-{i % 13}".encode()).digest()
    if i % 3 == 2:
        providers: tuple[str, ...] = () if i % 2 else ("pension", "tax")
        kind = AccessKind.RESOLVE
    else:
        providers, kind = ("tax",), AccessKind.TRANSLATE
    return AccessRecord(kind, 1_700_000_000_000_000 + 1000 * i, "city-a", f"ow-{i % 7}",
                        "income", f"ex-{i:06d}", providers, subject)


class LogDB:
    """Writes a valid access log database the way docs/ACCESS_LOG.md describes it."""

    def __init__(self, path: Path, key: Ed25519PrivateKey, origin: str = ORIGIN) -> None:
        self.path = path
        self.key = key
        self.origin = origin
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.executescript(SCHEMA)
        self.frontier = Frontier()
        self.records = 0

    def add(self, n: int, start: int | None = None) -> None:
        """Commit ``n`` records (not yet integrated), as the request path does."""
        first = self.records if start is None else start
        rows = ((r.pseudonym, b"sealed", r.encode())
                for r in map(make_record, range(first, first + n)))
        self.conn.execute("BEGIN")
        self.conn.executemany(
            "INSERT INTO access_records (pseudonym, sealed_subject, leaf) VALUES (?,?,?)", rows)
        self.conn.execute("COMMIT")
        self.records += n

    def integrate(self, limit: int | None = None) -> int:
        """The sequencer: one transaction assigning indices, nodes, log_state, checkpoint."""
        self.conn.execute("BEGIN IMMEDIATE")
        rows = self.conn.execute(
            "SELECT id, leaf FROM access_records WHERE leaf_index IS NULL ORDER BY id LIMIT ?",
            (-1 if limit is None else limit,)).fetchall()
        nodes: list[tuple[int, int, bytes]] = []
        indices: list[tuple[int, int]] = []
        for rid, leaf in rows:
            indices.append((self.frontier.size, rid))
            nodes.extend(self.frontier.append(leaf_hash(leaf)))
        self.conn.executemany("INSERT INTO tree_nodes VALUES (?,?,?)", nodes)
        self.conn.executemany("UPDATE access_records SET leaf_index = ? WHERE id = ?", indices)
        self.conn.execute("INSERT OR REPLACE INTO log_state VALUES (1, ?, ?)",
                          (self.frontier.size, self.frontier.to_bytes()))
        note = self.sign(self.frontier.size, self.frontier.root())
        self.conn.execute("INSERT OR REPLACE INTO checkpoints VALUES (?,?,?)",
                          (self.frontier.size, note, 1_700_000_000_000_000))
        self.conn.execute("COMMIT")
        return self.frontier.size

    def sign(self, size: int, root: bytes, key: Ed25519PrivateKey | None = None,
             origin: str | None = None) -> str:
        return sign_checkpoint(Checkpoint(origin or self.origin, size, root),
                               key or self.key, self.origin)

    def close(self) -> None:
        self.conn.close()


SIZES = (10, 27, 64, 100)  # checkpoint sizes of the standard log


@pytest.fixture(scope="module")
def log_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def vkey_file(tmp_path: Path, log_key: Ed25519PrivateKey) -> Path:
    p = tmp_path / "log.vkey"
    p.write_text(vkey_string(ORIGIN, log_key.public_key()) + "\n")
    return p


def build(path: Path, key: Ed25519PrivateKey, sizes: tuple[int, ...] = SIZES,
          unsequenced: int = 3) -> LogDB:
    db = LogDB(path, key)
    for size in sizes:
        db.add(size - db.frontier.size)
        db.integrate()
    db.add(unsequenced)
    return db


@pytest.fixture
def db_path(tmp_path: Path, log_key: Ed25519PrivateKey) -> Path:
    """A valid log: 100 leaves, checkpoints at 10, 27, 64 and 100, 3 records pending."""
    path = tmp_path / "registry.db"
    build(path, log_key).close()
    return path


def verify(db: Path, vkey: Path, *extra: str,
           capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(["audit", "verify", "--db", str(db), "--vkey", str(vkey), *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def expect_failure(db: Path, vkey: Path, message: str, capsys: pytest.CaptureFixture[str],
                   *extra: str) -> None:
    rc, out, err = verify(db, vkey, *extra, capsys=capsys)
    assert rc == 1, (out, err)
    assert out == ""
    assert err.startswith("FAILED: "), err
    assert message in err, err
    assert err.count("\n") == 1


def write(db: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for sql, params in statements:
            conn.execute(sql, params)
        conn.execute("COMMIT")
    finally:
        conn.close()


def leaf_of(db: Path, index: int) -> bytes:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT leaf FROM access_records WHERE leaf_index = ?",
                            (index,)).fetchone()[0]
    finally:
        conn.close()


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------- untouched


def test_untouched_log_passes_with_one_line_summary(
        db_path: Path, vkey_file: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "audit-state.json"
    rc, out, err = verify(db_path, vkey_file, "--state", str(state), capsys=capsys)
    assert rc == 0 and err.startswith("WARNING: trust on first use"), err  # the first run
    assert out.count("\n") == 1
    assert out.startswith("OK: ")
    assert "100 leaves" in out and "4 checkpoint(s)" in out and "3 record(s) not yet" in out
    saved = json.loads(state.read_text())
    assert saved["origin"] == ORIGIN and saved["size"] == 100
    assert saved["checkpoint"].startswith(f"{ORIGIN}\n100\n")
    # A second run compares with the saved checkpoint and still passes.
    rc, out, err = verify(db_path, vkey_file, "--state", str(state), capsys=capsys)
    assert rc == 0 and "extends the checkpoint of size 100" in out and err == ""


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 100, 5000])
def test_chunk_boundaries_do_not_matter(db_path: Path, vkey_file: Path, chunk: int) -> None:
    vkey = load_vkey(vkey_file)
    report = verify_database(db_path, vkey, chunk=chunk)
    assert (report.size, report.checkpoints_verified, report.unsequenced) == (100, 4, 3)
    # ... and a tampered interior node is found at any chunking.
    write(db_path, ("UPDATE tree_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 9", ()))
    with pytest.raises(AuditFailure, match=r"^tree node \(level 2, index 9\)"):
        verify_database(db_path, vkey, chunk=chunk)


@pytest.mark.parametrize("sizes", [(1,), (2,), (5, 6, 7, 8), (33,), (64, 65), (0, 3)])
def test_small_and_odd_trees_pass(tmp_path: Path, log_key: Ed25519PrivateKey,
                                  vkey_file: Path, sizes: tuple[int, ...]) -> None:
    path = tmp_path / "small.db"
    build(path, log_key, sizes, unsequenced=0).close()
    report = verify_database(path, load_vkey(vkey_file), chunk=3)
    assert report.size == sizes[-1]
    assert report.checkpoints_verified == len(sizes)


def test_the_database_is_opened_read_only(db_path: Path, vkey_file: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    before = file_digest(db_path)
    db_path.chmod(0o444)
    try:
        rc, _, err = verify(db_path, vkey_file, capsys=capsys)
    finally:
        db_path.chmod(0o644)
    assert rc == 0, err
    assert file_digest(db_path) == before


def test_copy_of_a_live_database_with_its_wal(tmp_path: Path, log_key: Ed25519PrivateKey,
                                              vkey_file: Path) -> None:
    """Copying the db and its -wal together (writer still open) gives a verifiable copy."""
    live = tmp_path / "live.db"
    db = build(live, log_key)
    try:
        assert Path(f"{live}-wal").stat().st_size > 0
        copy_dir = tmp_path / "copy"
        copy_dir.mkdir()
        shutil.copy(live, copy_dir / "registry.db")
        shutil.copy(f"{live}-wal", copy_dir / "registry.db-wal")
        report = verify_database(copy_dir / "registry.db", load_vkey(vkey_file))
        assert report.size == 100
        # The same through sqlite3's backup API on a read connection.
        src = sqlite3.connect(f"file:{live}?mode=ro", uri=True)
        dst = sqlite3.connect(tmp_path / "backup.db")
        src.backup(dst)
        src.close()
        dst.close()
        assert verify_database(tmp_path / "backup.db", load_vkey(vkey_file)).size == 100
    finally:
        db.close()


# ----------------------------------------------------------------------- leaves


def test_one_byte_of_a_leaf_changed(db_path: Path, vkey_file: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    leaf = bytearray(leaf_of(db_path, 17))
    leaf[-1] ^= 0x01  # still a canonical record: only the tree can tell
    AccessRecord.decode(bytes(leaf))
    write(db_path, ("UPDATE access_records SET leaf = ? WHERE leaf_index = 17", (bytes(leaf),)))
    expect_failure(db_path, vkey_file, "leaf 17: hash does not match tree node", capsys)


def test_leaf_deleted(db_path: Path, vkey_file: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    write(db_path, ("DELETE FROM access_records WHERE leaf_index = 5", ()))
    expect_failure(db_path, vkey_file, "leaf 5 missing", capsys)


def test_last_leaf_deleted(db_path: Path, vkey_file: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    write(db_path, ("DELETE FROM access_records WHERE leaf_index = 99", ()))
    expect_failure(db_path, vkey_file, "leaf 99 missing", capsys)


def test_leaf_inserted_in_the_middle(db_path: Path, vkey_file: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    r = make_record(10_000)
    write(db_path,
          ("UPDATE access_records SET leaf_index = -leaf_index - 1 WHERE leaf_index >= 40", ()),
          ("UPDATE access_records SET leaf_index = -leaf_index WHERE leaf_index < 0", ()),
          ("INSERT INTO access_records (pseudonym, sealed_subject, leaf, leaf_index) "
           "VALUES (?, x'00', ?, 40)", (r.pseudonym, r.encode())))
    expect_failure(db_path, vkey_file, "leaf 40: hash does not match tree node", capsys)


def test_leaf_appended_beyond_the_latest_checkpoint(
        db_path: Path, vkey_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = make_record(10_000)
    write(db_path, ("INSERT INTO access_records (pseudonym, sealed_subject, leaf, leaf_index) "
                    "VALUES (?, x'00', ?, 100)", (r.pseudonym, r.encode())))
    expect_failure(db_path, vkey_file, "leaf 100: beyond the latest checkpoint (size 100)",
                   capsys)


def test_two_leaves_swapped(db_path: Path, vkey_file: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    write(db_path,
          ("UPDATE access_records SET leaf_index = -1 WHERE leaf_index = 3", ()),
          ("UPDATE access_records SET leaf_index = 3 WHERE leaf_index = 7", ()),
          ("UPDATE access_records SET leaf_index = 7 WHERE leaf_index = -1", ()))
    expect_failure(db_path, vkey_file, "leaf 3: hash does not match tree node", capsys)


def test_leaf_bytes_swapped(db_path: Path, vkey_file: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    a, b = leaf_of(db_path, 30), leaf_of(db_path, 31)
    write(db_path, ("UPDATE access_records SET leaf = ? WHERE leaf_index = 30", (b,)),
          ("UPDATE access_records SET leaf = ? WHERE leaf_index = 31", (a,)))
    expect_failure(db_path, vkey_file, "leaf 30: hash does not match tree node", capsys)


def _rebuild_tree(db: Path, key: Ed25519PrivateKey, *, resign: bool) -> None:
    """What a careful forger does after editing leaves: recompute nodes and log_state,
    and (with the log key) re-sign every checkpoint."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN")
    sizes = {s for (s,) in conn.execute("SELECT tree_size FROM checkpoints")}
    frontier = Frontier()
    conn.execute("DELETE FROM tree_nodes")
    for (leaf,) in conn.execute("SELECT leaf FROM access_records WHERE leaf_index IS NOT NULL "
                                "ORDER BY leaf_index").fetchall():
        for node in frontier.append(leaf_hash(leaf)):
            conn.execute("INSERT INTO tree_nodes VALUES (?,?,?)", node)
        if resign and frontier.size in sizes:
            note = sign_checkpoint(Checkpoint(ORIGIN, frontier.size, frontier.root()), key)
            conn.execute("UPDATE checkpoints SET note = ? WHERE tree_size = ?",
                         (note, frontier.size))
    conn.execute("UPDATE log_state SET frontier = ?", (frontier.to_bytes(),))
    conn.execute("COMMIT")
    conn.close()


def test_leaf_changed_and_tree_recomputed(db_path: Path, vkey_file: Path,
                                          log_key: Ed25519PrivateKey,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Without the log key the signed roots give it away at the next checkpoint."""
    leaf = bytearray(leaf_of(db_path, 45))
    leaf[9] ^= 0xFF  # the time field: still a canonical record with the same pseudonym
    write(db_path, ("UPDATE access_records SET leaf = ? WHERE leaf_index = 45", (bytes(leaf),)))
    _rebuild_tree(db_path, log_key, resign=False)
    expect_failure(db_path, vkey_file,
                   "checkpoint 64: root hash does not match the first 64 leaves", capsys)


def test_non_canonical_leaf_even_if_signed(db_path: Path, vkey_file: Path,
                                          log_key: Ed25519PrivateKey,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A leaf that is not an access record fails even in a consistently signed tree."""
    bad = leaf_of(db_path, 23) + b"\x00"  # trailing byte
    write(db_path, ("UPDATE access_records SET leaf = ? WHERE leaf_index = 23", (bad,)))
    _rebuild_tree(db_path, log_key, resign=True)
    expect_failure(db_path, vkey_file, "leaf 23: not a canonical access record", capsys)


def test_pseudonym_column_must_match_the_leaf(db_path: Path, vkey_file: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Re-pointing a record at another subject (what disclosure reads by) is caught."""
    write(db_path, ("UPDATE access_records SET pseudonym = zeroblob(32) WHERE leaf_index = 12",
                    ()))
    expect_failure(db_path, vkey_file, "leaf 12: the row's pseudonym column", capsys)


def test_unsequenced_records_are_not_checked_against_the_tree(
        db_path: Path, vkey_file: Path) -> None:
    r = make_record(424242)
    write(db_path, ("INSERT INTO access_records (pseudonym, sealed_subject, leaf) "
                    "VALUES (?, x'00', ?)", (r.pseudonym, r.encode())))
    assert verify_database(db_path, load_vkey(vkey_file)).unsequenced == 4


# ------------------------------------------------------------------- tree nodes


def test_interior_tree_node_changed(db_path: Path, vkey_file: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    write(db_path, ("UPDATE tree_nodes SET hash = ? WHERE level = 3 AND idx = 2",
                    (hashlib.sha256(b"x").digest(),)))
    expect_failure(db_path, vkey_file,
                   "tree node (level 3, index 2): hash does not match the recomputed tree",
                   capsys)


def test_leaf_level_tree_node_changed(db_path: Path, vkey_file: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    write(db_path, ("UPDATE tree_nodes SET hash = ? WHERE level = 0 AND idx = 61",
                    (hashlib.sha256(b"x").digest(),)))
    expect_failure(db_path, vkey_file, "leaf 61: hash does not match tree node", capsys)


def test_tree_node_deleted(db_path: Path, vkey_file: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    write(db_path, ("DELETE FROM tree_nodes WHERE level = 5 AND idx = 1", ()))
    expect_failure(db_path, vkey_file, "tree node (level 5, index 1) missing", capsys)


def test_extra_tree_node(db_path: Path, vkey_file: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    write(db_path, ("INSERT INTO tree_nodes VALUES (2, 25, zeroblob(32))", ()))
    expect_failure(db_path, vkey_file,
                   "tree node (level 2, index 25): beyond the tree of 100 leaves", capsys)


def test_log_state_frontier_changed(db_path: Path, vkey_file: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    f = Frontier()
    for i in range(100):
        f.append(node_hash(bytes(32), i.to_bytes(32, "big")))
    write(db_path, ("UPDATE log_state SET frontier = ?", (f.to_bytes(),)))
    expect_failure(db_path, vkey_file, "log_state: frontier does not match", capsys)


# ------------------------------------------------------------------ checkpoints


def _note(db: Path, size: int) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT note FROM checkpoints WHERE tree_size = ?",
                            (size,)).fetchone()[0]
    finally:
        conn.close()


def test_checkpoint_signature_replaced(db_path: Path, vkey_file: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    note = _note(db_path, 27)
    body, sig = note.rsplit("\n\n", 1)
    name, blob = sig.rstrip("\n").split(" ")[1:]
    flipped = blob[:10] + ("A" if blob[10] != "A" else "B") + blob[11:]
    write(db_path, ("UPDATE checkpoints SET note = ? WHERE tree_size = 27",
                    (f"{body}\n\n— {name} {flipped}\n",)))
    expect_failure(db_path, vkey_file, "checkpoint 27: bad signature", capsys)


def test_checkpoint_signed_by_another_key(db_path: Path, vkey_file: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    forger = LogDB(tmp_path / "forger.db", Ed25519PrivateKey.generate())
    note = forger.sign(64, hashlib.sha256(b"any root").digest())  # the key is what is wrong
    forger.close()
    write(db_path, ("UPDATE checkpoints SET note = ? WHERE tree_size = 64", (note,)))
    expect_failure(db_path, vkey_file, "checkpoint 64: bad signature", capsys)


def test_checkpoint_for_another_origin(db_path: Path, vkey_file: Path,
                                       log_key: Ed25519PrivateKey,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    cp = Checkpoint("other.example/log", 10, hashlib.sha256(b"r").digest())
    write(db_path, ("UPDATE checkpoints SET note = ? WHERE tree_size = 10",
                    (sign_checkpoint(cp, log_key, ORIGIN),)))
    expect_failure(db_path, vkey_file, "checkpoint 10: checkpoint is for log 'other.example/log'",
                   capsys)


def test_checkpoint_note_for_another_size(db_path: Path, vkey_file: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A genuine note filed under the wrong tree size."""
    note = _note(db_path, 64)
    write(db_path, ("DELETE FROM checkpoints WHERE tree_size = 64", ()),
          ("UPDATE checkpoints SET note = ? WHERE tree_size = 27", (note,)))
    expect_failure(db_path, vkey_file, "checkpoint 27: the note is for tree size 64", capsys)


def test_latest_checkpoint_deleted(db_path: Path, vkey_file: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    write(db_path, ("DELETE FROM checkpoints WHERE tree_size = 100", ()))
    expect_failure(db_path, vkey_file, "leaf 64: beyond the latest checkpoint (size 64)",
                   capsys)


def test_wrong_vkey_fails_at_the_first_checkpoint(
        db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.vkey"
    other.write_text(vkey_string(ORIGIN, Ed25519PrivateKey.generate().public_key()))
    expect_failure(db_path, other, "checkpoint 10: bad signature", capsys)


# --------------------------------------------------------------------- rollback


def test_database_rolled_back_to_an_earlier_copy(
        tmp_path: Path, log_key: Ed25519PrivateKey, vkey_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    live = tmp_path / "live.db"
    db = build(live, log_key, sizes=(10, 27, 64), unsequenced=0)
    db.close()
    earlier = tmp_path / "earlier.db"
    shutil.copy(live, earlier)
    db = _reopen(live, log_key, 64)
    db.add(36)
    db.integrate()
    db.close()
    state = tmp_path / "state.json"
    rc, _, err = verify(live, vkey_file, "--state", str(state), capsys=capsys)
    assert rc == 0, err
    before = state.read_text()
    expect_failure(earlier, vkey_file, "rolled back: the latest checkpoint has size 64, "
                   "smaller than the checkpoint of size 100 verified before", capsys,
                   "--state", str(state))
    assert state.read_text() == before  # a failed run never moves the state forward


def _reopen(path: Path, key: Ed25519PrivateKey, size: int) -> LogDB:
    """Continue writing a LogDB database (the frontier comes from log_state)."""
    db = object.__new__(LogDB)
    db.path, db.key, db.origin = path, key, ORIGIN
    db.conn = sqlite3.connect(path, isolation_level=None)
    (frontier,) = db.conn.execute("SELECT frontier FROM log_state").fetchone()
    db.frontier = Frontier.from_bytes(frontier)
    assert db.frontier.size == size
    (db.records,) = db.conn.execute("SELECT count(*) FROM access_records").fetchone()
    return db


def test_rolled_back_then_extended_differently(
        tmp_path: Path, log_key: Ed25519PrivateKey, vkey_file: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A fork: back to an earlier copy, then other records; every signature is genuine."""
    live = tmp_path / "live.db"
    build(live, log_key, sizes=(10, 27), unsequenced=0).close()
    fork = tmp_path / "fork.db"
    shutil.copy(live, fork)
    db = _reopen(live, log_key, 27)
    db.add(23)
    db.integrate()
    db.close()
    state = tmp_path / "state.json"
    assert verify(live, vkey_file, "--state", str(state), capsys=capsys)[0] == 0
    db = _reopen(fork, log_key, 27)
    db.add(40, start=5000)  # different records
    db.integrate()
    db.close()
    assert verify(fork, vkey_file, capsys=capsys)[0] == 0  # fine on its own...
    expect_failure(fork, vkey_file, "rolled back: the first 50 leaves do not have the root "
                   "hash of the checkpoint of size 50 verified before", capsys,
                   "--state", str(state))


def test_state_file_from_another_log_is_refused(
        db_path: Path, vkey_file: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state.json"
    other = Ed25519PrivateKey.generate()
    note = sign_checkpoint(Checkpoint(ORIGIN, 5, bytes(32)), other)
    state.write_text(json.dumps({"origin": ORIGIN, "size": 5, "root_hash": "A" * 43 + "=",
                                 "checkpoint": note}))
    rc, _, err = verify(db_path, vkey_file, "--state", str(state), capsys=capsys)
    assert rc == 2 and "does not verify" in err


def test_state_round_trip(tmp_path: Path, log_key: Ed25519PrivateKey, vkey_file: Path) -> None:
    root = hashlib.sha256(b"root").digest()
    note = sign_checkpoint(Checkpoint(ORIGIN, 7, root), log_key)
    path = tmp_path / "s.json"
    assert load_state(path, load_vkey(vkey_file)) is None
    save_state(path, TrustedState(ORIGIN, 7, root, note))
    assert load_state(path, load_vkey(vkey_file)) == TrustedState(ORIGIN, 7, root, note)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".s.json")] == []


# ------------------------------------------------------------- operational errors


def test_missing_database_or_vkey_is_exit_2(tmp_path: Path, vkey_file: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = verify(tmp_path / "nope.db", vkey_file, capsys=capsys)
    assert rc == 2 and "no database file" in err
    assert not (tmp_path / "nope.db").exists()
    rc, _, err = verify(tmp_path / "nope.db", tmp_path / "nope.vkey", capsys=capsys)
    assert rc == 2 and "verifier key" in err


def test_not_an_access_log(tmp_path: Path, vkey_file: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    expect_failure(other, vkey_file, "database has no access_records table", capsys)


def test_db_needs_vkey(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", "--db", str(db_path)]) == 2
    assert "--vkey" in capsys.readouterr().err


def test_console_script(db_path: Path, vkey_file: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "symbolsvc.cli", "audit", "verify", "--db", str(db_path),
         "--vkey", str(vkey_file)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("OK: ")
    write(db_path, ("DELETE FROM access_records WHERE leaf_index = 0", ()))
    proc = subprocess.run(
        [sys.executable, "-m", "symbolsvc.cli", "audit", "verify", "--db", str(db_path),
         "--vkey", str(vkey_file)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert proc.stderr == "FAILED: leaf 0 missing\n"


# ------------------------------------------------------------------------ memory


def _peak_bytes(path: Path, vkey_file: Path) -> int:
    vkey = parse_vkey(vkey_file.read_text().strip())
    tracemalloc.start()
    try:
        verify_database(path, vkey, chunk=128)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_log(tmp_path: Path, log_key: Ed25519PrivateKey,
                                           vkey_file: Path) -> None:
    small, large = tmp_path / "small.db", tmp_path / "large.db"
    build(small, log_key, sizes=(500,), unsequenced=0).close()
    build(large, log_key, sizes=(3_000, 6_000), unsequenced=0).close()
    peak_small = _peak_bytes(small, vkey_file)
    peak_large = _peak_bytes(large, vkey_file)
    assert peak_large < peak_small * 1.5 + 64 * 1024, (peak_small, peak_large)


# ------------------------------------------------------------- gRPC mode (logic)


class FakeAuditor:
    """An in-memory AuditService: the AuditorClient calls ``verify_remote`` makes."""

    def __init__(self, key: Ed25519PrivateKey, n: int, page: int = 7,
                 start: int = 0) -> None:
        self.leaves = [make_record(start + i).encode() for i in range(n)]
        self.tree = MemoryTree()
        for leaf in self.leaves:
            self.tree.append(leaf_hash(leaf))
        self.note = sign_checkpoint(Checkpoint(ORIGIN, n, self.tree.root()), key)
        self.page = page
        self.served: list[tuple[int, bytes]] = list(enumerate(self.leaves))
        self.calls: list[tuple[str, int, int]] = []

    def checkpoint(self) -> str:
        return self.note

    def consistency_proof(self, first_size: int, second_size: int) -> list[bytes]:
        self.calls.append(("consistency", first_size, second_size))
        return consistency_proof(first_size, second_size, self.tree)

    def entries(self, start: int, end: int) -> Iterator[SimpleNamespace]:
        self.calls.append(("entries", start, end))
        rows = [(i, leaf) for i, leaf in self.served if start <= i][: self.page]
        return [SimpleNamespace(index=i, leaf=leaf) for i, leaf in rows]  # type: ignore[return-value]


@pytest.fixture
def vkey(log_key: Ed25519PrivateKey) -> object:
    return parse_vkey(vkey_string(ORIGIN, log_key.public_key()))


def test_remote_verifies_in_pages(log_key: Ed25519PrivateKey, vkey: object) -> None:
    server = FakeAuditor(log_key, 50)
    report = verify_remote(server, vkey)  # type: ignore[arg-type]
    assert report.size == 50 and report.checkpoint == server.note
    assert [c for c in server.calls if c[0] == "entries"][:2] == [("entries", 0, 50),
                                                                   ("entries", 7, 50)]
    # Next time: a consistency proof from the saved checkpoint, then all leaves again.
    grown = FakeAuditor(log_key, 80)
    report2 = verify_remote(grown, vkey, previous=report.state)  # type: ignore[arg-type]
    assert report2.size == 80 and ("consistency", 50, 80) in grown.calls


def test_remote_missing_duplicate_and_changed_leaves(log_key: Ed25519PrivateKey,
                                                     vkey: object) -> None:
    server = FakeAuditor(log_key, 30)
    del server.served[12]
    with pytest.raises(AuditFailure, match=r"^leaf 12 missing$"):
        verify_remote(server, vkey)  # type: ignore[arg-type]
    server = FakeAuditor(log_key, 30)
    server.served.insert(9, server.served[8])
    with pytest.raises(AuditFailure, match=r"^leaf 8: returned twice or out of order$"):
        verify_remote(server, vkey)  # type: ignore[arg-type]
    server = FakeAuditor(log_key, 30)
    leaf = bytearray(server.leaves[21])
    leaf[-1] ^= 1
    server.served[21] = (21, bytes(leaf))
    with pytest.raises(AuditFailure, match=r"^checkpoint 30: root hash does not match"):
        verify_remote(server, vkey)  # type: ignore[arg-type]
    server = FakeAuditor(log_key, 30)
    server.served[4] = (4, server.leaves[4] + b"\x00")
    with pytest.raises(AuditFailure, match=r"^leaf 4: not a canonical access record"):
        verify_remote(server, vkey)  # type: ignore[arg-type]
    server = FakeAuditor(log_key, 30)
    server.served = server.served[:29]
    with pytest.raises(AuditFailure, match=r"^leaf 29 missing$"):
        verify_remote(server, vkey)  # type: ignore[arg-type]


def test_remote_bad_signature(log_key: Ed25519PrivateKey, vkey: object) -> None:
    server = FakeAuditor(Ed25519PrivateKey.generate(), 30)
    with pytest.raises(AuditFailure, match=r"^checkpoint 30: bad signature"):
        verify_remote(server, vkey)  # type: ignore[arg-type]


def test_remote_rollback_and_fork(log_key: Ed25519PrivateKey, vkey: object) -> None:
    state = verify_remote(FakeAuditor(log_key, 60), vkey).state  # type: ignore[arg-type]
    with pytest.raises(AuditFailure, match=r"^rolled back: the latest checkpoint has size 40"):
        verify_remote(FakeAuditor(log_key, 40), vkey, previous=state)  # type: ignore[arg-type]
    forked = FakeAuditor(log_key, 90, start=1)  # other leaves: no consistency proof exists
    with pytest.raises(AuditFailure, match=r"^rolled back: checkpoint 90 is not consistent"):
        verify_remote(forked, vkey, previous=state)  # type: ignore[arg-type]
    same_size = FakeAuditor(log_key, 60, start=1)
    with pytest.raises(AuditFailure, match=r"^rolled back: checkpoint 60 has a different root"):
        verify_remote(same_size, vkey, previous=state)  # type: ignore[arg-type]


def test_remote_without_a_server_is_exit_2(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from symbolsvc.deploy import init_deployment

    init_deployment(tmp_path / "dep", ["city-a"], listen="127.0.0.1:1")
    state = tmp_path / "state.json"
    rc = main(["audit", "verify", "--deployment", str(tmp_path / "dep"),
               "--target", "127.0.0.1:1", "--state", str(state)])
    err = capsys.readouterr().err
    assert rc == 2 and "UNAVAILABLE" in err, err
    assert not state.exists()


# -- published permission tables (issue 13, docs/DISCLOSURE.md) ---------------------------


def _insert_leaves(db: LogDB, leaves: list[AccessRecord]) -> None:
    db.conn.execute("BEGIN")
    db.conn.executemany(
        "INSERT INTO access_records (pseudonym, sealed_subject, leaf) VALUES (?,?,?)",
        [(r.pseudonym, b"sealed", r.encode()) for r in leaves])
    db.conn.execute("COMMIT")


@pytest.mark.parametrize(("version", "rule", "why"), [
    ("published", "open", None),
    ("published", "no-such-rule", r"leaf 2: names rule 'no-such-rule', which does not exist"),
    ("never", "open", r"leaf 2: names permission table version [0-9a-f]{64}, which the log "
                      r"did not publish before it"),
])
def test_verify_checks_each_record_against_its_published_rule(
        tmp_path: Path, log_key: Ed25519PrivateKey, vkey_file: Path,
        capsys: pytest.CaptureFixture[str], version: str, rule: str, why: str | None) -> None:
    from symbolsvc.newrecords import policy_record
    from symbolsvc.policy import Policy

    policy = Policy.from_toml('[[allow]]\nid = "open"\nrequester = "city-a"\n'
                              'office_work = "ow-0"\ninfo_item = "income"\n'
                              'providers = ["tax"]\n')
    named = policy.version if version == "published" else hashlib.sha256(b"x").digest()
    db = LogDB(tmp_path / "registry.db", log_key)
    _insert_leaves(db, [
        make_record(0),  # before the first POLICY record: an older log's record passes
        AccessRecord.decode(policy_record(policy, 1_700_000_000_000_000).leaf),
        make_record(0).with_ext(POLICY_VERSION=named, RULE=rule.encode()),
    ])
    db.integrate()
    db.close()
    rc, _, err = verify(tmp_path / "registry.db", vkey_file, capsys=capsys)
    if why is None:
        assert rc == 0, err
    else:
        assert rc == 1 and err.startswith("FAILED: ") and re.search(why, err), err


def _sign_leaf(db: Path, index: int, signer: Path) -> None:
    """Give leaf ``index`` a signed inquiry (docs/SIGNED_INQUIRIES.md) signed with the key
    file ``signer`` as its requester."""
    from symbolsvc_client.trust import sign_inquiry

    from symbolsvc import inquiry

    rec = AccessRecord.decode(leaf_of(db, index))
    s = sign_inquiry(signer, requester=rec.requester, symbol="k1." + "q" * 52,
                     provider=rec.providers[0], office_work=rec.office_work,
                     info_item=rec.info_item, exchange_id=rec.exchange_id,
                     issued_at_us=rec.time_us)
    signed = rec.with_ext(**inquiry.record_ext(
        s.signature, s.issued_at_us,
        inquiry.symbol_digest(rec.requester, rec.exchange_id, s.symbol)))
    write(db, ("UPDATE access_records SET leaf = ? WHERE leaf_index = ?",
               (signed.encode(), index)))


def test_stored_inquiry_signatures_are_checked(db_path: Path, vkey_file: Path,
                                               log_key: Ed25519PrivateKey, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Even the operator, holding the log key and re-signing every checkpoint, cannot put an
    inquiry into a record that the requester did not sign: ``--agency-certs`` names the
    leaf. Without certificates the signatures are counted as not checked, never passed."""
    from symbolsvc.pki import issue_leaf, make_ca, spiffe_id, write_pair

    pki = tmp_path / "pki"
    ca = make_ca()
    write_pair(ca, pki, "ca")
    write_pair(issue_leaf(ca, "city-a", spiffe_id("agency", "city-a")), pki, "city-a")
    write_pair(issue_leaf(ca, "operator", spiffe_id("agency", "operator")), tmp_path, "op")
    translate = next(i for i in range(40, 60) if make_record(i).kind is AccessKind.TRANSLATE)
    _sign_leaf(db_path, translate, pki / "city-a.key")
    _rebuild_tree(db_path, log_key, resign=True)
    rc, out, _ = verify(db_path, vkey_file, "--agency-certs", str(pki), capsys=capsys)
    assert rc == 0 and "1 signed inquiries verified" in out, out
    rc, out, _ = verify(db_path, vkey_file, capsys=capsys)
    assert rc == 0 and "1 signed inquiries NOT checked" in out, out

    _sign_leaf(db_path, translate, tmp_path / "op.key")  # the operator's own key
    _rebuild_tree(db_path, log_key, resign=True)
    expect_failure(db_path, vkey_file,
                   f"leaf {translate}: the signed inquiry does not verify", capsys,
                   "--agency-certs", str(pki))
