"""Verifying a copy of the SQLite registry file, opened read-only, never written.

The layout is docs/ACCESS_LOG.md's: ``access_records.leaf_index``,
``tree_nodes``, ``checkpoints``, ``log_state``. Leaves are streamed a chunk at a
time; the memory used is the frontier, one chunk of leaves and the tree nodes
that chunk completes, whatever the size of the log.
"""

from __future__ import annotations

import hmac
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..inquiry import VerifyKey
from ..log.checkpoint import Checkpoint, VerifierKey
from .common import (
    AuditReport,
    Inquiries,
    Tree,
    check_previous_root,
    check_previous_size,
    decode_leaf,
    fail,
    leaf_hash_of,
    verify_note,
)
from .errors import AuditError
from .keychain import KeyChain
from .policies import PolicyLedger
from .state import TrustedState
from .witnesses import WitnessPolicy

__all__ = ["DEFAULT_CHUNK", "verify_database"]

DEFAULT_CHUNK = 4096
"""Leaves read from the database per step (and the tree nodes they complete)."""

_MAX_LEVEL = 63  # tree sizes are uint64: no perfect subtree above level 63


def _connect_read_only(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise AuditError(f"no database file at {path}")
    uri = "file:" + quote(str(path.resolve())) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=True)
        conn.execute("PRAGMA query_only = ON")
        conn.execute("BEGIN")  # one read snapshot for the whole verification
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as exc:
        raise AuditError(f"cannot open {path} read-only: {exc}") from None
    return conn


_TABLES = {
    "access_records": ("leaf_index", "leaf", "pseudonym"),
    "tree_nodes": ("level", "idx", "hash"),
    "checkpoints": ("tree_size", "note"),
    "log_state": ("id", "tree_size", "frontier"),
}


def _check_schema(conn: sqlite3.Connection) -> None:
    for table, columns in _TABLES.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if not have:
            raise fail(f"database has no {table} table (is this a symbolsvc access log?)")
        for column in columns:
            if column not in have:
                raise fail(f"database table {table} has no column {column}")


def _completed_node_range(level: int, begin: int, end: int) -> tuple[int, int] | None:
    """Indices ``[lo, hi]`` of level-``level`` nodes completed by appending leaves [begin, end).

    Node ``(L, j)`` is completed by leaf ``((j + 1) << L) - 1``.
    """
    lo = ((begin + (1 << level)) >> level) - 1
    hi = (end >> level) - 1
    return (lo, hi) if lo <= hi else None


def _load_nodes(conn: sqlite3.Connection, begin: int, end: int) -> dict[tuple[int, int], object]:
    """The stored tree nodes that appending leaves ``[begin, end)`` completes."""
    nodes: dict[tuple[int, int], object] = {}
    level = 0
    while level <= _MAX_LEVEL and (1 << level) <= end:
        span = _completed_node_range(level, begin, end)
        if span is not None:
            for lvl, idx, h in conn.execute(
                "SELECT level, idx, hash FROM tree_nodes WHERE level = ? AND idx BETWEEN ? AND ?",
                (level, span[0], span[1]),
            ):
                nodes[(lvl, idx)] = h
        level += 1
    return nodes


class _StoredCheckpoints:
    """The ``checkpoints`` table in tree-size order, verified as the tree reaches each size."""

    def __init__(self, conn: sqlite3.Connection, vkey: KeyChain, origin: str,
                 witnesses: WitnessPolicy | None = None) -> None:
        self._rows: Iterator[tuple[Any, str, Any]] = iter(conn.execute(
            "SELECT tree_size, typeof(tree_size), note FROM checkpoints ORDER BY tree_size"))
        self._vkey = vkey
        self._origin = origin
        self._next = next(self._rows, None)
        self.verified = 0
        self.latest_note: str | None = None
        self.latest: Checkpoint | None = None
        self._witnesses = witnesses
        self.witnessed: tuple[int, tuple[str, ...]] | None = None  # newest with the quorum

    def pending_size(self) -> int | None:
        """The size of the next checkpoint not yet reached, if any."""
        return None if self._next is None else self._next[0]

    def settle(self, tree: Tree) -> None:
        """Verify every checkpoint whose size the tree has now reached."""
        while self._next is not None:
            size, kind, note = self._next
            if kind != "integer" or size < 0:
                raise fail(f"checkpoint {size!r}: tree size is not a non-negative integer")
            if size > tree.size:
                return
            label = f"checkpoint {size}"
            cp = verify_note(label, note, self._vkey, self._origin)
            if cp.size != size:
                raise fail(f"{label}: the note is for tree size {cp.size}")
            if not hmac.compare_digest(cp.root_hash, tree.frontier.root()):
                raise fail(f"{label}: root hash does not match the first {size} leaves")
            self.verified += 1
            self.latest, self.latest_note = cp, note
            if self._witnesses is not None:
                names = sorted(c.name for c in self._witnesses.valid(label, note))
                if len(names) >= self._witnesses.quorum:
                    self.witnessed = (size, tuple(names))
            self._next = next(self._rows, None)


