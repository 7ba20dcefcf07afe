"""The compact range over ``[0, size)``: the right edge of a log tree (RFC 9162 §2.1).

The :class:`Frontier` is the list of perfect-subtree roots along the right edge:
enough to append in O(log n) and to compute the root, and small enough to
persist with every checkpoint (``log_state``). :func:`range_node_ids` is the
canonical decomposition of any leaf range into perfect nodes; the server
stores exactly the perfect nodes an append completes (``tree_nodes``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .hashing import (
    EMPTY_ROOT,
    HASH_SIZE,
    MAX_SIZE,
    NewNode,
    NodeID,
    check_size,
    checked_hash,
    fold_right,
    node_hash,
)

__all__ = ["Frontier", "NodeReader", "range_node_ids"]


def range_node_ids(begin: int, end: int) -> list[NodeID]:
    """Return the perfect nodes covering leaves ``[begin, end)``, left to right.

    This is the canonical "compact range" decomposition: at each step take the
    largest perfect subtree that starts at ``begin`` and fits before ``end``.
    For ``begin = 0`` it is one node per set bit of ``end``, largest first;
    those are the nodes held by a :class:`Frontier` of size ``end``.
    """
    check_size(begin, "begin")
    check_size(end, "end")
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


class NodeReader(Protocol):
    """A source of stored perfect-node hashes (the server's ``tree_nodes`` table)."""

    def get_nodes(self, ids: list[NodeID]) -> list[bytes]:
        """Return the hash of every node in ``ids``, in the same order.

        Must raise (``KeyError`` or a storage error) rather than omit a node.
        """
        ...


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
        check_size(size, "size")
        hs = [checked_hash(h, "frontier hash") for h in hashes]
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
        check_size(size, "size")
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
        h = checked_hash(leaf_hash, "leaf hash")
        if self._size >= MAX_SIZE:
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
        return fold_right(self._hashes) if self._hashes else EMPTY_ROOT

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
