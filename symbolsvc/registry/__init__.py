"""The registry: holdings and access records, behind one storage interface.

Two halves, one object per backend: :class:`HoldingsStore` (who holds which
symbol; the access records appended with each exchange) serves the core, and
:class:`LogStore` (the integrated tree, checkpoints, the sequencer lease) serves
the access log. :class:`Registry` is both. :mod:`.sqlite` is the embedded
default, :mod:`.postgres` the production backend; both pass the same suite
(tests/registry). :mod:`.backends` picks one by the URL's scheme. The registry
holds no tree code: integration is planned by :mod:`symbolsvc.log.integrate`
and only applied here.

The registry stores no individual number and no value shared between one
subject's rows for two agencies: holdings are keyed by (agency, symbol) and
carry a sealed subject reference (see :mod:`symbolsvc.subjects`).

Every write method returns only once its transaction is durable on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

from .keyversions import KeyVersionStore
from .keyversions import Move as Move
from .keyversions import VersionCount as VersionCount

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class NewHolding:
    agency: str
    symbol: str
    sealed_subject: bytes


@dataclass(frozen=True, slots=True)
class ExchangeTag:
    """The keyed identity of an exchange, ``(requester_agency, exchange_id)``, and the keyed
    digest of its content (symbolsvc.exchanges): at most one record per ``key``."""

    key: bytes
    digest: bytes


@dataclass(frozen=True, slots=True)
class PriorExchange:
    """The record an exchange already wrote and the digest of the content it had."""

    digest: bytes
    record_id: int
    leaf: bytes


@dataclass(frozen=True, slots=True)
class NewRecord:
    """An access record to append; ``require`` names the holdings ``(agency, symbol)``
    that must all be live, checked in the transaction that appends the record.

    ``otherwise()`` builds the record appended instead (under its own ``require``) when a
    holding this record requires is not live: a refused exchange is still recorded (built
    only then, so the common case pays nothing for it). ``exchange``
    makes the append conditional on no record holding the same exchange key: a record
    whose key is taken is not appended (nor its ``otherwise``)."""

    leaf: bytes
    pseudonym: bytes
    sealed_subject: bytes
    require: tuple[tuple[str, str], ...] = ()
    otherwise: Callable[[], NewRecord] | None = None
    exchange: ExchangeTag | None = None


Placed = tuple[int, bool] | None
"""Where a backend appended one :class:`NewRecord`: ``(id, True when its otherwise was
appended)``, or None when neither was."""


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
class LogState:
    """The stored tree (``log_state``): its size and its serialised compact range."""

    tree_size: int
    frontier: bytes


@dataclass(frozen=True, slots=True)
class IntegrationInput:
    """What a backend reads, under the lease, for one integration step.

    ``state`` is None before the first leaf; ``latest_checkpoint`` the size of the
    largest stored checkpoint (None before the first); ``queued`` the oldest
    unsequenced records ``(id, leaf)``, in queue (id) order.
    """

    state: LogState | None
    latest_checkpoint: int | None
    queued: Sequence[tuple[int, bytes]]


@dataclass(frozen=True, slots=True)
class IntegrationPlan:
    """What a backend writes, in the same transaction, for one integration step.

    ``assign`` gives records their leaf indices ``(leaf_index, id)``; ``nodes`` are
    the perfect tree nodes ``(level, index, hash)`` they complete; ``state`` the new
    ``log_state`` (None: unchanged); ``checkpoint`` the ``(tree_size, note)`` to
    publish (None: none). ``tree_size`` is the tree's size after the step.
    """

    assign: Sequence[tuple[int, int]]
    nodes: Sequence[tuple[int, int, bytes]]
    state: LogState | None
    checkpoint: tuple[int, str] | None
    tree_size: int


PlanFn = Callable[[IntegrationInput], IntegrationPlan]
"""``plan(input) -> plan``: pure; raises (and so rolls the step back) on damaged state."""


@dataclass(frozen=True, slots=True)
class LogStatus:
    """The stored tree size and who holds the sequencer lease until when (µs since epoch)."""

    tree_size: int
    lease_holder: str | None
    lease_expires_us: int


@dataclass(frozen=True, slots=True)
class Built(Generic[T]):
    """What a write unit's build step returns: the record to append (None: nothing) and
    the caller's own result for the item (say, the provider's symbol, or an error)."""

    record: NewRecord | None
    value: T


@dataclass(frozen=True, slots=True)
class Appended(Generic[T]):
    """One item's outcome in :meth:`HoldingsStore.append_for_holdings`.

    ``held`` is False when the holding was not live (then nothing was built);
    ``record_id`` is the appended record's id (None: nothing was appended, because
    the build returned no record or a required holding was not live); ``value`` is
    what the build returned (None when not held).
    """

    held: bool
    record_id: int | None = None
    value: T | None = None
    fallback: bool = False  # the record appended was the build's ``otherwise``


BuildRecord = Callable[[bytes], Built[T]]
"""``build(sealed_subject) -> Built``; see :meth:`HoldingsStore.append_for_holdings`."""


def build_records(
    builds: Sequence[BuildRecord[T]], sealed: Sequence[bytes | None]
) -> tuple[list[Appended[T]], list[NewRecord], list[int]]:
    """The backend-neutral middle of append_for_holdings: run each build whose holding
    is live. Returns the per-item outcomes so far (no record ids yet), the records to
    append, and for each record the position of its item."""
    results: list[Appended[T]] = []
    records: list[NewRecord] = []
    slots: list[int] = []
    for j, (build, ref) in enumerate(zip(builds, sealed, strict=True)):
        if ref is None:
            results.append(Appended(False))
            continue
        built = build(ref)
        results.append(Appended(True, None, built.value))
        if built.record is not None:
            records.append(built.record)
            slots.append(j)
    return results, records, slots


def with_ids(results: list[Appended[T]], slots: Sequence[int],
             placed: Sequence[Placed]) -> list[Appended[T]]:
    """``results`` with the appended records' ids filled in at ``slots``."""
    for j, where in zip(slots, placed, strict=True):
        if where is not None:
            results[j] = Appended(True, where[0], results[j].value, where[1])
    return results


