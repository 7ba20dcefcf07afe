"""Requester-signed inquiries: the canonical bytes an agency signs, and checking a signature.

Pure (cryptography only), so the server, the auditor's verifier and the tests share one
definition; the client library (``symbolsvc_client.trust``) carries its own copy of the
encoding, held equal by a test vector. docs/SIGNED_INQUIRIES.md specifies it byte by byte::

    DOMAIN                "symbolsvc inquiry v1" || 0x00            (21 bytes)
    u8      kind          1 = translate, 2 = resolve
    str     requester_agency
    32 B    symbol digest SHA-256(SYMBOL_DOMAIN || str requester || str exchange_id
                                  || str symbol)
    str     provider_agency                 (empty for resolve)
    str     office_work
    str     info_item
    str     exchange_id
    u64     issued_at     microseconds since the Unix epoch (UTC)

``str`` is u16 big-endian length || UTF-8 bytes, as in an access record's leaf. The symbol
enters only through its digest, which the access record keeps (``Ext.INQUIRY_SYMBOL_DIGEST``)
so an auditor can check the signature from the record alone while the leaf still carries no
agency's symbol; the exchange id salts the digest, so two exchanges on one subject do not
share it. The signature is ECDSA P-256 with SHA-256 (DER), the key type of the agency
certificates ``symbolsvc init`` and ``agency add`` make; an Ed25519 certificate key signs the
bytes directly.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .records import AccessKind, AccessRecord, Ext

DOMAIN = b"symbolsvc inquiry v1\x00"
SYMBOL_DOMAIN = b"symbolsvc inquiry symbol v1\x00"
MAX_SIGNATURE = 512
"""Longer than any signature a supported key makes (a DER P-256 signature is <= 72 bytes)."""
AGENCY_URI = "/agency/"

VerifyKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
SignKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class Inquiry:
    """What a requester signs. ``provider`` is empty for a resolution."""

    kind: AccessKind
    requester: str
    symbol_digest: bytes
    provider: str
    office_work: str
    info_item: str
    exchange_id: str
    issued_at_us: int

    def encode(self) -> bytes:
        out = [DOMAIN, bytes([self.kind]), _str(self.requester), self.symbol_digest]
        out += [_str(s) for s in (self.provider, self.office_work, self.info_item,
                                  self.exchange_id)]
        out.append(_U64.pack(self.issued_at_us))
        return b"".join(out)


def symbol_digest(requester: str, exchange_id: str, symbol: str) -> bytes:
    return hashlib.sha256(
        SYMBOL_DOMAIN + _str(requester) + _str(exchange_id) + _str(symbol)).digest()


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return _U16.pack(len(b)) + b


def sign(key: SignKey, inquiry: Inquiry) -> bytes:
    data = inquiry.encode()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    return key.sign(data, ec.ECDSA(hashes.SHA256()))


def verify(keys: Iterable[VerifyKey], inquiry: Inquiry, signature: bytes) -> bool:
    """True when any of ``keys`` (the requester's certificate keys) signed ``inquiry``."""
    if not 0 < len(signature) <= MAX_SIGNATURE:
        return False
    data = inquiry.encode()
    for key in keys:
        try:
            if isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(signature, data)
            else:
                key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            continue
        return True
    return False


def from_record(record: AccessRecord) -> tuple[Inquiry, bytes] | None:
    """The signed inquiry an access record keeps and its signature; None when it keeps none.
    Raises ValueError when the record keeps part of one (a signature without its time or
    digest is not checkable)."""
    sig = record.get(Ext.INQUIRY_SIGNATURE)
    at = record.get(Ext.INQUIRY_ISSUED_AT)
    digest = record.get(Ext.INQUIRY_SYMBOL_DIGEST)
    if sig is None and at is None and digest is None:
        return None
    if sig is None or at is None or digest is None or len(at) != 8 or len(digest) != 32:
        raise ValueError("the record keeps an incomplete signed inquiry")
    provider = record.providers[0] if record.kind is AccessKind.TRANSLATE else ""
    inq = Inquiry(record.kind, record.requester, digest, provider, record.office_work,
                  record.info_item, record.exchange_id, _U64.unpack(at)[0])
    return inq, sig


def record_ext(signature: bytes, issued_at_us: int, digest: bytes) -> dict[str, bytes]:
    """The access record's extensions for a verified inquiry (``AccessRecord.with_ext``)."""
    return {"INQUIRY_SIGNATURE": signature, "INQUIRY_ISSUED_AT": _U64.pack(issued_at_us),
            "INQUIRY_SYMBOL_DIGEST": digest}


def agency_of(cert: x509.Certificate) -> str | None:
    """The principal a certificate's URI SAN names, by the deployment's convention
    (``pki.spiffe_id``): ``spiffe://DOMAIN/agency/ID`` for an agency, ``spiffe://DOMAIN/NAME``
    for a service principal that may also act as an agency (the portal); None otherwise."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if not uri.startswith("spiffe://"):
            continue
        _, _, path = uri.removeprefix("spiffe://").partition("/")
        name = path.removeprefix(AGENCY_URI.strip("/") + "/")
        if name and "/" not in name:
            return name
    return None


def agency_keys(directory: Path) -> dict[str, list[VerifyKey]]:
    """Every agency's certificate keys under a deployment's ``pki/`` (``*.crt`` and
    ``retired/*.crt``), by the agency ID in each certificate's URI SAN (never by file name).
    When ``ca.crt`` is there, a certificate it did not issue is ignored."""
    ca: x509.Certificate | None = None
    if (directory / "ca.crt").is_file():
        ca = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    out: dict[str, list[VerifyKey]] = {}
    for path in sorted([*directory.glob("*.crt"), *directory.glob("retired/*.crt")]):
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            if ca is not None:
                cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature, OSError):
            continue
        agency, key = agency_of(cert), cert.public_key()
        if agency and isinstance(key, VerifyKey):
            out.setdefault(agency, []).append(key)
    return out
