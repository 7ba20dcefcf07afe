"""An independent receipt verifier, for tests (docs/ACCESS_LOG.md, "Receipts").

Written from the text of c2sp.org/signed-note and the receipt format the issue fixes
(line 1 the log origin, line 2 ``receipt``, line 3 the standard base64 of the RFC 9162
leaf hash, line 4 the integrate-by time); it shares no code with symbolsvc (the signature
check is helpers.notes', itself independent), so a bug in the service's signer cannot
hide here.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from .notes import Rejected, independent_verify

__all__ = ["IndependentReceipt", "independent_receipt", "rfc9162_leaf_hash"]

_RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


@dataclass(frozen=True)
class IndependentReceipt:
    origin: str
    leaf_hash: bytes
    integrate_by: float  # seconds since the epoch


def rfc9162_leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x00 || leaf)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def independent_receipt(note: str, vkey: str) -> IndependentReceipt:
    """Verify a receipt's signature by ``vkey`` and parse its four lines; raise
    :class:`Rejected` otherwise."""
    text = independent_verify(note, vkey)
    lines = text.split("\n")
    if len(lines) != 5 or lines[-1] != "":
        raise Rejected(f"a receipt has four text lines, not {len(lines) - 1}")
    origin, kind, hash_b64, when = lines[:4]
    if origin != vkey.split("+", 1)[0]:
        raise Rejected("the origin is not the log key's name")
    if kind != "receipt":
        raise Rejected("the second line is not 'receipt'")
    leaf_hash = base64.b64decode(hash_b64, validate=True)
    if len(leaf_hash) != 32:
        raise Rejected("the leaf hash is not 32 bytes")
    if not _RFC3339_UTC.fullmatch(when):
        raise Rejected(f"integrate-by {when!r} is not RFC 3339 UTC")
    by = datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)  # noqa: UP017
    return IndependentReceipt(origin, leaf_hash, by.timestamp())
