"""RFC 9162 Merkle tree: published vectors, then exhaustive properties for small trees."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from helpers import VECTORS as TEST_VECTORS
from helpers.memory_tree import MemoryTree

from symbolsvc.log.compact import Frontier, range_node_ids
from symbolsvc.log.errors import ProofError
from symbolsvc.log.hashing import EMPTY_ROOT, NodeID, leaf_hash, node_hash, root_from_leaf_hashes
from symbolsvc.log.proofs import (
    consistency_proof,
    consistency_proof_nodes,
    inclusion_proof,
    inclusion_proof_nodes,
    tree_root,
)
from symbolsvc.log.verification import (
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

VECTORS = TEST_VECTORS
MAX_N = 64


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


CT = _load("rfc6962_ct.json")
CT_LEAVES = [bytes.fromhex(x) for x in CT["leaves"]]
CT_ROOTS = [bytes.fromhex(x) for x in CT["roots"]]
TD_INCLUSION = _load("tdmerkle_inclusion.json")["vectors"]
TD_CONSISTENCY = _load("tdmerkle_consistency.json")["vectors"]


def _b64(s: str) -> bytes:
    return base64.b64decode(s)


def _hexes(xs: list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in xs]


def _flip(h: bytes, bit: int) -> bytes:
    b = bytearray(h)
    b[bit // 8] ^= 1 << (bit % 8)
    return bytes(b)


def _tree(leaves: list[bytes]) -> MemoryTree:
    tree = MemoryTree()
    for leaf in leaves:
        tree.append(leaf_hash(leaf))
    return tree


@pytest.fixture(scope="module")
def ct_tree() -> MemoryTree:
    return _tree(CT_LEAVES)


@pytest.fixture(scope="module")
def big_tree() -> tuple[MemoryTree, list[bytes]]:
    """A tree of MAX_N leaves; proofs for every smaller size are taken from it."""
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_N)]
    tree = MemoryTree()
    for h in hashes:
        tree.append(h)
    return tree, hashes


@pytest.fixture(scope="module")
def roots(big_tree: tuple[MemoryTree, list[bytes]]) -> list[bytes]:
    _, hashes = big_tree
    return [root_from_leaf_hashes(hashes[:n]) for n in range(MAX_N + 1)]


# ------------------------------------------------------------- RFC 6962 CT vectors


def test_hash_primitives() -> None:
    assert EMPTY_ROOT.hex() == CT["roots"][0]
    assert leaf_hash(b"").hex() == CT["node_hashes"][0][0]
    l0, l1 = (bytes.fromhex(x) for x in CT["node_hashes"][0][:2])
    assert node_hash(l0, l1).hex() == CT["node_hashes"][1][0]


@pytest.mark.parametrize("size", range(9))
def test_ct_roots(size: int, ct_tree: MemoryTree) -> None:
    hashes = [leaf_hash(x) for x in CT_LEAVES[:size]]
    assert root_from_leaf_hashes(hashes) == CT_ROOTS[size]
    frontier = Frontier()
    for h in hashes:
        frontier.append(h)
    assert frontier.root() == CT_ROOTS[size]
    assert ct_tree.root(size) == CT_ROOTS[size]
    assert tree_root(size, ct_tree) == CT_ROOTS[size]


def test_ct_stored_nodes(ct_tree: MemoryTree) -> None:
    for level, row in enumerate(CT["node_hashes"]):
        ids: list[NodeID] = [(level, i) for i in range(len(row))]
        assert ct_tree.get_nodes(ids) == _hexes(row)


@pytest.mark.parametrize("vec", CT["inclusion"], ids=lambda v: f"{v['index']}-of-{v['size']}")
def test_ct_inclusion(vec: dict[str, Any], ct_tree: MemoryTree) -> None:
    index, size, proof = vec["index"], vec["size"], _hexes(vec["proof"])
    lh = leaf_hash(CT_LEAVES[index])
    assert inclusion_proof(index, size, ct_tree) == proof
    assert root_from_inclusion_proof(lh, index, size, proof) == CT_ROOTS[size]
    verify_inclusion(lh, index, size, proof, CT_ROOTS[size])


@pytest.mark.parametrize("vec", CT["consistency"], ids=lambda v: f"{v['size1']}-{v['size2']}")
def test_ct_consistency(vec: dict[str, Any], ct_tree: MemoryTree) -> None:
    m, n, proof = vec["size1"], vec["size2"], _hexes(vec["proof"])
    assert consistency_proof(m, n, ct_tree) == proof
    verify_consistency(m, n, proof, CT_ROOTS[m], CT_ROOTS[n])


# ------------------------------------------------------ transparency-dev/merkle JSON


@pytest.mark.parametrize("vec", TD_INCLUSION, ids=lambda v: v["source"])
def test_td_inclusion(vec: dict[str, Any], ct_tree: MemoryTree) -> None:
    args = (
        _b64(vec["leafHash"]),
        vec["leafIdx"],
        vec["treeSize"],
        [_b64(p) for p in vec["proof"] or []],
        _b64(vec["root"]),
    )
    if vec["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)
        # The vectors are built over the CT leaves: our construction must agree.
        _, index, size, proof, _ = args
        assert inclusion_proof(index, size, ct_tree) == proof


@pytest.mark.parametrize("vec", TD_CONSISTENCY, ids=lambda v: v["source"])
def test_td_consistency(vec: dict[str, Any], ct_tree: MemoryTree) -> None:
    m, n = vec["size1"], vec["size2"]
    proof = [_b64(p) for p in vec["proof"] or []]
    args = (m, n, proof, _b64(vec["root1"]), _b64(vec["root2"]))
    if vec["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)
        assert consistency_proof(m, n, ct_tree) == proof


def test_vector_files_cover_failures() -> None:
    assert sum(v["wantErr"] for v in TD_INCLUSION) >= 15
    assert sum(v["wantErr"] for v in TD_CONSISTENCY) >= 12


# --------------------------------------------------------------- inclusion, n <= 64


def _path_shape(index: int, size: int) -> list[bool]:
    """Reference RFC 9162 §2.1.3.1 PATH, recursively: True where the sibling is on the left."""
    if size <= 1:
        return []
    k = 1 << ((size - 1).bit_length() - 1)
    if index < k:
        return [*_path_shape(index, k), False]
    return [*_path_shape(index - k, size - k), True]


def _subproof_shape(m: int, n: int, known: bool = True) -> list[str]:
    """Reference RFC 9162 §2.1.4.1 SUBPROOF, recursively: which side each hash joins."""
    if m == n:
        return [] if known else ["start"]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*_subproof_shape(m, k, known), "right"]
    return [*_subproof_shape(m - k, n - k, False), "left"]


def _accepts(verify: Callable[..., None], *args: Any) -> bool:
    try:
        verify(*args)
    except ProofError:
        return False
    return True


@pytest.mark.parametrize("size", range(1, MAX_N + 1))
def test_inclusion_all_leaves(
    size: int, big_tree: tuple[MemoryTree, list[bytes]], roots: list[bytes]
) -> None:
    tree, hashes = big_tree
    root = roots[size]
    for index in range(size):
        proof = inclusion_proof(index, size, tree)
        verify_inclusion(hashes[index], index, size, proof, root)
        assert len(proof) == len(_path_shape(index, size))

        for i, p in enumerate(proof):  # any flipped bit in any proof hash
            for bit in (0, 7, 100, 255):
                tampered = [*proof[:i], _flip(p, bit), *proof[i + 1 :]]
                with pytest.raises(ProofError):
                    verify_inclusion(hashes[index], index, size, tampered, root)
        for other in range(size + 1):  # every other index, and one past the end
            if other != index:
                with pytest.raises(ProofError):
                    verify_inclusion(hashes[index], other, size, proof, root)
        for wrong in {size - 1, size + 1, size * 2, size // 2} - {size}:
            # A size whose audit path has the same shape accepts the same proof
            # (the signed checkpoint, not the proof, binds the size); any other fails.
            same_shape = wrong > index and _path_shape(index, wrong) == _path_shape(index, size)
            assert (
                _accepts(verify_inclusion, hashes[index], index, wrong, proof, root) is same_shape
            )
        with pytest.raises(ProofError):
            verify_inclusion(_flip(hashes[index], 3), index, size, proof, root)
        with pytest.raises(ProofError):
            verify_inclusion(hashes[index], index, size, proof, _flip(root, 3))
        with pytest.raises(ProofError):
            verify_inclusion(hashes[index], index, size, [*proof, root], root)
        if proof:
            with pytest.raises(ProofError):
                verify_inclusion(hashes[index], index, size, proof[:-1], root)


def test_tree_size_is_bound_by_the_checkpoint_not_the_proof(
    big_tree: tuple[MemoryTree, list[bytes]], roots: list[bytes]
) -> None:
    """Leaf 0's audit path has the same shape in trees of 5..8 leaves (RFC 9162 allows it)."""
    tree, hashes = big_tree
    proof = inclusion_proof(0, 5, tree)
    for size in (6, 7, 8):
        verify_inclusion(hashes[0], 0, size, proof, roots[5])


