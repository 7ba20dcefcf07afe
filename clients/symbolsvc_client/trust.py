"""Trust no single server: requester-signed inquiries and blind translation, client side.

An agency signs each inquiry with its certificate's private key (``pki/AGENCY.key``)::

    from symbolsvc_client.trust import sign_inquiry, open_sealed_symbol
    inq = sign_inquiry("dev/pki/city-chiyoda.key", requester="city-chiyoda", symbol=sym,
                       provider="tax-office", office_work="demo-exchange",
                       info_item="demo-record", exchange_id="x-1")
    # the agency hands ``inq`` (or ``inq.translate_request()``) to the broker, which passes
    # it through unchanged:
    reply = broker.translate(inquiry=inq)

Under ``[broker] blind_translation`` the reply carries ``sealed_provider_symbol``; only the
provider opens it, with its HPKE private key (``pki/PROVIDER.hpke.key``)::

    symbol = open_sealed_symbol(reply.sealed_provider_symbol, "dev/pki/tax-office.hpke.key",
                                exchange_id="x-1", requester="city-chiyoda")

The byte layouts are the server's (docs/SIGNED_INQUIRIES.md, docs/BLIND_TRANSLATION.md);
this module keeps its own copy so the client distribution needs no server code, and the
server's tests hold the two equal. It needs the ``trust`` extra
(``pip install 'symbolsvc-client[trust]'``: cryptography).
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes, hpke, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mlkem, x25519
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("symbolsvc_client.trust needs the 'trust' extra: "
                      "pip install 'symbolsvc-client[trust]'") from exc

from .v1 import broker_service_pb2 as broker_pb

DOMAIN = b"symbolsvc inquiry v1\x00"
SYMBOL_DOMAIN = b"symbolsvc inquiry symbol v1\x00"
SEAL_INFO_DOMAIN = b"symbolsvc sealed provider symbol v1\x00"
TRANSLATE, RESOLVE = 1, 2
_SUITES = {
    "x25519": (1, hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)),
    "mlkem768-x25519": (2, hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256,
                                      hpke.AEAD.AES_256_GCM)),
}
SignKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return struct.pack(">H", len(b)) + b


@dataclass(frozen=True)
class SignedInquiry:
    """An inquiry and the requester's signature; ``provider`` is None for a resolution."""

    requester: str
    symbol: str
    provider: str | None
    office_work: str
    info_item: str
    exchange_id: str
    issued_at_us: int
    signature: bytes

    def issued_at(self) -> Timestamp:
        return Timestamp(seconds=self.issued_at_us // 1_000_000,
                         nanos=(self.issued_at_us % 1_000_000) * 1000)

    def translate_request(self) -> broker_pb.TranslateSymbolRequest:
        if self.provider is None:
            raise ValueError("this inquiry is a resolution, not a translation")
        return broker_pb.TranslateSymbolRequest(
            requester_agency=self.requester, symbol=self.symbol, provider_agency=self.provider,
            office_work=self.office_work, info_item=self.info_item,
            exchange_id=self.exchange_id, inquiry_signature=self.signature,
            issued_at=self.issued_at())

    def resolve_request(self) -> broker_pb.ResolveProvidersRequest:
        if self.provider is not None:
            raise ValueError("this inquiry is a translation, not a resolution")
        return broker_pb.ResolveProvidersRequest(
            requester_agency=self.requester, symbol=self.symbol, office_work=self.office_work,
            info_item=self.info_item, exchange_id=self.exchange_id,
            inquiry_signature=self.signature, issued_at=self.issued_at())


def inquiry_bytes(requester: str, symbol: str, provider: str | None, office_work: str,
                  info_item: str, exchange_id: str, issued_at_us: int) -> bytes:
    """The canonical bytes an agency signs (docs/SIGNED_INQUIRIES.md)."""
    digest = hashlib.sha256(SYMBOL_DOMAIN + _str(requester) + _str(exchange_id)
                            + _str(symbol)).digest()
    kind = RESOLVE if provider is None else TRANSLATE
    return b"".join([DOMAIN, bytes([kind]), _str(requester), digest, _str(provider or ""),
                     _str(office_work), _str(info_item), _str(exchange_id),
                     struct.pack(">Q", issued_at_us)])


def load_signing_key(path: str | Path) -> SignKey:
    """An agency's certificate key (PKCS#8 PEM, as ``symbolsvc init`` writes pki/NAME.key)."""
    key = serialization.load_pem_private_key(Path(path).read_bytes(), None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise TypeError(f"{path}: not an ECDSA or Ed25519 private key")
    return key


def sign_inquiry(key: SignKey | str | Path, *, requester: str, symbol: str,
                 office_work: str, info_item: str, exchange_id: str,
                 provider: str | None = None, issued_at_us: int | None = None
                 ) -> SignedInquiry:
    """Sign an inquiry as ``requester`` (provider None: a ResolveProviders inquiry). ``key``
    is the requester's certificate key or the path of its PEM file; ``issued_at_us``
    defaults to now (the server accepts it within ``[broker] inquiry_window_seconds``)."""
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        key = load_signing_key(key)
    at = time.time_ns() // 1000 if issued_at_us is None else issued_at_us
    data = inquiry_bytes(requester, symbol, provider, office_work, info_item, exchange_id, at)
    sig = (key.sign(data) if isinstance(key, ed25519.Ed25519PrivateKey)
           else key.sign(data, ec.ECDSA(hashes.SHA256())))
    return SignedInquiry(requester, symbol, provider, office_work, info_item, exchange_id,
                         at, sig)


def _private_key(line: str
                 ) -> tuple[int, hpke.Suite, x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey]:
    parts = line.split()
    if len(parts) != 3 or parts[0] != "symbolsvc-hpke-v1" or parts[1] not in _SUITES:
        raise ValueError("not a symbolsvc-hpke-v1 private key line")
    sid, suite = _SUITES[parts[1]]
    raw = base64.b64decode(parts[2], validate=True)
    if sid == 1 and len(raw) == 32:
        return sid, suite, x25519.X25519PrivateKey.from_private_bytes(raw)
    if sid == 2 and len(raw) == 96:
        return sid, suite, hpke.MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:64]),
            x25519.X25519PrivateKey.from_private_bytes(raw[64:]))
    raise ValueError(f"not a valid {parts[1]} private key")


def open_sealed_symbol(sealed: bytes, private_key: str | Path, *, exchange_id: str,
                       requester: str) -> str:
    """The provider's symbol inside ``sealed_provider_symbol``. ``private_key`` is the
    provider's ``pki/NAME.hpke.key`` file (or its one line). Raises ValueError when the
    symbol was not sealed to this key for this exchange and requester."""
    text = str(private_key)
    if not text.startswith("symbolsvc-hpke-v1"):
        text = Path(private_key).read_text(encoding="ascii")
    sid, suite, key = _private_key(text)
    if not sealed or sealed[0] != sid:
        raise ValueError("sealed to another HPKE suite than this key's")
    info = SEAL_INFO_DOMAIN + _str(exchange_id) + _str(requester)
    try:
        plain = suite.decrypt(sealed[1:], key, info=info)
    except (InvalidTag, ValueError) as exc:
        raise ValueError(f"cannot open the sealed symbol: {type(exc).__name__}") from None
    return plain.decode("ascii")
