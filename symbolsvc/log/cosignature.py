"""Witness cosignatures: C2SP tlog-cosignature, Ed25519 ``cosignature/v1`` (docs/WITNESS.md).

* A cosignature is a signed-note signature line ``— <name> base64(key ID ‖ sig)``
  whose key ID is ``SHA-256(name ‖ "\\n" ‖ 0x04 ‖ 32-byte public key)[:4]``.
* ``sig`` is a ``timestamped_signature``: ``u64 timestamp`` (POSIX seconds, big-endian,
  at most 2**63-1) then the 64-byte Ed25519 signature over
  ``"cosignature/v1\\n" ‖ "time " <timestamp decimal> "\\n" ‖ checkpoint body``.
* Witness verifier keys are vkeys with type byte 0x04:
  ``name+<key ID hex>+base64(0x04 ‖ public key)``.

Pure code (no I/O): the witness signs with it, the log checks what witnesses return,
and the auditor's verifier (``symbolsvc.verify``) may import it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .checkpoint import MAX_SIGNATURES, Checkpoint, NoteError, parse_checkpoint_body

__all__ = [
    "COSIGNATURE_TYPE_ED25519",
    "Cosignature",
    "WitnessKey",
    "cosign",
    "cosigned_message",
    "count_cosignatures",
    "parse_witness_vkey",
    "signature_lines",
    "split_note",
    "verify_cosignatures",
    "with_cosignatures",
    "witness_key_id",
    "witness_vkey_string",
]

COSIGNATURE_TYPE_ED25519 = 0x04
"""Key ID type byte of Ed25519 cosignature/v1 (c2sp.org/tlog-cosignature)."""

_SIG_PREFIX = "\u2014 "
_MAX_TIMESTAMP = (1 << 63) - 1
_SIG_BYTES = 8 + 64


@dataclass(frozen=True, slots=True)
class WitnessKey:
    """A trusted witness: its name, 4-byte cosignature key ID and Ed25519 public key."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    def __str__(self) -> str:
        return witness_vkey_string(self.name, self.public_key)


@dataclass(frozen=True, slots=True)
class Cosignature:
    """One verified cosignature: which witness, and the time it states."""

    name: str
    timestamp: int
    line: str


def _raw(public_key: Ed25519PublicKey | bytes) -> bytes:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(public_key, bytes) and len(public_key) == 32:
        return public_key
    raise NoteError("an Ed25519 public key is 32 bytes")


def _check_name(name: str) -> None:
    if (not isinstance(name, str) or not name or "+" in name
            or any(ch.isspace() or ord(ch) < 0x20 for ch in name)):
        raise NoteError("witness name must be non-empty, without spaces or '+'")


def witness_key_id(name: str, public_key: Ed25519PublicKey | bytes) -> bytes:
    """``SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]``."""
    _check_name(name)
    data = name.encode("utf-8") + b"\n" + bytes([COSIGNATURE_TYPE_ED25519]) + _raw(public_key)
    return hashlib.sha256(data).digest()[:4]


def witness_vkey_string(name: str, public_key: Ed25519PublicKey | bytes) -> str:
    """The witness's verifier key ``name+<key ID hex>+base64(0x04 ‖ public key)``."""
    raw = _raw(public_key)
    encoded = base64.b64encode(bytes([COSIGNATURE_TYPE_ED25519]) + raw).decode("ascii")
    return f"{name}+{witness_key_id(name, raw).hex()}+{encoded}"


