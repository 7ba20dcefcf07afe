"""An independent C2SP tlog-cosignature (Ed25519, cosignature/v1) verifier, for tests.

Written from the text of c2sp.org/tlog-cosignature alone; it shares no code with
symbolsvc.log.cosignature, so a bug there cannot hide here:

* key ID = SHA-256(<name> || "\\n" || 0x04 || 32-byte Ed25519 public key)[:4];
* the vkey is ``name+<key ID hex>+base64(0x04 || public key)``;
* the signature line is ``— <name> base64(key ID || timestamped_signature)`` where
  ``timestamped_signature`` is a big-endian u64 timestamp then the 64-byte signature;
* the signed message is ``cosignature/v1\\n`` ``time <timestamp>\\n`` then the whole note
  body of the checkpoint (with its final newline, without signature lines).
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["CosignatureRejected", "independent_cosigners"]


class CosignatureRejected(Exception):
    pass


def _witness(vkey: str) -> tuple[str, bytes, Ed25519PublicKey]:
    name, key_hash, key_b64 = vkey.strip().split("+", 2)
    typed = base64.b64decode(key_b64)
    if len(typed) != 33 or typed[0] != 0x04:
        raise CosignatureRejected("not a cosignature/v1 Ed25519 vkey")
    kid = hashlib.sha256(name.encode() + b"\n" + b"\x04" + typed[1:]).digest()[:4]
    if kid.hex() != key_hash:
        raise CosignatureRejected("vkey hash mismatch")
    return name, kid, Ed25519PublicKey.from_public_bytes(typed[1:])


def independent_cosigners(note: str, vkeys: list[str]) -> dict[str, int]:
    """``{witness name: timestamp}`` of every valid cosignature by one of ``vkeys``;
    :class:`CosignatureRejected` if a line by a trusted key does not verify."""
    witnesses = [_witness(v) for v in vkeys]
    body, sep, signatures = note.rpartition("\n\n")
    if not sep:
        raise CosignatureRejected("no signature block")
    body += "\n"
    found: dict[str, int] = {}
    for line in signatures.rstrip("\n").split("\n"):
        if not line.startswith("\u2014 "):
            raise CosignatureRejected("bad signature line")
        name, b64 = line[2:].split(" ")
        blob = base64.b64decode(b64, validate=True)
        for w_name, kid, public_key in witnesses:
            if name != w_name or blob[:4] != kid:
                continue
            if len(blob) != 4 + 8 + 64:
                raise CosignatureRejected("wrong cosignature length")
            timestamp = int.from_bytes(blob[4:12], "big")
            message = b"cosignature/v1\n" + f"time {timestamp}\n".encode() + body.encode()
            try:
                public_key.verify(blob[12:], message)
            except InvalidSignature:
                raise CosignatureRejected(f"bad cosignature by {name}") from None
            found[name] = timestamp
    return found
