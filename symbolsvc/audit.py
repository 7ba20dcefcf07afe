"""The independent auditor's verifier for the access log (``symbolsvc audit verify``).

It recomputes the RFC 9162 tree from the leaves and checks it against what the
service signed and stored, from either of two sources:

* :func:`verify_database` reads a *copy* of the SQLite database (opened
  read-only, never written) laid out as docs/ACCESS_LOG.md describes:
  ``access_records.leaf_index``, ``tree_nodes``, ``checkpoints``, ``log_state``;
* :func:`verify_remote` asks the AuditService as the auditor (``GetCheckpoint``,
  ``ListEntries`` page by page, ``GetConsistencyProof`` from the checkpoint
  verified last time).

On purpose this module uses none of the server's registry or sequencer code:
only the pure :mod:`symbolsvc.log.merkle` and :mod:`symbolsvc.log.checkpoint`,
the leaf decoder of :mod:`symbolsvc.records` and, for the gRPC mode, the client
library. Leaves are streamed; the memory used is the frontier (one hash per set
bit of the tree size), one chunk of leaves and the tree nodes that chunk
completes, whatever the size of the log.

The first problem found, in log order, raises :class:`AuditFailure` naming the
entry (``leaf 17: hash does not match tree node``, ``leaf 5 missing``,
``checkpoint 42: bad signature``, ``rolled back: ...``). Being unable to check at
all (no file, no connection) raises :class:`AuditError` instead.

The *state file* is the auditor's memory between runs: the origin, size, root
hash and signed note of the latest checkpoint verified. A later run must find a
log that extends it; a smaller tree, or different leaves up to the saved size,
is reported as a rollback. It is written (atomically) only after a run passes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from .log.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteError,
    VerifierKey,
    parse_checkpoint_body,
)
from .log.keychain import KeyChain, parse_vkeys
from .log.merkle import EMPTY_ROOT, Frontier, ProofError, leaf_hash, verify_consistency
from .records import AccessRecord, LeafError

__all__ = [
    "DEFAULT_CHUNK",
    "AuditError",
    "AuditFailure",
    "AuditReport",
    "AuditSource",
    "TrustedState",
    "load_state",
    "load_vkey",
    "save_state",
    "verify_database",
    "verify_remote",
]

DEFAULT_CHUNK = 4096
"""Leaves read from the database per step (and the tree nodes they complete)."""

_MAX_LEVEL = 63  # tree sizes are uint64: no perfect subtree above level 63


class AuditFailure(Exception):
    """The log failed verification; the message names the first bad entry."""


class AuditError(Exception):
    """Verification could not be carried out (unreadable input, no connection)."""


# ------------------------------------------------------------------------- inputs


def load_vkey(path: Path | str) -> KeyChain:
    """Read the log's verifier key file (``pki/log.vkey``: one signed-note vkey per line,
    oldest first; :mod:`symbolsvc.log.keychain`)."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"cannot read verifier key {path}: {exc}") from None
    try:
        return KeyChain(parse_vkeys(text))
    except NoteError as exc:
        raise AuditError(f"{path}: not a verifier key: {exc}") from None


@dataclass(frozen=True, slots=True)
class TrustedState:
    """The latest checkpoint the auditor has verified (kept in the state file)."""

    origin: str
    size: int
    root_hash: bytes
    checkpoint: str  # the signed note, exactly as verified

    def to_json(self) -> str:
        return json.dumps({
            "origin": self.origin,
            "size": self.size,
            "root_hash": base64.b64encode(self.root_hash).decode("ascii"),
            "checkpoint": self.checkpoint,
        }, indent=2) + "\n"


