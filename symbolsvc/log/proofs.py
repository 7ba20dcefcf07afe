"""Building RFC 9162 proofs from stored perfect nodes.

Construction (:func:`inclusion_proof_nodes`, :func:`consistency_proof_nodes`)
follows the ``PATH`` and ``PROOF``/``SUBPROOF`` definitions of §2.1.3.1 and
§2.1.4.1, unrolled into loops so that it never recurses or slices leaf lists.

An *ephemeral* node is an inner node of a tree whose size is not a power of
two that covers the incomplete right edge (RFC 9162 §2.1.1, ``MTH(D[k:n])``
with ``n - k`` not a power of two). It is never stored; its hash is
recomputed from the perfect nodes that cover the same leaves. This is the
scheme of transparency-dev/merkle's ``proof.Nodes`` / ``Rehash``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .compact import NodeReader, range_node_ids
from .errors import ProofError
from .hashing import EMPTY_ROOT, NodeID, check_size, checked_hash, fold_right

__all__ = [
    "NodeSpec",
    "consistency_proof",
    "consistency_proof_nodes",
    "inclusion_proof",
    "inclusion_proof_nodes",
    "resolve_nodes",
    "tree_root",
]


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
        return fold_right([checked_hash(h, "stored node hash") for h in hashes])



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
    check_size(index, "index")
    check_size(size, "size")
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
    check_size(size1, "size1")
    check_size(size2, "size2")
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
    check_size(size, "size")
    if size == 0:
        return EMPTY_ROOT
    return _range_spec(0, size).combine(reader.get_nodes(range_node_ids(0, size)))
