"""Merkle tree hashing, proofs and verification as in RFC 9162 §2.1 (SHA-256).

Everything here is a pure function over hashes: no I/O, no clock, no globals.

Vocabulary
----------
* A *node id* ``(level, index)`` names the root of the perfect subtree that
  covers the leaves ``[index * 2**level, (index + 1) * 2**level)``. Level 0 is
  the leaf hashes. Once a log has grown past the end of such a subtree its hash
  never changes, so the server stores exactly these nodes (the ``tree_nodes``
  table) and answers any proof with O(log n) reads.
* An *ephemeral* node is an inner node of a tree whose size is not a power of
  two that covers the incomplete right edge (RFC 9162 §2.1.1, ``MTH(D[k:n])``
  with ``n - k`` not a power of two). It is never stored; its hash is
  recomputed from the perfect nodes that cover the same leaves. This is the
  scheme of transparency-dev/merkle's ``proof.Nodes`` / ``Rehash``.
* The :class:`Frontier` is the list of perfect-subtree roots along the right
  edge (a "compact range" over ``[0, size)``): enough to append in O(log n) and
  to compute the root, and small enough to persist with every checkpoint.

Verification (:func:`verify_inclusion`, :func:`verify_consistency`) follows the
RFC 9162 §2.1.3.2 and §2.1.4.2 algorithms step by step; construction
(:func:`inclusion_proof_nodes`, :func:`consistency_proof_nodes`) follows the
``PATH`` and ``PROOF``/``SUBPROOF`` definitions of §2.1.3.1 and §2.1.4.1,
unrolled into loops so that it never recurses or slices leaf lists.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "MemoryTree",
    "NewNode",
    "NodeID",
    "NodeReader",
    "NodeSpec",
    "ProofError",
    "consistency_proof",
    "consistency_proof_nodes",
    "inclusion_proof",
    "inclusion_proof_nodes",
    "leaf_hash",
    "node_hash",
    "range_node_ids",
    "resolve_nodes",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256, RFC 9162 §2.1)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""``MTH({}) = SHA-256()``, the root of the empty tree (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_MAX_SIZE = (1 << 64) - 1  # tree sizes are uint64 on the wire (RFC 9162 §4.10)

NodeID = tuple[int, int]
"""``(level, index)``: the perfect subtree over ``[index << level, (index + 1) << level)``."""

NewNode = tuple[int, int, bytes]
"""``(level, index, hash)`` of a perfect node completed by an append; persist it."""


class ProofError(ValueError):
    """A proof, root or tree size failed verification; treat the log as untrusted.

    Raised for malformed input as well as for a well-formed proof that does not
    verify: a verifier must never distinguish "probably fine" from "verified".
    """


# --------------------------------------------------------------------------- hashing


def leaf_hash(leaf: bytes) -> bytes:
    """Return ``SHA-256(0x00 || leaf)``, the RFC 9162 §2.1.1 hash of one log entry."""
    return hashlib.sha256(_LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return ``SHA-256(0x01 || left || right)``, an RFC 9162 §2.1.1 interior node."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Return ``MTH(D[n])`` (RFC 9162 §2.1.1) for the given leaf hashes.

    Computed level by level: pair neighbours and carry an odd last node up
    unchanged. This equals the recursive "split at the largest power of two
    smaller than n" definition and needs no recursion or slicing, so it is
    usable for any n (the offline verifier recomputes whole logs with it).
    """
    if not hashes:
        return EMPTY_ROOT
    level = [_checked(h, "leaf hash") for h in hashes]
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


# ------------------------------------------------------------------- tree geometry


