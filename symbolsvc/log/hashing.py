"""RFC 9162 §2.1 hashing (SHA-256): leaves, interior nodes, roots, and hash checks.

Pure functions over bytes: no I/O, no clock, no globals. The rest of the tree
code (:mod:`.compact`, :mod:`.proofs`, :mod:`.verification`) is built on these.

A *node id* ``(level, index)`` names the root of the perfect subtree that
covers the leaves ``[index * 2**level, (index + 1) * 2**level)``. Level 0 is
the leaf hashes. Once a log has grown past the end of such a subtree its hash
never changes, so the server stores exactly these nodes (the ``tree_nodes``
table) and answers any proof with O(log n) reads.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_SIZE",
    "NewNode",
    "NodeID",
    "check_proof_size",
    "check_size",
    "checked_hash",
    "fold_right",
    "leaf_hash",
    "node_hash",
    "proof_hash",
    "root_from_leaf_hashes",
]


HASH_SIZE = 32
"""Length in bytes of every hash in the tree (SHA-256, RFC 9162 §2.1)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""``MTH({}) = SHA-256()``, the root of the empty tree (RFC 9162 §2.1.1)."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
MAX_SIZE = (1 << 64) - 1  # tree sizes are uint64 on the wire (RFC 9162 §4.10)

NodeID = tuple[int, int]
"""``(level, index)``: the perfect subtree over ``[index << level, (index + 1) << level)``."""

NewNode = tuple[int, int, bytes]
"""``(level, index, hash)`` of a perfect node completed by an append; persist it."""



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
    level = [checked_hash(h, "leaf hash") for h in hashes]
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Hash perfect subtree roots, given left to right, into the root over their span."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


# -------------------------------------------------------------------------- helpers


def checked_hash(h: bytes, what: str) -> bytes:
    """Return ``h`` as bytes if it is a 32-byte hash; raise ``ValueError`` otherwise."""
    if not isinstance(h, bytes | bytearray | memoryview) or len(h) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes")
    return bytes(h)


def proof_hash(h: bytes, what: str) -> bytes:
    try:
        return checked_hash(h, what)
    except ValueError as exc:
        raise ProofError(str(exc)) from None


def check_size(n: int, what: str) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_SIZE:
        raise ValueError(f"{what} must be an integer in [0, 2**64)")


def check_proof_size(n: int, what: str) -> None:
    try:
        check_size(n, what)
    except ValueError as exc:
        raise ProofError(str(exc)) from None
