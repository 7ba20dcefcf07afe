"""Authenticated queued records: the tag a replica writes with each queued row, and the
check the sequencer makes before integrating it (docs/QUEUE_AUTH.md).

A queued row is ``access_records`` with ``leaf_index`` NULL. Whoever can write to the
database could otherwise insert, alter, copy or reorder such rows and the sequencer
would sign them into the tree. So every row carries

    mac = HMAC-SHA256(K_queue, "symbolsvc/queued-record/v1" || 0x00 || u64 id
                      || u32 len || pseudonym || u32 len || sealed_subject
                      || u32 len || leaf
                      [|| u32 len || exchange_key || u32 len || exchange_digest])

with ``K_queue = HKDF(root, LABEL)`` derived from the keyring (never stored in the
database). The tag covers the row's id (its queue position), so a copy under another
id or two rows' contents swapped fail; and every byte of the row, so an altered leaf,
pseudonym or sealed reference fails. A row of an exchange (docs/EXCHANGES.md) also
covers its exchange key and digest (the bracketed part; absent when both columns are
NULL, so rows without them keep their tag), so those cannot be edited, added or
removed undetected either. Rows that fail are quarantined, not integrated.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Sequence
from typing import Any

from ..registry import NewRecord, QueuedRow

LABEL = b"access-log queued-record mac v1"
"""The HKDF info that derives K_queue from the keyring's root (domain separation)."""
_DOMAIN = b"symbolsvc/queued-record/v1\x00"
_ID = struct.Struct(">Q")
_LEN = struct.Struct(">I")
_BYTES = (bytes, bytearray, memoryview)

NO_MAC = "no_mac"
"""Quarantine reason: the row carries no tag (not written by a replica)."""
BAD_MAC = "bad_mac"
"""Quarantine reason: the tag does not match the row (forged, altered, copied or moved)."""
MALFORMED = "malformed"
"""Quarantine reason: a column holds something other than bytes (written past the service)."""


class QueueAuthenticator:
    """Tags rows (every replica) and checks them (the sequencer) under one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the queued-record key must be at least 32 bytes")
        self._base = hmac.new(key, _DOMAIN, hashlib.sha256)

    def _tag(self, record_id: int, pseudonym: bytes, sealed: bytes, leaf: bytes,
             exchange: tuple[bytes, bytes] | None = None) -> bytes:
        h = self._base.copy()
        h.update(_ID.pack(record_id))
        for part in (pseudonym, sealed, leaf, *(exchange or ())):
            h.update(_LEN.pack(len(part)))
            h.update(part)
        return h.digest()

    def mac(self, record_id: int, record: NewRecord) -> bytes:
        """The tag of the row ``record`` will be stored as under id ``record_id`` (with its
        exchange key and digest when it is an exchange's record)."""
        x = record.exchange
        return self._tag(record_id, record.pseudonym, record.sealed_subject, record.leaf,
                         None if x is None else (x.key, x.digest))

    def check(self, row: tuple[int, bytes] | QueuedRow) -> str | None:
        """None when the stored row's tag verifies, else the quarantine reason."""
        if len(row) < 5:
            return NO_MAC
        cells: tuple[Any, ...] = tuple(row)  # as read: SQLite stores any type in any column
        record_id, leaf, pseudonym, sealed, tag = cells[:5]
        if tag is None:
            return NO_MAC
        exchange = cells[5:7]
        if exchange == (None, None):
            exchange = ()
        parts = (leaf, pseudonym, sealed, tag, *exchange)
        if not isinstance(record_id, int) or not all([isinstance(p, _BYTES) for p in parts]):
            return MALFORMED  # SQLite stores any type in any column; half an exchange
        want = self._tag(record_id, bytes(pseudonym), bytes(sealed), bytes(leaf),
                         (bytes(exchange[0]), bytes(exchange[1])) if exchange else None)
        return None if hmac.compare_digest(want, bytes(tag)) else BAD_MAC


def check_rows(auth: QueueAuthenticator, rows: Sequence[tuple[int, bytes] | QueuedRow]
               ) -> list[str | None]:
    """:meth:`QueueAuthenticator.check` for each row."""
    return [auth.check(row) for row in rows]
