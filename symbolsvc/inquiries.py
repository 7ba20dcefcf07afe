"""The server's check of requester-signed inquiries (docs/SIGNED_INQUIRIES.md).

A translation or resolution that carries ``inquiry_signature`` is verified against the
requester's registered certificate (``pki/REQUESTER.crt``, whose URI SAN must name that
agency, issued by the deployment CA and not on the revocation list — both files re-read when
they change, so ``cert revoke`` stops a stolen key's inquiries at once) and the freshness
window; under ``[broker] require_signed_inquiries`` one without a
signature is refused. A refusal is ``PERMISSION_DENIED`` and a security-log event; it names
the requester and the exchange id, never the symbol.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from . import inquiry
from .errors import ConfigError, PermissionDenied
from .filecache import FileCache
from .records import AccessKind
from .revocation import EMPTY, RevocationList, parse_revocations
from .secevents import report


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


@dataclass(frozen=True, slots=True)
class _Registered:
    agency: str | None
    key: inquiry.VerifyKey | None
    cert: x509.Certificate


def _revocations(data: bytes) -> RevocationList:
    try:
        return parse_revocations(data.decode("utf-8"), "revocation list")
    except (ConfigError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None


class InquiryChecker:
    """Verifies signed inquiries; ``required`` refuses unsigned ones. ``ca`` (default
    ``pki/ca.crt``) must have issued the requester's certificate; ``revoked`` is the
    revocation list (``[tls] revoked``; a malformed list keeps the last good one)."""

    def __init__(self, pki: Path, *, required: bool, window_s: int,
                 clock_us: Callable[[], int], ca: Path | None = None,
                 revoked: Path | None = None) -> None:
        self.pki = pki
        self.required = required
        self.window_us = window_s * 1_000_000
        self._clock_us = clock_us
        ca_cert = x509.load_pem_x509_certificate((ca or pki / "ca.crt").read_bytes())

        def registered(data: bytes) -> _Registered:
            cert = x509.load_pem_x509_certificate(data)
            try:
                cert.verify_directly_issued_by(ca_cert)
            except (TypeError, InvalidSignature):
                raise ValueError("not issued by the deployment CA") from None
            key = cert.public_key()
            return _Registered(inquiry.agency_of(cert),
                               key if isinstance(key, inquiry.VerifyKey) else None, cert)

        self._certs: FileCache[_Registered] = FileCache(registered)
        self._revoked_path = revoked
        self._revoked: FileCache[RevocationList] = FileCache(_revocations)
        self._last_revoked = EMPTY

    def _revocation_list(self) -> RevocationList:
        if self._revoked_path is not None:
            current = self._revoked.get(self._revoked_path)
            if current is not None:
                self._last_revoked = current
        return self._last_revoked

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
        reg = self._certs.get(self.pki / f"{a.requester}.crt")
        if (reg is None or reg.agency != a.requester or reg.key is None
                or self._revocation_list().revokes(reg.cert)
                or not inquiry.verify([reg.key], signed, a.signature)):
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
        """Report (security log, ``symbolsvc_security_events_total``) and return the
        refusal; the event names the exchange, never the symbol."""
        report(reason.lower(), f"inquiry refused: {reason}", requester=a.requester,
               provider=a.provider, office_work=a.office_work, info_item=a.info_item,
               exchange_id=a.exchange_id)
        return PermissionDenied(reason, message, field)