def range_node_ids(begin: int, end: int) -> list[NodeID]:
    """Return the perfect nodes covering leaves ``[begin, end)``, left to right.

    This is the canonical "compact range" decomposition: at each step take the
    largest perfect subtree that starts at ``begin`` and fits before ``end``.
    For ``begin = 0`` it is one node per set bit of ``end``, largest first;
    those are the nodes held by a :class:`Frontier` of size ``end``.
    """
    _check_size(begin, "begin")
    _check_size(end, "end")
    if begin > end:
        raise ValueError(f"range begin {begin} is after its end {end}")
    ids: list[NodeID] = []
    while begin < end:
        # Largest level the alignment of `begin` allows (any level when begin == 0)
        # that still fits in what is left of the range.
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, (begin & -begin).bit_length() - 1)
        ids.append((level, begin >> level))
        begin += 1 << level
    return ids


def _largest_power_of_two_below(n: int) -> int:
    """Return the ``k`` of RFC 9162 §2.1.1: the largest power of two with k < n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """How to obtain one hash of a proof from stored perfect nodes.

    ``ids`` lists stored perfect nodes left to right. With one id the proof
    hash is that node's hash. With several, the proof hash is an ephemeral
    node: the Merkle tree hash of the leaves those nodes cover together, i.e.
    ``node_hash(h0, node_hash(h1, ... node_hash(h[-2], h[-1])))``, which is
    ``MTH`` of the range because the range starts at a multiple of the power of
    two at or above its size (RFC 9162 §2.1.1 splits there).
    """

    ids: tuple[NodeID, ...]

    @property
    def ephemeral(self) -> bool:
        """True when the hash must be computed from more than one stored node."""
        return len(self.ids) > 1

    def combine(self, hashes: Sequence[bytes]) -> bytes:
        """Return the proof hash given the stored hashes of ``ids``, in order."""
        if len(hashes) != len(self.ids) or not hashes:
            raise ProofError(f"node spec needs {len(self.ids)} hashes, got {len(hashes)}")
        return _fold_right([_checked(h, "stored node hash") for h in hashes])


def _fold_right(hashes: Sequence[bytes]) -> bytes:
    """Hash perfect subtree roots, given left to right, into the root over their span."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _range_spec(begin: int, end: int) -> NodeSpec:
    """Spec for ``MTH(D[begin:end])`` as it appears in RFC 9162 proofs."""
    return NodeSpec(tuple(range_node_ids(begin, end)))


def inclusion_proof_nodes(index: int, size: int) -> list[NodeSpec]:
    """Describe the audit path ``PATH(index, D[size])`` of RFC 9162 §2.1.3.1.

    The result is ordered as the proof is: from the leaf's sibling up to the
    child of the root. At most one entry is ephemeral (the right edge of a tree
    whose size is not a power of two), and the specs name at most
    ``2 * log2(size)`` stored nodes in total.

    Raises ``ValueError`` unless ``0 <= index < size``.
    """
    _check_size(index, "index")
    _check_size(size, "size")
    if index >= size:
        raise ValueError(f"leaf index {index} is not below tree size {size}")
    top_down: list[NodeSpec] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:  # PATH(m, D[0:k]) : MTH(D[k:n])
            top_down.append(_range_spec(lo + k, hi))
            hi = lo + k
        else:  # PATH(m - k, D[k:n]) : MTH(D[0:k])
            top_down.append(_range_spec(lo, lo + k))
            lo += k
    top_down.reverse()
    return top_down


def consistency_proof_nodes(size1: int, size2: int) -> list[NodeSpec]:
    """Describe the consistency proof ``PROOF(size1, D[size2])`` of RFC 9162 §2.1.4.1.

    The result is ordered as the proof is. For ``size1 == size2`` and for
    ``size1 == 0`` the proof is empty (there is nothing to prove).

    Raises ``ValueError`` unless ``0 <= size1 <= size2``.
    """
    _check_size(size1, "size1")
    _check_size(size2, "size2")
    if size1 > size2:
        raise ValueError(f"tree size {size1} is larger than {size2}")
    if size1 in (0, size2):
        return []
    # SUBPROOF(m, D[lo:hi], b), unrolled. `m` stays an absolute leaf count.
    outer: list[NodeSpec] = []
    lo, hi, known_subtree = 0, size2, True
    while size1 != hi:
        k = _largest_power_of_two_below(hi - lo)
        if size1 <= lo + k:  # SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            outer.append(_range_spec(lo + k, hi))
            hi = lo + k
        else:  # SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            outer.append(_range_spec(lo, lo + k))
            lo += k
            known_subtree = False
    outer.reverse()
    if known_subtree:  # m == n with b true: the verifier already has MTH(D[0:m])
        return outer
    return [_range_spec(lo, hi), *outer]


