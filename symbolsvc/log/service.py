"""Serving the access log: checkpoints, proofs and exact leaves (the auditor's reads).

The behaviour of AuditService (docs/ACCESS_LOG.md, "Serving"), without gRPC:
the servicer translates protobuf to these methods and back. The portal's view
(:mod:`symbolsvc.disclosure`) uses :meth:`AccessLog.inclusion_hashes` for its
record proofs. Every proof is built from stored perfect nodes (``tree_nodes``)
with the pure functions of :mod:`.proofs`, so it costs O(log n) reads, and is
bounded by the latest checkpoint: nothing is proved about a tree that has not
been signed.

Errors: malformed sizes and indices raise
:class:`~symbolsvc.errors.InvalidArgument` (``ProofError`` / ``ValueError``
from the tree code never reach the caller as such).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..errors import FailedPrecondition, InvalidArgument, SymbolsvcError
from ..paging import bounded
from ..registry import LogStore, StoredCheckpoint
from .errors import ProofError
from .hashing import NodeID
from .proofs import NodeSpec, consistency_proof_nodes, inclusion_proof_nodes, resolve_nodes

log = logging.getLogger("symbolsvc.log")

MAX_ENTRIES = 1000
"""Most leaves one ListEntries call returns (and at most :data:`~symbolsvc.paging.PAGE_BYTES`
of leaves after the first)."""


class _Fetched:
    """A :class:`~.compact.NodeReader` over nodes already read for exactly these ids."""

    def __init__(self, ids: list[NodeID], hashes: list[bytes]) -> None:
        self._ids, self._hashes = ids, hashes

    def get_nodes(self, ids: list[NodeID]) -> list[bytes]:
        if ids != self._ids:
            raise ProofError("proof nodes were read for other ids")
        return self._hashes


class AccessLog:
    """Read side of the access log over a :class:`~symbolsvc.registry.LogStore`."""

    def __init__(self, store: LogStore) -> None:
        self._store = store

    # -- audit ------------------------------------------------------------------

    async def checkpoint(self) -> StoredCheckpoint:
        """The latest signed checkpoint."""
        cp = await self._store.latest_checkpoint()
        if cp is None:
            raise FailedPrecondition(
                "NO_CHECKPOINT", "the access log has no checkpoint yet; retry in a second")
        return cp

    async def consistency_proof(self, first_size: int, second_size: int) -> list[bytes]:
        """RFC 9162 §2.1.4 proof that tree ``second_size`` extends tree ``first_size``."""
        latest = (await self.checkpoint()).tree_size
        if not 0 < first_size <= second_size <= latest:
            raise InvalidArgument(
                "BAD_TREE_SIZE",
                f"need 0 < first_size <= second_size <= {latest} (the latest checkpoint's "
                f"size); got {first_size} and {second_size}", "first_size")
        return await self._resolve(_specs(consistency_proof_nodes, first_size, second_size))

    async def inclusion_proof(self, leaf_index: int, tree_size: int) -> list[bytes]:
        """RFC 9162 §2.1.3 proof that leaf ``leaf_index`` is in tree ``tree_size``."""
        latest = (await self.checkpoint()).tree_size
        if not 0 <= leaf_index < tree_size <= latest:
            raise InvalidArgument(
                "BAD_TREE_SIZE",
                f"need leaf_index < tree_size <= {latest} (the latest checkpoint's size); "
                f"got {leaf_index} and {tree_size}", "tree_size")
        return await self._resolve(_specs(inclusion_proof_nodes, leaf_index, tree_size))

    async def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Exact leaves ``[start, min(end, start + MAX_ENTRIES, latest size))``, cut after
        :data:`~symbolsvc.paging.PAGE_BYTES` of leaves (the caller pages on)."""
        latest = (await self.checkpoint()).tree_size
        if start >= end:
            raise InvalidArgument("BAD_RANGE", f"start ({start}) must be below end ({end})",
                                  "start")
        if start > latest:
            raise InvalidArgument(
                "BAD_RANGE", f"start ({start}) is beyond the latest checkpoint's size "
                f"({latest})", "start")
        stop = min(end, latest, start + MAX_ENTRIES)
        if start == stop:
            return []
        rows = await self._store.entries(start, stop)
        if [i for i, _ in rows] != list(range(start, stop)):
            log.error("access log leaves %d..%d are not all stored", start, stop - 1)
            raise SymbolsvcError("LOG_DAMAGED", "the access log's stored leaves are incomplete; "
                                 "the operator has been alerted")
        return bounded(rows, lambda row: len(row[1]))

    async def _resolve(self, specs: list[NodeSpec]) -> list[bytes]:
        ids = [node for spec in specs for node in spec.ids]
        try:
            hashes = await self._store.get_nodes(ids) if ids else []
        except KeyError:
            log.error("the access log's tree_nodes lack a node a proof needs")
            raise SymbolsvcError("LOG_DAMAGED", "the access log's stored tree is incomplete; "
                                 "the operator has been alerted") from None
        return resolve_nodes(specs, _Fetched(ids, hashes))

    async def inclusion_hashes(self, leaf_index: int, tree_size: int) -> list[bytes]:
        """The inclusion proof of a leaf in a tree the caller knows is signed (no checks
        of the sizes against the latest checkpoint: the caller made them)."""
        return await self._resolve(inclusion_proof_nodes(leaf_index, tree_size))


def _specs(fn: Callable[[int, int], list[NodeSpec]], a: int, b: int) -> list[NodeSpec]:
    try:
        return fn(a, b)
    except ValueError as exc:  # ProofError is a ValueError
        raise InvalidArgument("BAD_TREE_SIZE", str(exc)) from None


__all__ = ["MAX_ENTRIES", "AccessLog"]