def load_state(path: Path | str, vkey: KeyChain | VerifierKey) -> TrustedState | None:
    """Read the state file; ``None`` if it does not exist yet (first verification).

    The saved note must still verify under ``vkey`` and agree with the saved
    origin, size and root: a state file from another log is refused.
    """
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"cannot read state file {p}: {exc}") from None
    try:
        data = json.loads(raw)
        state = TrustedState(str(data["origin"]), int(data["size"]),
                             base64.b64decode(data["root_hash"], validate=True),
                             str(data["checkpoint"]))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise AuditError(f"state file {p} is malformed: {exc}") from None
    try:
        cp = KeyChain.of(vkey).verify_any(state.checkpoint, state.origin)
    except (NoteError, CheckpointError) as exc:
        raise AuditError(f"state file {p}: its checkpoint does not verify: {exc}") from None
    if cp.size != state.size or cp.root_hash != state.root_hash:
        raise AuditError(f"state file {p}: size or root hash differs from its checkpoint")
    return state


def save_state(path: Path | str, state: TrustedState) -> None:
    """Write the state file atomically (a crash leaves the old or the new one)."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(state.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------- report


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What a passing verification established."""

    source: str
    origin: str
    size: int
    root_hash: bytes
    checkpoint: str  # the latest signed note
    checkpoints_verified: int
    unsequenced: int | None  # records not yet integrated (database mode only)
    previous: TrustedState | None

    @property
    def state(self) -> TrustedState:
        return TrustedState(self.origin, self.size, self.root_hash, self.checkpoint)

    def summary(self) -> str:
        """The one-line summary printed on success."""
        parts = [
            f"OK: {self.source}: log {self.origin}, {self.size} leaves, "
            f"{self.checkpoints_verified} checkpoint(s) verified, "
            f"root {base64.b64encode(self.root_hash).decode('ascii')}",
        ]
        if self.unsequenced:
            parts.append(f"{self.unsequenced} record(s) not yet integrated")
        if self.previous is None:
            parts.append("no earlier checkpoint to compare with")
        else:
            parts.append(f"extends the checkpoint of size {self.previous.size} verified before")
        return "; ".join(parts)


# ------------------------------------------------------------------ shared checks


def _fail(message: str) -> AuditFailure:
    return AuditFailure(message)


def _leaf_hash_of(index: int, leaf: object) -> bytes:
    if not isinstance(leaf, bytes):
        raise _fail(f"leaf {index}: stored as {type(leaf).__name__}, not bytes")
    return leaf_hash(leaf)


def _decode_leaf(index: int, leaf: bytes) -> AccessRecord:
    """Check one leaf is a canonical access record and return it decoded.

    ``AccessRecord.decode`` accepts only the canonical encoding (exact lengths,
    strict UTF-8, no trailing bytes, sorted distinct providers), so a leaf that
    decodes is the encoding of its record; no re-encoding is needed.
    """
    try:
        return AccessRecord.decode(leaf)
    except LeafError as exc:
        raise _fail(f"leaf {index}: not a canonical access record ({exc})") from None


def _note_label(note: object) -> str:
    """``checkpoint N`` from a note's (unverified) size line, for messages only."""
    if isinstance(note, str):
        split = note.rfind("\n\n")
        try:
            return f"checkpoint {parse_checkpoint_body(note[: split + 1]).size}"
        except CheckpointError:
            pass
    return "checkpoint"


def _verify_note(label: str, note: object, vkey: KeyChain, origin: str) -> Checkpoint:
    if not isinstance(note, str):
        raise _fail(f"{label}: note is not text")
    try:
        return vkey.verify(note, origin)
    except NoteError as exc:
        raise _fail(f"{label}: bad signature ({exc})") from None
    except CheckpointError as exc:
        raise _fail(f"{label}: {exc}") from None


def _check_previous_size(previous: TrustedState | None, latest: Checkpoint) -> None:
    if previous is not None and latest.size < previous.size:
        raise _fail(f"rolled back: the latest checkpoint has size {latest.size}, smaller than "
                    f"the checkpoint of size {previous.size} verified before")