# --------------------------------------------------------------- reading stored nodes


class NodeReader(Protocol):
    """A source of stored perfect-node hashes (the server's ``tree_nodes`` table)."""

    def get_nodes(self, ids: list[NodeID]) -> list[bytes]:
        """Return the hash of every node in ``ids``, in the same order.

        Must raise (``KeyError`` or a storage error) rather than omit a node.
        """
        ...


def resolve_nodes(specs: Sequence[NodeSpec], reader: NodeReader) -> list[bytes]:
    """Turn proof specs into proof hashes with one ``reader.get_nodes`` call."""
    ids = [node_id for spec in specs for node_id in spec.ids]
    if not ids:
        return []
    hashes = reader.get_nodes(ids)
    if len(hashes) != len(ids):
        raise ProofError(f"node reader returned {len(hashes)} hashes for {len(ids)} ids")
    proof: list[bytes] = []
    pos = 0
    for spec in specs:
        n = len(spec.ids)
        proof.append(spec.combine(hashes[pos : pos + n]))
        pos += n
    return proof


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """Return the RFC 9162 §2.1.3.1 inclusion proof for leaf ``index`` in tree ``size``."""
    return resolve_nodes(inclusion_proof_nodes(index, size), reader)


def consistency_proof(size1: int, size2: int, reader: NodeReader) -> list[bytes]:
    """Return the RFC 9162 §2.1.4.1 consistency proof from tree ``size1`` to ``size2``."""
    return resolve_nodes(consistency_proof_nodes(size1, size2), reader)


def tree_root(size: int, reader: NodeReader) -> bytes:
    """Return ``MTH(D[size])`` from at most ``log2(size) + 1`` stored nodes."""
    _check_size(size, "size")
    if size == 0:
        return EMPTY_ROOT
    return _range_spec(0, size).combine(reader.get_nodes(range_node_ids(0, size)))


# ------------------------------------------------------------------------ frontier