def ids_of(placed: Sequence[Placed]) -> list[int | None]:
    """The ids of :meth:`HoldingsStore.append_records`' answer."""
    return [None if where is None else where[0] for where in placed]


@runtime_checkable
class LogStore(Protocol):
    """The access log's storage (docs/ACCESS_LOG.md): the integrated tree, its perfect
    nodes, published checkpoints and the sequencer lease.

    Every statement stays within what PostgreSQL-compatible distributed engines
    accept: the lease is a row taken with a conditional UPDATE, never an
    advisory lock.
    """

    async def integrate(
        self, batch: int, holder: str, lease_ms: int, plan: PlanFn
    ) -> Integration:
        """One sequencer step, in ONE durable transaction: take or renew the lease for
        ``holder`` (re-checked inside the transaction, so a holder that lost it writes
        nothing), read the stored state, the latest checkpoint's size and up to
        ``batch`` unsequenced records in queue order, call ``plan`` on them, and
        write what it returns. If ``plan`` raises, nothing is written."""

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


@runtime_checkable
class HoldingsStore(KeyVersionStore, Protocol):
    """Holdings and the appending and reading of access records (the core's side), and the
    holdings' key versions (keyversions.py)."""

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
        required holdings is not live or its exchange key is taken (then nothing is
        written for it)."""

    async def prior_exchange(self, key: bytes) -> PriorExchange | None:
        """The record holding exchange key ``key`` (see :class:`ExchangeTag`), if any."""

    async def append_for_holdings(
        self, items: Sequence[tuple[tuple[str, str], BuildRecord[T]]]
    ) -> list[Appended[T]]:
        """For each ``(holding, build)``, in ONE durable transaction per group: read the
        holding's sealed subject reference; when it is live, call ``build(sealed)`` (in
        the writer, so it must be quick and must not raise: it returns its errors as
        its ``value``) and append the record it returns, if any, under that record's
        ``require``. Per item an :class:`Appended`: whether the holding was live, the
        record's id if one was appended, and the build's value."""

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


class Registry(HoldingsStore, LogStore, Protocol):
    """A backend's registry object: both halves on one database."""