def _check_previous_root(previous: TrustedState | None, root_at_previous: bytes | None) -> None:
    if previous is None:
        return
    if root_at_previous is None or not hmac.compare_digest(root_at_previous,
                                                           previous.root_hash):
        raise _fail(f"rolled back: the first {previous.size} leaves do not have the root hash "
                    f"of the checkpoint of size {previous.size} verified before")


class _Tree:
    """The recomputed tree: a frontier plus the root at the previously verified size."""

    def __init__(self, previous: TrustedState | None) -> None:
        self.frontier = Frontier()
        self.previous = previous
        self.root_at_previous: bytes | None = (
            EMPTY_ROOT if previous is not None and previous.size == 0 else None)

    @property
    def size(self) -> int:
        return self.frontier.size

    def append(self, lh: bytes) -> list[tuple[int, int, bytes]]:
        nodes = self.frontier.append(lh)
        if self.previous is not None and self.frontier.size == self.previous.size:
            self.root_at_previous = self.frontier.root()
        return nodes


# --------------------------------------------------------------------- database


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
            raise _fail(f"database has no {table} table (is this a symbolsvc access log?)")
        for column in columns:
            if column not in have:
                raise _fail(f"database table {table} has no column {column}")


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

    def __init__(self, conn: sqlite3.Connection, vkey: KeyChain, origin: str) -> None:
        self._rows: Iterator[tuple[Any, str, Any]] = iter(conn.execute(
            "SELECT tree_size, typeof(tree_size), note FROM checkpoints ORDER BY tree_size"))
        self._vkey = vkey
        self._origin = origin
        self._next = next(self._rows, None)
        self.verified = 0
        self.latest_note: str | None = None
        self.latest: Checkpoint | None = None

    def pending_size(self) -> int | None:
        """The size of the next checkpoint not yet reached, if any."""
        return None if self._next is None else self._next[0]

    def settle(self, tree: _Tree) -> None:
        """Verify every checkpoint whose size the tree has now reached."""
        while self._next is not None:
            size, kind, note = self._next
            if kind != "integer" or size < 0:
                raise _fail(f"checkpoint {size!r}: tree size is not a non-negative integer")
            if size > tree.size:
                return
            label = f"checkpoint {size}"
            cp = _verify_note(label, note, self._vkey, self._origin)
            if cp.size != size:
                raise _fail(f"{label}: the note is for tree size {cp.size}")
            if not hmac.compare_digest(cp.root_hash, tree.frontier.root()):
                raise _fail(f"{label}: root hash does not match the first {size} leaves")
            self.verified += 1
            self.latest, self.latest_note = cp, note
            self._next = next(self._rows, None)