class Frontier:
    """The right edge of a log tree: one perfect-subtree root per set bit of ``size``.

    ``append`` is O(log n) and reports the perfect nodes it completed, so a
    server can persist them and later answer proofs from storage. The state
    round-trips through :meth:`to_bytes` / :meth:`from_bytes` (8-byte
    big-endian size followed by the 32-byte hashes, largest subtree first).
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        self._size = 0
        self._hashes: list[bytes] = []  # left to right: largest subtree first

    @classmethod
    def from_hashes(cls, size: int, hashes: Iterable[bytes]) -> Frontier:
        """Rebuild a frontier from its size and the hashes of ``range_node_ids(0, size)``."""
        _check_size(size, "size")
        hs = [_checked(h, "frontier hash") for h in hashes]
        if len(hs) != size.bit_count():
            raise ValueError(
                f"a frontier of size {size} has {size.bit_count()} hashes, not {len(hs)}"
            )
        frontier = cls()
        frontier._size = size
        frontier._hashes = hs
        return frontier

    @classmethod
    def from_reader(cls, size: int, reader: NodeReader) -> Frontier:
        """Load the frontier of tree ``size`` from stored nodes (e.g. after a restart)."""
        _check_size(size, "size")
        ids = range_node_ids(0, size)
        return cls.from_hashes(size, reader.get_nodes(ids) if ids else [])

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The right-edge hashes, largest (leftmost) subtree first."""
        return tuple(self._hashes)

    def node_ids(self) -> list[NodeID]:
        """The ids of :attr:`hashes`, in the same order."""
        return range_node_ids(0, self._size)

    def append(self, leaf_hash: bytes) -> list[NewNode]:
        """Append one leaf hash; return every perfect node this completed.

        The first returned node is the leaf itself, ``(0, old_size, leaf_hash)``;
        then one node per level that the new leaf closed, lowest first.
        """
        h = _checked(leaf_hash, "leaf hash")
        if self._size >= _MAX_SIZE:
            raise ValueError("tree size would overflow uint64")
        index = self._size
        completed: list[NewNode] = [(0, index, h)]
        level = 0
        while index & 1:  # the new node is a right child: merge with its left sibling
            h = node_hash(self._hashes.pop(), h)
            level += 1
            index >>= 1
            completed.append((level, index, h))
        self._hashes.append(h)
        self._size += 1
        return completed

    def root(self) -> bytes:
        """Return ``MTH(D[size])`` (RFC 9162 §2.1.1)."""
        return _fold_right(self._hashes) if self._hashes else EMPTY_ROOT

    def copy(self) -> Frontier:
        """Return an independent copy (to compute a root without committing appends)."""
        return Frontier.from_hashes(self._size, self._hashes)

    def to_bytes(self) -> bytes:
        """Serialise as ``uint64be(size) || hashes``."""
        return self._size.to_bytes(8, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> Frontier:
        """Parse :meth:`to_bytes` output; raise ``ValueError`` on any malformation."""
        if len(data) < 8:
            raise ValueError("frontier state is shorter than its 8-byte size")
        size = int.from_bytes(data[:8], "big")
        body = data[8:]
        if len(body) != HASH_SIZE * size.bit_count():
            raise ValueError(f"frontier state for size {size} must carry {size.bit_count()} hashes")
        return cls.from_hashes(
            size, [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)]
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frontier):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()})"


class MemoryTree:
    """An in-memory log tree that keeps every perfect node: a :class:`NodeReader` for tests.

    It stores exactly what a server persists (the nodes :meth:`Frontier.append`
    reports), so proofs built from it exercise the same path as production.
    """

    def __init__(self) -> None:
        self._frontier = Frontier()
        self._nodes: dict[NodeID, bytes] = {}

    @property
    def size(self) -> int:
        """Number of leaves."""
        return self._frontier.size

    def append(self, leaf_hash: bytes) -> list[NewNode]:
        """Append a leaf hash; store and return the perfect nodes it completed."""
        completed = self._frontier.append(leaf_hash)
        for level, index, h in completed:
            self._nodes[(level, index)] = h
        return completed

    def root(self, size: int | None = None) -> bytes:
        """Root of the whole tree, or of its first ``size`` leaves."""
        if size is None:
            return self._frontier.root()
        if size > self.size:
            raise ValueError(f"tree has {self.size} leaves, not {size}")
        return tree_root(size, self)

    def get_nodes(self, ids: list[NodeID]) -> list[bytes]:
        """Return stored node hashes; ``KeyError`` for a node not (yet) complete."""
        return [self._nodes[node_id] for node_id in ids]