def test_inclusion_reads_are_logarithmic() -> None:
    for size in (1, 2, 3, 1000, 2**20 + 12345, 2**63 + 7):
        for index in {0, size // 3, size - 1}:
            n_ids = sum(len(s.ids) for s in inclusion_proof_nodes(index, size))
            assert n_ids <= 2 * size.bit_length()
            assert sum(s.ephemeral for s in inclusion_proof_nodes(index, size)) <= 1


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (5, 3), (-1, 4)])
def test_inclusion_nodes_reject_bad_arguments(index: int, size: int) -> None:
    with pytest.raises(ValueError, match=r"index|size"):
        inclusion_proof_nodes(index, size)


def test_verify_inclusion_rejects_malformed_input() -> None:
    h = leaf_hash(b"data")
    verify_inclusion(h, 0, 1, [], h)
    for leaf, root in ((h, b""), (b"", h), (h[:31], h), (h, h + b"\x00")):
        with pytest.raises(ProofError):
            verify_inclusion(leaf, 0, 1, [], root)
    for index, size in ((0, 0), (1, 0), (2, 1), (-1, 2)):
        with pytest.raises(ProofError):
            verify_inclusion(h, index, size, [], h)


# ------------------------------------------------------------- consistency, n <= 64


def test_consistency_all_pairs(
    big_tree: tuple[MemoryTree, list[bytes]], roots: list[bytes]
) -> None:
    tree, _ = big_tree
    for n in range(1, MAX_N + 1):
        for m in range(1, n + 1):
            proof = consistency_proof(m, n, tree)
            verify_consistency(m, n, proof, roots[m], roots[n])
            if m == n:
                assert proof == []
                with pytest.raises(ProofError):
                    verify_consistency(m, n, [roots[m]], roots[m], roots[n])
                continue
            for i, p in enumerate(proof):
                for bit in (0, 9, 255):
                    tampered = [*proof[:i], _flip(p, bit), *proof[i + 1 :]]
                    with pytest.raises(ProofError):
                        verify_consistency(m, n, tampered, roots[m], roots[n])
            bad_calls = [
                (m, n, proof[:-1], roots[m], roots[n]),
                (m, n, [*proof, roots[n]], roots[m], roots[n]),
                (m, n, [roots[m], *proof], roots[m], roots[n]),
                (m, n, [], roots[m], roots[n]),
                (m, n, proof, _flip(roots[m], 1), roots[n]),
                (m, n, proof, roots[m], _flip(roots[n], 1)),
                (m, n, proof, roots[n], roots[m]),
                (m, n, proof, roots[m - 1], roots[n]),
                (n, m, proof, roots[m], roots[n]),
                (m + 1, n, proof, roots[m], roots[n]),
                (m - 1, n, proof, roots[m], roots[n]),
            ]
            for call in bad_calls:
                with pytest.raises(ProofError):
                    verify_consistency(*call)
            for wrong in (n - 1, n + 1, n * 2):
                # As for inclusion: only a second size with the same proof shape accepts.
                same_shape = wrong >= m and _subproof_shape(m, wrong) == _subproof_shape(m, n)
                assert (
                    _accepts(verify_consistency, m, wrong, proof, roots[m], roots[n]) is same_shape
                )


