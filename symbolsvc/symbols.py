"""Derivation of subject ids, agency symbols and log pseudonyms; sealing of subject references.

Every value here is keyed (CONTRACT §5.2): the individual-number space is only
10^11, so an unkeyed hash of a number would be a lookup table away from the
number itself.

    subject_id        = HMAC-SHA256(K_subject, number)               (never stored in clear)
    symbol(agency, v) = "k<v>." + base32(HMAC-SHA256(K_agency_v, subject_id))
    log pseudonym     = HMAC-SHA256(K_log, subject_id)                (no agency's symbol)
    exchange digest   = HMAC-SHA256(K_exchange, exchange identity or content)
    sealed reference  = 0x01 || nonce || AES-256-GCM-SIV(K_seal, nonce, subject_id,
                                                        aad = agency || 0x00 || symbol)

with K_subject, K_log, K_seal, K_exchange = HKDF(root, ...) and
K_agency_v = HKDF(symbol_key_v, agency).
The sealed reference is what lets the broker get from one agency's symbol to
another's without any value shared between the two holdings' rows: a fresh
nonce makes every sealed reference different, and the AAD binds it to its row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac as std_hmac
import os
import re
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV

from .errors import InvalidArgument
from .keys import ROOT, Keyring, KeySource, symbol_master

SUBJECT_ID_LEN = 32
_SEAL_VERSION = 1
_SYMBOL_RE = re.compile(r"k([1-9][0-9]{0,4})\.([a-z2-7]{52})")
MAX_SYMBOL_LEN = 64


class Deriver:
    """All keyed derivations, with per-agency keys derived once and cached.

    ``source`` computes HKDF of the master secrets: the keyring itself (file
    provider) or a PKCS#11 token that holds them (:mod:`symbolsvc.keystore`).
    """

    def __init__(self, keyring: Keyring, source: KeySource | None = None) -> None:
        self._keyring = keyring
        self._source: KeySource = source if source is not None else keyring
        self.current_version = keyring.current_version
        self.versions = tuple(keyring.versions)
        # Versions before the current one that symbols may still carry (oldest first).
        self.older_versions = tuple(v for v in self.versions if v < self.current_version)
        self._retired = frozenset(keyring.retired)
        src = self._source
        self._subject = hmac.HMAC(src.derive(ROOT, b"subject-id"), hashes.SHA256())
        self._log = hmac.HMAC(src.derive(ROOT, b"log-pseudonym"), hashes.SHA256())
        self._seal = AESGCMSIV(src.derive(ROOT, b"seal subject-ref v1"))
        self._exchange = std_hmac.new(src.derive(ROOT, b"exchange-digest v1"),
                                      digestmod=hashlib.sha256)
        self._agency_mac = lru_cache(maxsize=65536)(self._make_agency_mac)

    def _make_agency_mac(self, agency: str, version: int) -> hmac.HMAC:
        self.check_version(version)
        key = self._source.derive(symbol_master(version), b"agency-symbol\x00" + agency.encode())
        return hmac.HMAC(key, hashes.SHA256())

    def check_version(self, version: int, field: str = "symbol") -> int:
        """``version`` if symbols of it are accepted; else INVALID_ARGUMENT
        (KEY_VERSION_RETIRED, or UNKNOWN_KEY_VERSION for a version never issued)."""
        if version in self._retired:
            raise InvalidArgument(
                "KEY_VERSION_RETIRED",
                f"symbol key version {version} is retired: upgrade symbols before retiring "
                "their version (UpgradeSymbols), or issue again",
                field,
            )
        if version not in self.versions:
            raise InvalidArgument(
                "UNKNOWN_KEY_VERSION",
                f"symbol key version {version} is not in the keyring",
                field,
            )
        return version

    def version_of(self, symbol: str, field: str = "symbol") -> int:
        """Validate a client's symbol: syntax, then a version that is still accepted."""
        return self.check_version(symbol_version(symbol, field), field)

    def symbols_all_versions(self, agency: str, subject_id: bytes) -> list[str]:
        """The agency's symbol for the subject under every accepted version, oldest first."""
        return [self.symbol(agency, subject_id, v) for v in self.versions]

    def subject_id(self, number: bytes) -> bytes:
        """The keyed subject id of a validated 12-digit number."""
        h = self._subject.copy()
        h.update(number)
        return h.finalize()

    def symbol(self, agency: str, subject_id: bytes, version: int | None = None) -> str:
        """The agency's symbol for the subject under key version ``version`` (default current)."""
        v = self.current_version if version is None else version
        h = self._agency_mac(agency, v).copy()
        h.update(subject_id)
        return f"k{v}." + _b32_lower(h.finalize())

    def log_pseudonym(self, subject_id: bytes) -> bytes:
        h = self._log.copy()
        h.update(subject_id)
        return h.finalize()

    def exchange_digest(self, data: bytes) -> bytes:
        """HMAC-SHA256(K_exchange, data): the stored, keyed form of an exchange's identity
        and content (symbolsvc.exchanges), so the database holds no request in clear."""
        h = self._exchange.copy()  # the keyed state is copied, not set up again
        h.update(data)
        return h.digest()

    def seal(self, subject_id: bytes, agency: str, symbol: str) -> bytes:
        nonce = os.urandom(12)
        ct = self._seal.encrypt(nonce, subject_id, _aad(agency, symbol))
        return bytes((_SEAL_VERSION,)) + nonce + ct

    def unseal(self, sealed: bytes, agency: str, symbol: str) -> bytes:
        """Recover the subject id; ``ValueError`` if the reference was altered or moved."""
        if len(sealed) < 13 or sealed[0] != _SEAL_VERSION:
            raise ValueError("sealed subject reference has an unknown format")
        try:
            return self._seal.decrypt(sealed[1:13], sealed[13:], _aad(agency, symbol))
        except InvalidTag:
            raise ValueError("sealed subject reference failed authentication") from None


# RFC 4648 base32, lower case, unpadded, for a 32-byte digest: 256 bits + 4 zero bits
# = 26 ten-bit groups of two characters. Equal to
# base64.b32encode(d).decode().rstrip("=").lower(), at half its cost (that one is
# pure Python in 3.11 and was a visible share of every issue and translate).
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
_B32_PAIRS = tuple(a + b for a in _B32 for b in _B32)
_B32_SHIFTS = tuple(range(250, -1, -10))


def _b32_lower(digest: bytes) -> str:
    if len(digest) != 32:
        return base64.b32encode(digest).decode("ascii").rstrip("=").lower()
    n = int.from_bytes(digest, "big") << 4
    pairs = _B32_PAIRS
    return "".join([pairs[(n >> s) & 1023] for s in _B32_SHIFTS])


def _aad(agency: str, symbol: str) -> bytes:
    return agency.encode() + b"\x00" + symbol.encode()


def symbol_version(symbol: str, field: str = "symbol") -> int:
    """Validate a symbol's syntax and return its key version."""
    m = _SYMBOL_RE.fullmatch(symbol) if len(symbol) <= MAX_SYMBOL_LEN else None
    if m is None:
        raise InvalidArgument(
            "BAD_SYMBOL", "symbol is malformed (expected k<version>.<52 base32 characters>)", field
        )
    return int(m.group(1))
