"""Signed receipts: the log's promise that a record will be integrated in time.

As a Certificate Transparency log hands out an SCT, the broker's reply to every
exchange it records carries a receipt (docs/ACCESS_LOG.md, "Receipts"): a C2SP
signed note (c2sp.org/signed-note) by the log key, under the same key name as the
checkpoints (so ``pki/log.vkey`` verifies it), whose text is four lines::

    <origin>
    receipt
    <base64 (standard, padded) of the record's RFC 9162 leaf hash>
    <integrate-by: RFC 3339 UTC time, whole seconds, e.g. 2026-12-06T07:30:12Z>

The record is promised to be in a signed checkpoint by the integrate-by time (the
reply time plus ``[access_log] max_merge_delay``, rounded up to the second). A
receipt whose leaf is not in the log after that time is proof of misbehaviour.

Cost: one Ed25519 signature per record (two during a log-key rotation); the key
IDs and signature-line prefixes are computed once. The server signs on a thread of
its own (:meth:`ReceiptSigner.sign_many`): pyca/cryptography releases the GIL while
it signs, so the signature (~50-90 µs here) runs beside the event loop instead of
on it, for the price of one thread hop per call.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .checkpoint import key_id

_SIGNING = ThreadPoolExecutor(1, thread_name_prefix="receipt-signer")
"""One signing thread per process, shared by every signer (a SIGHUP makes a new one)."""

RECEIPT_LINE = "receipt"
"""The second line of every receipt (what distinguishes it from a checkpoint)."""


def rfc3339(seconds: int) -> str:
    """Whole seconds since the epoch as an RFC 3339 UTC time (``YYYY-MM-DDTHH:MM:SSZ``)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def receipt_body(origin: str, leaf_hash: bytes, integrate_by: int) -> str:
    """The text of a receipt (what is signed)."""
    return (f"{origin}\n{RECEIPT_LINE}\n{base64.b64encode(leaf_hash).decode('ascii')}\n"
            f"{rfc3339(integrate_by)}\n")


class ReceiptSigner:
    """Signs receipts with the log key(s), promising integration within ``max_merge_delay``
    seconds of now."""

    def __init__(self, origin: str, keys: Ed25519PrivateKey | Sequence[Ed25519PrivateKey],
                 max_merge_delay: float, clock: Callable[[], float] = time.time) -> None:
        if "\n" in origin or not origin:
            raise ValueError("the log origin must be one non-empty line")
        self.origin = origin
        self.max_merge_delay = max_merge_delay
        self._clock = clock
        keys = [keys] if isinstance(keys, Ed25519PrivateKey) else list(keys)
        self._keys = [(k, f"\u2014 {origin} ", key_id(origin, k.public_key())) for k in keys]
        self._head = f"{origin}\n{RECEIPT_LINE}\n"
        self._when = (-1, "")  # (integrate-by second, its RFC 3339 text), cached per second

    def integrate_by(self) -> int:
        """The integrate-by time a receipt signed now carries (seconds since the epoch)."""
        return math.ceil(self._clock() + self.max_merge_delay)

    def sign(self, leaf_hash: bytes) -> str:
        """The receipt for the record whose RFC 9162 leaf hash is ``leaf_hash``."""
        by = self.integrate_by()
        if by != self._when[0]:
            self._when = (by, rfc3339(by))
        body = (self._head + base64.b64encode(leaf_hash).decode("ascii") + "\n"
                + self._when[1] + "\n")
        message = body.encode("utf-8")
        lines = [prefix + base64.b64encode(kid + key.sign(message)).decode("ascii") + "\n"
                 for key, prefix, kid in self._keys]
        return body + "\n" + "".join(lines)

    async def sign_many(self, leaf_hashes: Sequence[bytes]) -> list[str]:
        """:meth:`sign` for each leaf hash, on the signer's thread (one hop for all)."""
        return await asyncio.get_running_loop().run_in_executor(
            _SIGNING, self._sign_list, leaf_hashes)

    def _sign_list(self, leaf_hashes: Sequence[bytes]) -> list[str]:
        return [self.sign(h) for h in leaf_hashes]


__all__ = ["RECEIPT_LINE", "ReceiptSigner", "receipt_body", "rfc3339"]