def test_consistency_edge_cases() -> None:
    r = leaf_hash(b"x")
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    verify_consistency(0, 5, [], EMPTY_ROOT, r)
    verify_consistency(3, 3, [], r, r)
    bad = [
        (0, 5, [], r, r),  # the empty tree's root is fixed
        (0, 5, [r], EMPTY_ROOT, r),
        (3, 3, [], r, EMPTY_ROOT),
        (4, 3, [], r, r),
        (1, 2, [], r, r),
        (-1, 2, [], r, r),
        (1, 2, [b"short"], r, r),
        (1, 2, [r], b"", r),
    ]
    for call in bad:
        with pytest.raises(ProofError):
            verify_consistency(*call)
    assert consistency_proof_nodes(0, 9) == []
    with pytest.raises(ValueError, match="larger"):
        consistency_proof_nodes(5, 4)


def test_consistency_reads_are_logarithmic() -> None:
    for n in (2, 1000, 2**40 + 3):
        for m in {1, n // 2, n // 3 + 1, n - 1}:
            specs = consistency_proof_nodes(m, n)
            assert sum(len(s.ids) for s in specs) <= 2 * n.bit_length() + 1
            assert sum(s.ephemeral for s in specs) <= 1


# ----------------------------------------------------------------------- frontier


def _perfect_nodes(hashes: list[bytes]) -> dict[NodeID, bytes]:
    """Every perfect subtree inside [0, len(hashes)), by direct computation."""
    nodes: dict[NodeID, bytes] = {}
    level = 0
    while (1 << level) <= len(hashes):
        width = 1 << level
        for index in range(len(hashes) // width):
            nodes[(level, index)] = root_from_leaf_hashes(
                hashes[index * width : (index + 1) * width]
            )
        level += 1
    return nodes


def test_frontier_matches_reference_for_all_sizes(
    big_tree: tuple[MemoryTree, list[bytes]], roots: list[bytes]
) -> None:
    tree, hashes = big_tree
    frontier = Frontier()
    completed: dict[NodeID, bytes] = {}
    assert frontier.root() == EMPTY_ROOT
    for n, h in enumerate(hashes, start=1):
        new = frontier.append(h)
        assert new[0] == (0, n - 1, h)
        for level, index, node in new:
            assert (level, index) not in completed
            completed[(level, index)] = node
        assert frontier.size == n
        assert frontier.root() == roots[n]
        assert completed == _perfect_nodes(hashes[:n])
        assert list(frontier.hashes) == tree.get_nodes(frontier.node_ids())
        assert Frontier.from_bytes(frontier.to_bytes()) == frontier
        assert Frontier.from_reader(n, tree) == frontier
        copy = frontier.copy()
        copy.append(h)
        assert copy != frontier


def test_frontier_large() -> None:
    hashes = [leaf_hash(i.to_bytes(8, "big")) for i in range(1500)]
    frontier = Frontier()
    tree = MemoryTree()
    for h in hashes:
        frontier.append(h)
        tree.append(h)
    assert frontier.root() == root_from_leaf_hashes(hashes) == tree.root()
    for index in (0, 1, 777, 1023, 1024, 1499):
        verify_inclusion(
            hashes[index], index, 1500, inclusion_proof(index, 1500, tree), tree.root()
        )
    for m in (1, 3, 512, 1024, 1025, 1499):
        verify_consistency(m, 1500, consistency_proof(m, 1500, tree), tree.root(m), tree.root())


def test_frontier_serialisation_is_strict() -> None:
    frontier = Frontier()
    assert Frontier.from_bytes(frontier.to_bytes()) == frontier
    for i in range(5):
        frontier.append(leaf_hash(bytes([i])))
    data = frontier.to_bytes()
    assert len(data) == 8 + 32 * 2  # 5 = 0b101: two subtrees
    for bad in (data[:-1], data + b"\x00", data[:7], b"", (7).to_bytes(8, "big") + data[8:]):
        with pytest.raises(ValueError, match="frontier"):
            Frontier.from_bytes(bad)
    with pytest.raises(ValueError, match="leaf hash"):
        frontier.append(b"too short")


def test_range_node_ids() -> None:
    assert range_node_ids(0, 0) == []
    assert range_node_ids(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert range_node_ids(3, 13) == [(0, 3), (2, 1), (2, 2), (0, 12)]
    with pytest.raises(ValueError, match="after"):
        range_node_ids(5, 4)


def test_memory_tree_refuses_missing_nodes() -> None:
    tree = _tree(CT_LEAVES[:3])
    with pytest.raises(KeyError):
        tree.get_nodes([(1, 1)])  # leaves 2..3: not complete at size 3
    with pytest.raises(KeyError):
        inclusion_proof(0, 4, tree)