def verify_database(
    path: Path | str,
    vkey: KeyChain | VerifierKey,
    *,
    origin: str | None = None,
    previous: TrustedState | None = None,
    chunk: int = DEFAULT_CHUNK,
    witnesses: WitnessPolicy | None = None,
    agency_keys: Mapping[str, Sequence[VerifyKey]] | None = None,
) -> AuditReport:
    """Verify a copy of a symbolsvc SQLite database end to end; raise on the first problem.

    ``origin`` defaults to the verifier key's name (the service names its log
    key after the log's origin). The file is opened with ``mode=ro``. With
    ``witnesses``, every stored cosignature by a trusted witness must verify and at least
    one checkpoint must carry the quorum (the newest such is reported).
    """
    if chunk < 1:
        raise ValueError("chunk must be positive")
    vkey = KeyChain.of(vkey)
    origin = origin or vkey.name
    path = Path(path)
    conn = _connect_read_only(path)
    try:
        try:
            report = _verify_connection(conn, str(path), vkey, origin, previous, chunk,
                                        inquiries := Inquiries(agency_keys), witnesses)
            return replace(report, inquiries_checked=inquiries.checked,
                           inquiries_unchecked=inquiries.unchecked)
        except sqlite3.Error as exc:
            raise AuditError(f"cannot read {path}: {exc}") from None
    finally:
        conn.close()


def _latest_checkpoint_size(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT max(tree_size) FROM checkpoints").fetchone()
    return row[0] if row and isinstance(row[0], int) else None


def _verify_connection(
    conn: sqlite3.Connection,
    source: str,
    vkey: KeyChain,
    origin: str,
    previous: TrustedState | None,
    chunk: int,
    inquiries: Inquiries,
    witnesses: WitnessPolicy | None = None,
) -> AuditReport:
    _check_schema(conn)
    latest_size = _latest_checkpoint_size(conn)
    tree = Tree(previous)
    checkpoints = _StoredCheckpoints(conn, vkey, origin, witnesses)
    checkpoints.settle(tree)
    policies = PolicyLedger()

    leaves = conn.execute(
        "SELECT leaf_index, typeof(leaf_index), leaf, pseudonym FROM access_records "
        "WHERE leaf_index IS NOT NULL ORDER BY leaf_index")
    while rows := leaves.fetchmany(chunk):
        begin = tree.size
        nodes = _load_nodes(conn, begin, begin + len(rows))
        for index, kind, leaf, pseudonym in rows:
            expected = tree.size
            if kind != "integer":
                raise fail(f"leaf {index!r}: leaf index is not an integer")
            if index != expected:
                if index > expected:
                    raise fail(f"leaf {expected} missing")
                raise fail(f"leaf {index}: duplicate or negative leaf index")
            if latest_size is None or index >= latest_size:
                limit = "no checkpoint" if latest_size is None else f"size {latest_size}"
                raise fail(f"leaf {index}: beyond the latest checkpoint ({limit})")
            for level, idx, h in tree.append(leaf_hash_of(index, leaf)):
                stored = nodes.pop((level, idx), None)
                if level == 0:
                    if stored is None:
                        raise fail(f"leaf {index}: no tree node (level 0, index {index})")
                    if not (isinstance(stored, bytes) and hmac.compare_digest(stored, h)):
                        raise fail(f"leaf {index}: hash does not match tree node")
                elif stored is None:
                    raise fail(f"tree node (level {level}, index {idx}) missing")
                elif not (isinstance(stored, bytes) and hmac.compare_digest(stored, h)):
                    raise fail(f"tree node (level {level}, index {idx}): hash does not "
                                "match the recomputed tree")
            record = decode_leaf(index, leaf)
            if record.pseudonym != pseudonym:
                raise fail(f"leaf {index}: the row's pseudonym column does not match the leaf")
            policies.check(index, record)
            inquiries.check(index, record)
            checkpoints.settle(tree)

    n = tree.size
    if checkpoints.pending_size() is not None:
        # A checkpoint signs more leaves than there are: the next one is gone.
        raise fail(f"leaf {n} missing")
    extra = conn.execute(
        "SELECT level, idx FROM tree_nodes WHERE typeof(level) != 'integer' "
        "OR typeof(idx) != 'integer' OR level < 0 OR level > ? OR idx < 0 "
        "OR idx >= (? >> level) ORDER BY level, idx LIMIT 1", (_MAX_LEVEL, n)).fetchone()
    if extra is not None:
        raise fail(f"tree node (level {extra[0]}, index {extra[1]}): beyond the tree of "
                    f"{n} leaves")
    state = conn.execute(
        "SELECT tree_size, frontier FROM log_state WHERE id = 1").fetchone()
    if state is None:
        if n:
            raise fail("log_state: no row, but the log has leaves")
    else:
        if state[0] != n:
            raise fail(f"log_state: tree size {state[0]!r} is not the {n} integrated leaves")
        if state[1] != tree.frontier.to_bytes():
            raise fail("log_state: frontier does not match the recomputed tree")
    unsequenced = conn.execute(
        "SELECT count(*) FROM access_records WHERE leaf_index IS NULL").fetchone()[0]

    if checkpoints.latest is None or checkpoints.latest_note is None:
        if previous is not None:
            raise fail(f"rolled back: the database has no checkpoint, but one of size "
                        f"{previous.size} was verified before")
        raise fail("the database holds no checkpoint")
    latest = checkpoints.latest
    check_previous_size(previous, latest)
    check_previous_root(previous, tree.root_at_previous)
    witnessed_size, witnessed_by = checkpoints.witnessed or (None, ())
    if witnesses is not None and witnessed_size is None:
        raise fail(f"not witnessed: no checkpoint carries {witnesses.quorum} valid witness "
                   "cosignature(s)")
    return AuditReport(source, latest.origin, latest.size, latest.root_hash,
                       checkpoints.latest_note, checkpoints.verified, unsequenced, previous,
                       witnessed_by, witnessed_size)


# -------------------------------------------------------------------------- gRPC
