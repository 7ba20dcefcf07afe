"""Verifying RFC 9162 proofs: §2.1.3.2 (inclusion) and §2.1.4.2 (consistency).

Each function follows the RFC's algorithm step by step and raises
:class:`~.errors.ProofError` on any failure, malformed input included: a verifier
must never distinguish "probably fine" from "verified". Used by the server's
tests, by the independent auditor (:mod:`symbolsvc.verify`) and by clients.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from .errors import ProofError
from .hashing import EMPTY_ROOT, check_proof_size, node_hash, proof_hash

__all__ = ["root_from_inclusion_proof", "verify_consistency", "verify_inclusion"]


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Compute the root implied by an inclusion proof (RFC 9162 §2.1.3.2, steps 1-4).

    Also checks the structural part of step 5 (``sn`` reaches 0, so the proof
    has exactly the right length). Raises :class:`ProofError`.
    """
    check_proof_size(index, "leaf index")
    check_proof_size(size, "tree size")
    r = proof_hash(leaf_hash, "leaf hash")
    # 1. If leaf_index >= tree_size, fail.
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    # 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
    fn, sn = index, size - 1
    # 4. For each value p in inclusion_path:
    for p in proof:
        p = proof_hash(p, "inclusion proof hash")
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
    expected = proof_hash(root, "root hash")
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
    check_proof_size(size1, "size1")
    check_proof_size(size2, "size2")
    first_hash = proof_hash(root1, "first root hash")
    second_hash = proof_hash(root2, "second root hash")
    if size1 > size2:
        raise ProofError(f"tree size {size1} is larger than {size2}: the log went backwards")
    if size1 == size2 or size1 == 0:
        if proof:
            raise ProofError("consistency proof must be empty for these tree sizes")
        expected = second_hash if size1 == size2 else EMPTY_ROOT
        if not hmac.compare_digest(first_hash, expected):
            raise ProofError("root hash does not match for this tree size")
        return

    path = [proof_hash(c, "consistency proof hash") for c in proof]
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
