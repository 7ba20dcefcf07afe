"""An independent C2SP signed-note verifier, for tests.

Written from the text of c2sp.org/signed-note alone; it shares no code with
symbolsvc.log.checkpoint, so a bug there cannot hide here. Tests check what the service
signs (checkpoints, and anything else signed by the log key) with it.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["Rejected", "independent_rejects", "independent_verify"]


class Rejected(Exception):
    pass


def independent_verify(note: str, vkey: str) -> str:
    """Return the note text if `note` carries a valid Ed25519 signature by `vkey`."""
    # Verifier key: name "+" 8 hex digits "+" base64(0x01 || 32-byte public key).
    name, key_hash, key_b64 = vkey.split("+", 2)
    typed_key = base64.b64decode(key_b64)
    if typed_key[0] != 0x01 or len(typed_key) != 33:
        raise Rejected("not an Ed25519 verifier key")
    # key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4]
    kid = hashlib.sha256(name.encode() + b"\x0a" + typed_key).digest()[:4]
    if kid.hex() != key_hash:
        raise Rejected("verifier key hash mismatch")
    public_key = Ed25519PublicKey.from_public_bytes(typed_key[1:])
    # The text is separated from the signatures by the last empty line; the text
    # includes its final newline.
    text, _, signatures = note.rpartition("\n\n")
    text += "\n"
    if not _ or not signatures.endswith("\n"):
        raise Rejected("no signature block")
    good = 0
    for line in signatures[:-1].split("\n"):
        # em dash (U+2014), space, key name, space, base64 signature
        if not line.startswith("\u2014 "):
            raise Rejected("bad signature line")
        sig_name, sig_b64 = line[2:].split(" ")
        blob = base64.b64decode(sig_b64, validate=True)
        if sig_name != name or blob[:4] != kid:
            continue  # unknown key: ignore
        try:
            public_key.verify(blob[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise Rejected("bad signature") from None
        good += 1
    if not good:
        raise Rejected("no signature from the key")
    return text


def independent_rejects(note: str, vkey: str) -> bool:
    try:
        independent_verify(note, vkey)
    except (Rejected, ValueError):
        return True
    return False