def parse_witness_vkey(vkey: str) -> WitnessKey:
    """Parse a 0x04-typed witness vkey; raise :class:`NoteError` if malformed."""
    if not isinstance(vkey, str):
        raise NoteError("witness verifier key must be text")
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise NoteError("witness verifier key must have the form name+hash+key")
    name, hash_hex, key_b64 = parts
    _check_name(name)
    try:
        raw = base64.b64decode(key_b64, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("witness verifier key is not valid base64") from None
    if len(raw) != 33 or raw[0] != COSIGNATURE_TYPE_ED25519:
        raise NoteError("witness verifier key is not a 0x04-typed 32-byte Ed25519 key "
                        "(c2sp.org/tlog-cosignature)")
    kid = witness_key_id(name, raw[1:])
    if kid.hex() != hash_hex:
        raise NoteError("witness verifier key hash does not match its name and key")
    return WitnessKey(name, kid, Ed25519PublicKey.from_public_bytes(raw[1:]))


def cosigned_message(body: str, timestamp: int) -> bytes:
    """The signed message: header line, timestamp line, then the whole checkpoint body."""
    if isinstance(timestamp, bool) or not 0 <= timestamp <= _MAX_TIMESTAMP:
        raise NoteError("cosignature timestamp must be in [0, 2**63)")
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


def cosign(body: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> str:
    """Return the cosignature line (ending in ``\\n``) over a checkpoint ``body``."""
    signature = private_key.sign(cosigned_message(body, timestamp))
    kid = witness_key_id(name, private_key.public_key())
    blob = kid + struct.pack(">Q", timestamp) + signature
    return f"{_SIG_PREFIX}{name} {base64.b64encode(blob).decode('ascii')}\n"


def split_note(note: str) -> tuple[str, list[str]]:
    """``(text, signature lines without their newline)``; :class:`NoteError` if malformed."""
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2:]
    if not block.endswith("\n"):
        raise NoteError("note signature block must be non-empty and end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")
    for line in lines:
        if not line.startswith(_SIG_PREFIX) or " " not in line[len(_SIG_PREFIX):]:
            raise NoteError("note signature line must be '— <name> <base64>'")
    return text, lines


def signature_lines(lines_text: str) -> list[str]:
    """The signature lines of a witness's 200 response (each ``— name base64\\n``)."""
    if not lines_text.endswith("\n"):
        raise NoteError("cosignature lines must end with a newline")
    lines = lines_text[:-1].split("\n")
    for line in lines:
        if not line.startswith(_SIG_PREFIX) or " " not in line[len(_SIG_PREFIX):]:
            raise NoteError("not a note signature line")
    return lines


def with_cosignatures(note: str, lines: Sequence[str]) -> str:
    """``note`` with the signature ``lines`` (each ending in ``\n``) appended, except
    those whose key name already signs it (a witness asked twice)."""
    _, present = split_note(note)
    names = {line[len(_SIG_PREFIX):].partition(" ")[0] for line in present}
    out = note
    for line in lines:
        name = line[len(_SIG_PREFIX):].partition(" ")[0]
        if name not in names and len(present) < MAX_SIGNATURES:
            out += line if line.endswith("\n") else line + "\n"
            names.add(name)
            present.append(line)
    return out


def count_cosignatures(note: str, log_key_name: str) -> int:
    """Signature lines by names other than the log's (unverified: a hint for servers)."""
    try:
        _, lines = split_note(note)
    except NoteError:
        return 0
    names = {line[len(_SIG_PREFIX):].partition(" ")[0] for line in lines}
    names.discard(log_key_name)
    return len(names)


def _verify_line(text: str, line: str, key: WitnessKey) -> Cosignature | None:
    name, _, encoded = line[len(_SIG_PREFIX):].partition(" ")
    if name != key.name:
        return None
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError(f"cosignature by {name} is not valid base64") from None
    if len(blob) < 4 or not hmac.compare_digest(blob[:4], key.key_id):
        return None  # same name, another key or another signature type: ignore
    if len(blob) != 4 + _SIG_BYTES:
        raise NoteError(f"cosignature by {name} has the wrong length")
    (timestamp,) = struct.unpack(">Q", blob[4:12])
    if timestamp > _MAX_TIMESTAMP:
        raise NoteError(f"cosignature by {name} has a timestamp beyond 2**63-1")
    try:
        key.public_key.verify(blob[12:], cosigned_message(text, timestamp))
    except InvalidSignature:
        raise NoteError(f"cosignature by {name} does not verify") from None
    return Cosignature(name, timestamp, line + "\n")


def verify_cosignatures(
    note: str, witnesses: Sequence[WitnessKey], quorum: int, *,
    now: int | None = None, max_skew: int = 600,
) -> tuple[Checkpoint, list[Cosignature]]:
    """Check that at least ``quorum`` distinct ``witnesses`` validly cosigned ``note``.

    Lines by unknown names or key IDs are ignored; a line by a trusted key that does
    not verify rejects the note (as for signed notes). With ``now`` (POSIX seconds),
    a timestamp more than ``max_skew`` seconds in the future rejects it. Returns the
    parsed checkpoint body (NOT verified against the log's key: the caller does that)
    and the valid cosignatures. Raises :class:`NoteError`.
    """
    if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 0:
        raise NoteError("witness quorum must be a non-negative integer")
    if quorum > len({w.name for w in witnesses}):
        raise NoteError(f"witness quorum {quorum} exceeds the {len(witnesses)} witness "
                        "key(s) given")
    text, lines = split_note(note)
    checkpoint = parse_checkpoint_body(text)
    found: dict[str, Cosignature] = {}
    for line in lines:
        for key in witnesses:
            cosig = _verify_line(text, line, key)
            if cosig is None:
                continue
            if now is not None and cosig.timestamp > now + max_skew:
                raise NoteError(f"cosignature by {cosig.name} is dated in the future")
            found.setdefault(cosig.name, cosig)
    if len(found) < quorum:
        raise NoteError(f"checkpoint {checkpoint.size} carries {len(found)} valid witness "
                        f"cosignature(s); {quorum} required")
    return checkpoint, list(found.values())