def verify_database(
    path: Path | str,
    vkey: KeyChain | VerifierKey,
    *,
    origin: str | None = None,
    previous: TrustedState | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> AuditReport:
    """Verify a copy of a symbolsvc SQLite database end to end; raise on the first problem.

    ``origin`` defaults to the verifier key's name (the service names its log
    key after the log's origin). The file is opened with ``mode=ro``.
    """
    if chunk < 1:
        raise ValueError("chunk must be positive")
    vkey = KeyChain.of(vkey)
    origin = origin or vkey.name
    path = Path(path)
    conn = _connect_read_only(path)
    try:
        try:
            return _verify_connection(conn, str(path), vkey, origin, previous, chunk)
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
) -> AuditReport:
    _check_schema(conn)
    latest_size = _latest_checkpoint_size(conn)
    tree = _Tree(previous)
    checkpoints = _StoredCheckpoints(conn, vkey, origin)
    checkpoints.settle(tree)

    leaves = conn.execute(
        "SELECT leaf_index, typeof(leaf_index), leaf, pseudonym FROM access_records "
        "WHERE leaf_index IS NOT NULL ORDER BY leaf_index")
    while rows := leaves.fetchmany(chunk):
        begin = tree.size
        nodes = _load_nodes(conn, begin, begin + len(rows))
        for index, kind, leaf, pseudonym in rows:
            expected = tree.size
            if kind != "integer":
                raise _fail(f"leaf {index!r}: leaf index is not an integer")
            if index != expected:
                if index > expected:
                    raise _fail(f"leaf {expected} missing")
                raise _fail(f"leaf {index}: duplicate or negative leaf index")
            if latest_size is None or index >= latest_size:
                limit = "no checkpoint" if latest_size is None else f"size {latest_size}"
                raise _fail(f"leaf {index}: beyond the latest checkpoint ({limit})")
            for level, idx, h in tree.append(_leaf_hash_of(index, leaf)):
                stored = nodes.pop((level, idx), None)
                if level == 0:
                    if stored is None:
                        raise _fail(f"leaf {index}: no tree node (level 0, index {index})")
                    if not (isinstance(stored, bytes) and hmac.compare_digest(stored, h)):
                        raise _fail(f"leaf {index}: hash does not match tree node")
                elif stored is None:
                    raise _fail(f"tree node (level {level}, index {idx}) missing")
                elif not (isinstance(stored, bytes) and hmac.compare_digest(stored, h)):
                    raise _fail(f"tree node (level {level}, index {idx}): hash does not "
                                "match the recomputed tree")
            if _decode_leaf(index, leaf).pseudonym != pseudonym:
                raise _fail(f"leaf {index}: the row's pseudonym column does not match the leaf")
            checkpoints.settle(tree)

    n = tree.size
    if checkpoints.pending_size() is not None:
        # A checkpoint signs more leaves than there are: the next one is gone.
        raise _fail(f"leaf {n} missing")
    extra = conn.execute(
        "SELECT level, idx FROM tree_nodes WHERE typeof(level) != 'integer' "
        "OR typeof(idx) != 'integer' OR level < 0 OR level > ? OR idx < 0 "
        "OR idx >= (? >> level) ORDER BY level, idx LIMIT 1", (_MAX_LEVEL, n)).fetchone()
    if extra is not None:
        raise _fail(f"tree node (level {extra[0]}, index {extra[1]}): beyond the tree of "
                    f"{n} leaves")
    state = conn.execute(
        "SELECT tree_size, frontier FROM log_state WHERE id = 1").fetchone()
    if state is None:
        if n:
            raise _fail("log_state: no row, but the log has leaves")
    else:
        if state[0] != n:
            raise _fail(f"log_state: tree size {state[0]!r} is not the {n} integrated leaves")
        if state[1] != tree.frontier.to_bytes():
            raise _fail("log_state: frontier does not match the recomputed tree")
    unsequenced = conn.execute(
        "SELECT count(*) FROM access_records WHERE leaf_index IS NULL").fetchone()[0]

    if checkpoints.latest is None or checkpoints.latest_note is None:
        if previous is not None:
            raise _fail(f"rolled back: the database has no checkpoint, but one of size "
                        f"{previous.size} was verified before")
        raise _fail("the database holds no checkpoint")
    latest = checkpoints.latest
    _check_previous_size(previous, latest)
    _check_previous_root(previous, tree.root_at_previous)
    return AuditReport(source, latest.origin, latest.size, latest.root_hash,
                       checkpoints.latest_note, checkpoints.verified, unsequenced, previous)


# -------------------------------------------------------------------------- gRPC


class AuditSource(Protocol):
    """What :func:`verify_remote` needs: the AuditService calls of ``AuditorClient``."""

    def checkpoint(self) -> str: ...

    def consistency_proof(self, first_size: int, second_size: int) -> list[bytes]: ...

    def entries(self, start: int, end: int) -> Sequence[Any]: ...  # items: .index, .leaf


