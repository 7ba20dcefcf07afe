"""Blind translation's sealing: HPKE (RFC 9180) to a provider agency's public key.

Pure (cryptography's ``hpke`` module), shared by the server, ``agency add`` and the tests;
the client library (``symbolsvc_client.trust``) opens with its own copy. A sealed symbol is::

    u8      suite        1 = DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM
                         2 = ML-KEM-768 + X25519 hybrid KEM, HKDF-SHA256, AES-256-GCM
    ...     enc || ct    HPKE base-mode single-shot output (Nenc = 32 / 1120 bytes)

with HPKE ``info`` = INFO_DOMAIN || str exchange_id || str requester_agency (``str`` is u16
big-endian length || UTF-8) and empty AAD; the plaintext is the provider's symbol (ASCII).

Key files (docs/BLIND_TRANSLATION.md): ``pki/NAME.hpke.pub`` (0644) and, when the deployment
made the pair, ``pki/NAME.hpke.key`` (0600), each one line
``symbolsvc-hpke-v1 SUITE BASE64``; the hybrid suite's public value is the ML-KEM-768
encapsulation key (1184 B) || the X25519 public key (32 B), its private value the ML-KEM seed
(64 B) || the X25519 private key (32 B).
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

MAGIC = "symbolsvc-hpke-v1"
INFO_DOMAIN = b"symbolsvc sealed provider symbol v1\x00"
X25519 = "x25519"
HYBRID = "mlkem768-x25519"
SUITE_IDS = {X25519: 1, HYBRID: 2}
DEFAULT_SUITE = HYBRID  # records are kept for decades: harvest-now-decrypt-later is in scope
_MLKEM_PUB, _MLKEM_SEED, _X = 1184, 64, 32
_SUITES = {
    1: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
    2: hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
}
_U16 = struct.Struct(">H")

PublicKey = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey
PrivateKey = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey


class KeyFileError(ValueError):
    """A key file's line is not ``symbolsvc-hpke-v1 SUITE BASE64`` of the right length."""


@dataclass(frozen=True)
class SealKey:
    suite: str
    key: PublicKey

    def seal(self, plaintext: bytes, info: bytes) -> bytes:
        sid = SUITE_IDS[self.suite]
        return bytes([sid]) + _SUITES[sid].encrypt(plaintext, self.key, info=info)


def info(exchange_id: str, requester: str) -> bytes:
    return INFO_DOMAIN + _str(exchange_id) + _str(requester)


def _str(s: str) -> bytes:
    b = s.encode("utf-8")
    return _U16.pack(len(b)) + b


def generate(suite: str = DEFAULT_SUITE) -> tuple[str, str]:
    """A new key pair as (private key line, public key line)."""
    x = x25519.X25519PrivateKey.generate()
    if suite == X25519:
        priv, pub = x.private_bytes_raw(), x.public_key().public_bytes_raw()
    elif suite == HYBRID:
        m = mlkem.MLKEM768PrivateKey.generate()
        priv = m.private_bytes_raw() + x.private_bytes_raw()
        pub = m.public_key().public_bytes_raw() + x.public_key().public_bytes_raw()
    else:
        raise KeyFileError(f"unknown HPKE suite {suite!r}: expected {X25519} or {HYBRID}")
    return _line(suite, priv), _line(suite, pub)


def _line(suite: str, raw: bytes) -> str:
    return f"{MAGIC} {suite} {base64.b64encode(raw).decode()}\n"


def _parse(line: str) -> tuple[str, bytes]:
    parts = line.split()
    if len(parts) != 3 or parts[0] != MAGIC or parts[1] not in SUITE_IDS:
        raise KeyFileError(f"expected '{MAGIC} {X25519}|{HYBRID} BASE64'")
    try:
        return parts[1], base64.b64decode(parts[2], validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError("the key is not valid base64") from None


def public_key(line: str) -> SealKey:
    suite, raw = _parse(line)
    try:
        if suite == X25519 and len(raw) == _X:
            return SealKey(suite, x25519.X25519PublicKey.from_public_bytes(raw))
        if suite == HYBRID and len(raw) == _MLKEM_PUB + _X:
            return SealKey(suite, hpke.MLKEM768X25519PublicKey(
                mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM_PUB]),
                x25519.X25519PublicKey.from_public_bytes(raw[_MLKEM_PUB:])))
    except ValueError:
        pass
    raise KeyFileError(f"not a valid {suite} public key")


def private_key(line: str) -> tuple[str, PrivateKey]:
    suite, raw = _parse(line)
    if suite == X25519 and len(raw) == _X:
        return suite, x25519.X25519PrivateKey.from_private_bytes(raw)
    if suite == HYBRID and len(raw) == _MLKEM_SEED + _X:
        return suite, hpke.MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:_MLKEM_SEED]),
            x25519.X25519PrivateKey.from_private_bytes(raw[_MLKEM_SEED:]))
    raise KeyFileError(f"not a valid {suite} private key")


def open_sealed(sealed: bytes, key_line: str, exchange_id: str, requester: str) -> bytes:
    """The plaintext of ``sealed`` (the provider's side; the client library has its own)."""
    suite, key = private_key(key_line)
    if not sealed or sealed[0] != SUITE_IDS[suite]:
        raise ValueError("sealed to another HPKE suite than this key's")
    return _SUITES[sealed[0]].decrypt(sealed[1:], key, info=info(exchange_id, requester))
