"""The registry: holdings and access records, behind one storage interface.

The core talks only to :class:`Registry`; :mod:`.sqlite` is the embedded
default and later backends (PostgreSQL) implement the same interface and pass
the same conformance tests (tests/test_registry.py). The registry stores no
individual number and no value shared between one subject's rows for two
agencies: holdings are keyed by (agency, symbol) and carry a sealed subject
reference (see :mod:`symbolsvc.symbols`).

Every write method returns only once its transaction is durable on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from .keyversions import KeyVersionStore
from .keyversions import Move as Move
from .keyversions import VersionCount as VersionCount


@dataclass(frozen=True, slots=True)
class NewHolding:
    agency: str
    symbol: str
    sealed_subject: bytes


@dataclass(frozen=True, slots=True)
class NewRecord:
    """An access record to append; ``require`` names the holdings ``(agency, symbol)``
    that must all be live, checked in the transaction that appends the record."""

    leaf: bytes
    pseudonym: bytes
    sealed_subject: bytes
    require: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """An access record as stored; ``leaf_index`` is None until it is integrated."""

    id: int
    leaf: bytes
    sealed_subject: bytes
    leaf_index: int | None = None


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A published checkpoint: the signed note for the tree of ``tree_size`` leaves."""

    tree_size: int
    note: str
    signed_at_us: int


@dataclass(frozen=True, slots=True)
class Integration:
    """What one :meth:`LogStore.integrate` call did.

    ``leader`` is False when another holder has the sequencer lease (then
    nothing was written). ``tree_size`` is the tree's size as stored after the
    call; ``checkpoint`` the note signed by this call, if it signed one.
    """

    leader: bool
    integrated: int
    tree_size: int
    checkpoint: str | None


@dataclass(frozen=True, slots=True)
class LogStatus:
    """The stored tree size and who holds the sequencer lease until when (µs since epoch)."""

    tree_size: int
    lease_holder: str | None
    lease_expires_us: int


BuildRecord = Callable[[bytes], "NewRecord | None"]
"""``build(sealed_subject) -> record to append, or None``; see append_for_holdings."""

def build_records(
    builds: Sequence[BuildRecord], sealed: Sequence[bytes | None]
) -> tuple[list[tuple[bool, int | None]], list[NewRecord], list[int]]:
    """The backend-neutral middle of append_for_holdings: run each build whose holding
    is live. Returns the per-item results so far (``held``, no id yet), the records
    to append, and for each record the position of its item."""
    results: list[tuple[bool, int | None]] = [(False, None)] * len(builds)
    records: list[NewRecord] = []
    slots: list[int] = []
    for j, (build, ref) in enumerate(zip(builds, sealed, strict=True)):
        if ref is None:
            continue
        results[j] = (True, None)
        record = build(ref)
        if record is not None:
            records.append(record)
            slots.append(j)
    return results, records, slots


SignFn = Callable[[int, bytes], str]
"""``sign_fn(tree_size, root_hash) -> signed checkpoint note``."""


@runtime_checkable
class LogStore(Protocol):
    """The access log's storage (docs/ACCESS_LOG.md): the integrated tree, its perfect
    nodes, published checkpoints and the sequencer lease.

    Every statement stays within what PostgreSQL-compatible distributed engines
    accept: the lease is a row taken with a conditional UPDATE, never an
    advisory lock.
    """

    async def integrate(
        self, batch: int, holder: str, lease_ms: int, sign_fn: SignFn
    ) -> Integration:
        """One sequencer step, in ONE durable transaction: take or renew the lease for
        ``holder`` (re-checked inside the transaction, so a holder that lost it writes
        nothing), give up to ``batch`` unsequenced records consecutive leaf indices in
        queue order, store the perfect nodes they complete and the new frontier, and
        sign and store a checkpoint when the size changed (or none exists yet)."""

    async def release_lease(self, holder: str) -> None:
        """Let the lease expire now if ``holder`` holds it (graceful hand-over)."""

    async def log_status(self) -> LogStatus:
        """The stored tree size and the lease, read without writing."""

    async def get_nodes(self, ids: Sequence[tuple[int, int]]) -> list[bytes]:
        """Hashes of the stored perfect nodes ``(level, index)``, in order; ``KeyError``
        if any is missing."""

    async def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The checkpoint of the largest tree, or None before the first integration."""

    async def checkpoint_at(self, tree_size: int) -> StoredCheckpoint | None:
        """The checkpoint published for exactly ``tree_size`` leaves, if any."""

    async def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """``(leaf_index, leaf)`` for the integrated leaves in ``[start, end)``, in order."""

    async def record_by_id(self, record_id: int) -> StoredRecord | None:
        """One access record by its id."""

    async def integrated_after(self, after_leaf: int, limit: int) -> list[StoredRecord]:
        """Integrated records with leaf_index > ``after_leaf``, in leaf order."""


class Registry(LogStore, KeyVersionStore, Protocol):
    async def issue(self, items: Sequence[NewHolding]) -> list[bool]:
        """Register holdings; per item True when new (or re-created after release)."""

    async def release(self, agency: str, symbol: str) -> bool | None:
        """End a holding: True if it was live, False if already released, None if unknown."""

    async def lookup(self, agency: str, symbol: str) -> bytes | None:
        """The sealed subject reference of a live holding, or None."""

    async def lookup_many(self, keys: Sequence[tuple[str, str]]) -> list[bytes | None]:
        """:meth:`lookup` for several holdings in one round trip."""

    async def append_records(self, records: Sequence[NewRecord]) -> list[int | None]:
        """Append access records durably; per item its id, or None when any of its
        required holdings is not live (then nothing is written for it)."""

    async def append_for_holdings(
        self, items: Sequence[tuple[tuple[str, str], BuildRecord]]
    ) -> list[tuple[bool, int | None]]:
        """For each ``(holding, build)``, in ONE durable transaction per group: read the
        holding's sealed subject reference; when it is live, call ``build(sealed)`` (in
        the writer, so it must be quick and must not raise) and append the record it
        returns, if any, under that record's ``require``. Per item ``(held, id)``:
        ``held`` False when the holding is not live (nothing built or written), ``id``
        None when nothing was appended."""

    async def records_for_subject(
        self, pseudonym: bytes, before_id: int | None, limit: int
    ) -> list[StoredRecord]:
        """A subject's records with id < before_id (all if None), newest first."""

    async def records_after(self, after_id: int, limit: int) -> list[StoredRecord]:
        """Records with id > after_id, oldest first."""

    async def ping(self) -> None:
        """Raise :class:`symbolsvc.errors.Unavailable` when storage is unreachable."""

    async def close(self) -> None:
        """Finish queued writes and release resources."""
