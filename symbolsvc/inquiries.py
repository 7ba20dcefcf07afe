"""The server's check of requester-signed inquiries (docs/SIGNED_INQUIRIES.md).

A translation or resolution that carries ``inquiry_signature`` is verified against the
requester's registered certificate (``pki/REQUESTER.crt``, whose URI SAN must name that
agency) and the freshness window; under ``[broker] require_signed_inquiries`` one without a
signature is refused. A refusal is ``PERMISSION_DENIED`` and a security-log event; it names
the requester and the exchange id, never the symbol.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from . import inquiry
from .errors import PermissionDenied
from .filecache import FileCache
from .records import AccessKind

security_log = logging.getLogger("symbolsvc.security")


@dataclass(frozen=True, slots=True)
class Asked:
    """One inquiry as the broker passed it on."""

    kind: AccessKind
    requester: str
    symbol: str
    provider: str  # empty for a resolution
    office_work: str
    info_item: str
    exchange_id: str
    signature: bytes
    issued_at_us: int


def _cert(data: bytes) -> tuple[str | None, inquiry.VerifyKey | None]:
    cert = x509.load_pem_x509_certificate(data)
    key = cert.public_key()
    return inquiry.agency_of(cert), key if isinstance(key, inquiry.VerifyKey) else None


class InquiryChecker:
    """Verifies signed inquiries; ``required`` refuses unsigned ones."""

    def __init__(self, pki: Path, *, required: bool, window_s: int,
                 clock_us: Callable[[], int]) -> None:
        self.pki = pki
        self.required = required
        self.window_us = window_s * 1_000_000
        self._clock_us = clock_us
        self._certs: FileCache[tuple[str | None, inquiry.VerifyKey | None]] = FileCache(_cert)

    def check(self, a: Asked, prefix: str = "") -> dict[str, bytes]:
        """The access record's extensions for ``a`` ({} for an unsigned inquiry that is not
        required to be signed); raises PermissionDenied."""
        if not a.signature:
            if self.required:
                raise self._deny(a, "INQUIRY_NOT_SIGNED",
                                 "this deployment requires the requester's signed inquiry",
                                 prefix + "inquiry_signature")
            return {}
        if abs(self._clock_us() - a.issued_at_us) > self.window_us:
            raise self._deny(a, "INQUIRY_EXPIRED",
                             "the inquiry's issued_at is outside the freshness window "
                             f"({self.window_us // 1_000_000} s)", prefix + "issued_at")
        digest = inquiry.symbol_digest(a.requester, a.exchange_id, a.symbol)
        signed = inquiry.Inquiry(a.kind, a.requester, digest, a.provider, a.office_work,
                                 a.info_item, a.exchange_id, a.issued_at_us)
        agency, key = self._certs.get(self.pki / f"{a.requester}.crt") or (None, None)
        if agency != a.requester or key is None or not inquiry.verify([key], signed,
                                                                        a.signature):
            raise self._deny(a, "BAD_INQUIRY_SIGNATURE",
                             "the inquiry signature does not verify against the requester's "
                             "registered certificate", prefix + "inquiry_signature")
        return inquiry.record_ext(a.signature, a.issued_at_us, digest)

    def refuse_reuse(self, a: Asked, prefix: str = "") -> PermissionDenied:
        """The refusal of an exchange id the requester used before (a replay)."""
        return self._deny(a, "INQUIRY_REPLAYED",
                          f"the requester has used exchange id {a.exchange_id!r} before; a "
                          "signed inquiry is answered once", prefix + "exchange_id")

    def _deny(self, a: Asked, reason: str, message: str, field: str) -> PermissionDenied:
        security_log.warning(
            "inquiry refused: %s", reason,
            extra={"event": reason.lower(), "requester": a.requester,
                   "provider": a.provider, "office_work": a.office_work,
                   "info_item": a.info_item, "exchange_id": a.exchange_id},
        )
        return PermissionDenied(reason, message, field)
