"""An in-memory log tree for tests: a :class:`~symbolsvc.log.compact.NodeReader` that keeps
every perfect node, exactly what a server persists (the nodes
:meth:`~symbolsvc.log.compact.Frontier.append` reports), so proofs built from it
exercise the same path as production. Test-only: the product never holds a whole tree.
"""

from __future__ import annotations

from symbolsvc.log.compact import Frontier
from symbolsvc.log.hashing import NewNode, NodeID
from symbolsvc.log.proofs import tree_root


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
