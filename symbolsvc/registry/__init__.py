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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class NewHolding:
    agency: str
    symbol: str
    sealed_subject: bytes


@dataclass(frozen=True, slots=True)
class NewRecord:
    """An access record to append; ``require`` names a holding that must be live."""

    leaf: bytes
    pseudonym: bytes
    sealed_subject: bytes
    require: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class StoredRecord:
    id: int
    leaf: bytes
    sealed_subject: bytes


class Registry(Protocol):
    async def issue(self, items: Sequence[NewHolding]) -> list[bool]:
        """Register holdings; per item True when new (or re-created after release)."""

    async def release(self, agency: str, symbol: str) -> bool | None:
        """End a holding: True if it was live, False if already released, None if unknown."""

    async def lookup(self, agency: str, symbol: str) -> bytes | None:
        """The sealed subject reference of a live holding, or None."""

    async def lookup_many(self, keys: Sequence[tuple[str, str]]) -> list[bytes | None]:
        """:meth:`lookup` for several holdings in one round trip."""

    async def append_records(self, records: Sequence[NewRecord]) -> list[int | None]:
        """Append access records durably; per item its id, or None when its
        required holding is not live (then nothing is written for it)."""

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
