"""The portal's signed, expiring links: the reference's stand-in for the national login.

``symbolsvc portal link --config C SYMBOL`` prints ``BASE/p/TOKEN/``; the portal
shows the person the portal's symbol inside TOKEN names and nobody else. TOKEN
is an itsdangerous ``URLSafeSerializer`` token (HMAC-SHA256 over a JSON payload
``{"s": symbol, "e": expiry}``) under a key that lives in its own 0600 file,
never in the database, so neither a database dump nor the registry's keys can
mint a link. Changing one character of TOKEN, or presenting it after its expiry,
is refused (:class:`LinkError`); the symbol itself is not secret from the person
who holds the link, and is never an individual number.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadData, URLSafeSerializer

from ..errors import ConfigError
from ..hostlimits import check_secret_modes
from ..pki import write_private

SALT = "symbolsvc-portal-link-v1"
KEY_BYTES = 32


class LinkError(ValueError):
    """A link that is altered, malformed or expired: show the person nothing."""


@dataclass(frozen=True, slots=True)
class Link:
    symbol: str
    expires: int  # seconds since the epoch


def load_key(path: Path, *, create: bool = False) -> bytes:
    """The link key in ``path`` (refused when others may read it); made 0600 if ``create``."""
    if not path.exists():
        if not create:
            raise ConfigError(f"{path}: the portal's link key is missing; "
                              "`symbolsvc portal link` creates it")
        write_private(path, secrets.token_hex(KEY_BYTES).encode() + b"\n")
    check_secret_modes([path])
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{path}: the portal's link key is not {KEY_BYTES} bytes of hex")
    return key


def _serializer(key: bytes) -> URLSafeSerializer:
    # itsdangerous signs with HMAC-SHA1 unless told otherwise
    return URLSafeSerializer(key, salt=SALT, signer_kwargs={"digest_method": hashlib.sha256})


def mint(key: bytes, symbol: str, ttl_seconds: int, now: float | None = None) -> str:
    """A token for ``symbol`` valid for ``ttl_seconds`` from ``now`` (default: the clock)."""
    expires = int(time.time() if now is None else now) + ttl_seconds
    return str(_serializer(key).dumps({"s": symbol, "e": expires}))


def open_link(key: bytes, token: str, now: float | None = None) -> Link:
    """The link ``token`` names; :class:`LinkError` when altered, malformed or expired."""
    if len(token) > 512:
        raise LinkError("link is too long")
    try:
        payload = _serializer(key).loads(token)
    except BadData:
        raise LinkError("link is not valid") from None
    if (not isinstance(payload, dict) or set(payload) != {"s", "e"}
            or not isinstance(payload["s"], str) or not isinstance(payload["e"], int)):
        raise LinkError("link is not valid")
    if (time.time() if now is None else now) >= payload["e"]:
        raise LinkError("link has expired")
    return Link(payload["s"], payload["e"])