# --------------------------------------------------------------------- verification


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Compute the root implied by an inclusion proof (RFC 9162 §2.1.3.2, steps 1-4).

    Also checks the structural part of step 5 (``sn`` reaches 0, so the proof
    has exactly the right length). Raises :class:`ProofError`.
    """
    _check_proof_size(index, "leaf index")
    _check_proof_size(size, "tree size")
    r = _proof_hash(leaf_hash, "leaf hash")
    # 1. If leaf_index >= tree_size, fail.
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    # 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
    fn, sn = index, size - 1
    # 4. For each value p in inclusion_path:
    for p in proof:
        p = _proof_hash(p, "inclusion proof hash")
        # a. If sn is 0, stop and fail.
        if sn == 0:
            raise ProofError("inclusion proof is longer than the path to the root")
        # b. If LSB(fn) is set, or fn == sn:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        # c. Right-shift both fn and sn once.
        fn >>= 1
        sn >>= 1
    # 5. (structural half) sn must be 0.
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the path to the root")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify an RFC 9162 §2.1.3.2 inclusion proof; raise :class:`ProofError` if it fails."""
    expected = _proof_hash(root, "root hash")
    got = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if not hmac.compare_digest(got, expected):
        raise ProofError("inclusion proof does not lead to the given root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Verify an RFC 9162 §2.1.4.2 consistency proof; raise :class:`ProofError` if it fails.

    The RFC defines the algorithm for ``0 < size1 < size2``. The edge cases are
    decided here: ``size1 == size2`` needs an empty proof and equal roots;
    ``size1 == 0`` needs an empty proof and ``root1`` equal to the empty-tree
    root (the empty tree is a prefix of every tree); ``size1 > size2`` fails.
    """
    _check_proof_size(size1, "size1")
    _check_proof_size(size2, "size2")
    first_hash = _proof_hash(root1, "first root hash")
    second_hash = _proof_hash(root2, "second root hash")
    if size1 > size2:
        raise ProofError(f"tree size {size1} is larger than {size2}: the log went backwards")
    if size1 == size2 or size1 == 0:
        if proof:
            raise ProofError("consistency proof must be empty for these tree sizes")
        expected = second_hash if size1 == size2 else EMPTY_ROOT
        if not hmac.compare_digest(first_hash, expected):
            raise ProofError("root hash does not match for this tree size")
        return

    path = [_proof_hash(c, "consistency proof hash") for c in proof]
    # 1. If consistency_path is empty, fail.
    if not path:
        raise ProofError("consistency proof is empty")
    # 2. If first is an exact power of 2, prepend first_hash to consistency_path.
    if size1 & (size1 - 1) == 0:
        path.insert(0, first_hash)
    # 3. fn = first - 1, sn = second - 1.
    fn, sn = size1 - 1, size2 - 1
    # 4. If LSB(fn) is set, right-shift fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. fr = sr = first value of consistency_path.
    fr = sr = path[0]
    # 6. For each subsequent value c:
    for c in path[1:]:
        # a. If sn is 0, stop and fail.
        if sn == 0:
            raise ProofError("consistency proof is longer than the path to the root")
        # b. If LSB(fn) is set, or fn == sn:
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # If LSB(fn) is not set, right-shift until LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        # c. Right-shift both fn and sn once.
        fn >>= 1
        sn >>= 1
    # 7. fr == first_hash, sr == second_hash, sn == 0.
    if sn != 0:
        raise ProofError("consistency proof is shorter than the path to the root")
    if not hmac.compare_digest(fr, first_hash):
        raise ProofError("consistency proof does not lead to the first root")
    if not hmac.compare_digest(sr, second_hash):
        raise ProofError("consistency proof does not lead to the second root")


# -------------------------------------------------------------------------- helpers


def _checked(h: bytes, what: str) -> bytes:
    """Return ``h`` as bytes if it is a 32-byte hash; raise ``ValueError`` otherwise."""
    if not isinstance(h, bytes | bytearray | memoryview) or len(h) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes")
    return bytes(h)


def _proof_hash(h: bytes, what: str) -> bytes:
    try:
        return _checked(h, what)
    except ValueError as exc:
        raise ProofError(str(exc)) from None


def _check_size(n: int, what: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= _MAX_SIZE:
        raise ValueError(f"{what} must be an integer in [0, 2**64)")


def _check_proof_size(n: int, what: str) -> None:
    try:
        _check_size(n, what)
    except ValueError as exc:
        raise ProofError(str(exc)) from None
