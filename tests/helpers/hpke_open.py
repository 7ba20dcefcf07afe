"""An independent HPKE open of a sealed provider symbol, for the tests only.

Written from RFC 9180 and docs/BLIND_TRANSLATION.md, not from the project's code: suite 1
(DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM, base mode, single shot) is computed
here from the raw primitives (X25519, HMAC-SHA256, AES-GCM), so an error shared by the
project's helper and cryptography's ``hpke`` module would show. Suite 2 (the ML-KEM-768 +
X25519 hybrid KEM) has no primitive-level construction to recompute here short of ML-KEM
itself, so it is opened with cryptography's ``hpke.Suite`` directly (still not the
project's helper, and with key bytes parsed from the key file independently).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

INFO_DOMAIN = b"symbolsvc sealed provider symbol v1\x00"

# RFC 9180 §7.1-7.3 identifiers
KEM_X25519 = 0x0020
KDF_HKDF_SHA256 = 0x0001
AEAD_AES_256_GCM = 0x0002
NK, NN = 32, 12


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info: bytes, n: int) -> bytes:
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]


def _labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def _labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, n: int) -> bytes:
    return _expand(prk, struct.pack(">H", n) + b"HPKE-v1" + suite_id + label + info, n)


def _open_x25519(sk: x25519.X25519PrivateKey, enc: bytes, ct: bytes, info: bytes) -> bytes:
    # DHKEM Decap (RFC 9180 §4.1)
    kem_id = b"KEM" + struct.pack(">H", KEM_X25519)
    dh = sk.exchange(x25519.X25519PublicKey.from_public_bytes(enc))
    pk_rm = sk.public_key().public_bytes_raw()
    eae_prk = _labeled_extract(kem_id, b"", b"eae_prk", dh)
    shared = _labeled_expand(kem_id, eae_prk, b"shared_secret", enc + pk_rm, 32)
    # KeySchedule, mode_base (§5.1)
    sid = b"HPKE" + struct.pack(">HHH", KEM_X25519, KDF_HKDF_SHA256, AEAD_AES_256_GCM)
    psk_id_hash = _labeled_extract(sid, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(sid, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    secret = _labeled_extract(sid, shared, b"secret", b"")
    key = _labeled_expand(sid, secret, b"key", context, NK)
    base_nonce = _labeled_expand(sid, secret, b"base_nonce", context, NN)
    return AESGCM(key).decrypt(base_nonce, ct, b"")  # sequence number 0


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def open_independently(sealed: bytes, key_line: str, exchange_id: str, requester: str) -> str:
    """The symbol in ``sealed`` (u8 suite || enc || ct) for the provider's key file line."""
    magic, suite, b64 = key_line.split()
    assert magic == "symbolsvc-hpke-v1"
    raw = base64.b64decode(b64)
    info = INFO_DOMAIN + _str(exchange_id) + _str(requester)
    if sealed[0] == 1:
        assert suite == "x25519" and len(raw) == 32
        sk = x25519.X25519PrivateKey.from_private_bytes(raw)
        return _open_x25519(sk, sealed[1:33], sealed[33:], info).decode()
    assert sealed[0] == 2 and suite == "mlkem768-x25519" and len(raw) == 96
    key = hpke.MLKEM768X25519PrivateKey(mlkem.MLKEM768PrivateKey.from_seed_bytes(raw[:64]),
                                        x25519.X25519PrivateKey.from_private_bytes(raw[64:]))
    s = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    return s.decrypt(sealed[1:], key, info=info).decode()


def public_line() -> str:
    """A hybrid public key line as an agency would make it itself (its private key kept)."""
    m, x = mlkem.MLKEM768PrivateKey.generate(), x25519.X25519PrivateKey.generate()
    raw = m.public_key().public_bytes_raw() + x.public_key().public_bytes_raw()
    return f"symbolsvc-hpke-v1 mlkem768-x25519 {base64.b64encode(raw).decode()}\n"