def verify_remote(
    client: AuditSource,
    vkey: KeyChain | VerifierKey,
    *,
    origin: str | None = None,
    previous: TrustedState | None = None,
    source: str = "AuditService",
) -> AuditReport:
    """Verify the log served by an AuditService; raise on the first problem.

    Takes the latest checkpoint, checks it is consistent with ``previous`` (a
    consistency proof, then again from the leaves themselves), downloads every
    leaf of that checkpoint page by page and recomputes its root.
    """
    from symbolsvc_client.clients import CallError

    vkey = KeyChain.of(vkey)
    origin = origin or vkey.name
    try:
        return _verify_remote(client, vkey, origin, previous, source)
    except CallError as exc:  # the service did not answer: nothing was verified
        raise AuditError(f"{source}: {exc}") from None


def _verify_remote(client: AuditSource, vkey: KeyChain, origin: str,
                   previous: TrustedState | None, source: str) -> AuditReport:
    note = client.checkpoint()
    if previous is not None:
        vkey.resume_from(previous.checkpoint)
    latest = _verify_note(_note_label(note), note, vkey, origin)
    label = f"checkpoint {latest.size}"
    _check_previous_size(previous, latest)
    if previous is not None and 0 < previous.size:
        if previous.size == latest.size:
            if not hmac.compare_digest(previous.root_hash, latest.root_hash):
                raise _fail(f"rolled back: {label} has a different root hash from the "
                            "checkpoint of the same size verified before")
        else:
            proof = client.consistency_proof(previous.size, latest.size)
            try:
                verify_consistency(previous.size, latest.size, list(proof),
                                   previous.root_hash, latest.root_hash)
            except ProofError as exc:
                raise _fail(f"rolled back: {label} is not consistent with the checkpoint of "
                            f"size {previous.size} verified before ({exc})") from None

    tree = _Tree(previous)
    while tree.size < latest.size:
        page = client.entries(tree.size, latest.size)
        if not page:
            raise _fail(f"leaf {tree.size} missing")
        for entry in page:
            expected = tree.size
            index = entry.index
            if index != expected:
                if index >= latest.size:
                    raise _fail(f"leaf {index}: beyond the latest checkpoint "
                                f"(size {latest.size})")
                if index > expected:
                    raise _fail(f"leaf {expected} missing")
                raise _fail(f"leaf {index}: returned twice or out of order")
            if index >= latest.size:
                raise _fail(f"leaf {index}: beyond the latest checkpoint (size {latest.size})")
            leaf = entry.leaf
            tree.append(_leaf_hash_of(index, leaf))
            _decode_leaf(index, leaf)
    if not hmac.compare_digest(tree.frontier.root(), latest.root_hash):
        raise _fail(f"{label}: root hash does not match the first {latest.size} leaves")
    _check_previous_root(previous, tree.root_at_previous)
    return AuditReport(source, latest.origin, latest.size, latest.root_hash, note, 1, None,
                       previous)


# --------------------------------------------------------------------------- CLI


def run_verify(args: Any) -> int:
    """``symbolsvc audit verify``: 0 verified, 1 failed verification, 2 could not verify."""
    import sys

    try:
        report = _run(args)
    except AuditFailure as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except AuditError as exc:
        print(f"symbolsvc audit verify: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


def _run(args: Any) -> AuditReport:
    if args.db:
        if not args.vkey:
            raise AuditError("--db needs --vkey FILE (the deployment's pki/log.vkey)")
        vkey = load_vkey(args.vkey)
        previous = load_state(args.state, vkey) if args.state else None
        report = verify_database(args.db, vkey, origin=args.origin, previous=previous)
    else:
        from symbolsvc_client.channel import Deployment

        deployment = Deployment(args.deployment)
        vkey = load_vkey(args.vkey or deployment.pki / "log.vkey")
        previous = load_state(args.state, vkey) if args.state else None
        try:
            client = deployment.auditor(args.target, name=args.principal)
        except OSError as exc:
            raise AuditError(f"cannot load the {args.principal} identity: {exc}") from None
        with client:
            report = verify_remote(client, vkey, origin=args.origin, previous=previous,
                                   source=args.target)
    if args.state:
        try:
            save_state(args.state, report.state)
        except OSError as exc:
            raise AuditError(f"verified, but cannot write the state file: {exc}") from None
    return report
