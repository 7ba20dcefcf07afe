"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes (Ed25519).

Formats implemented, so that tools outside this project can verify our tree heads:

* c2sp.org/tlog-checkpoint (C2SP/C2SP ``tlog-checkpoint.md``): the note text is
  the origin line, the tree size in decimal, the base64 RFC 6962/9162 root hash
  and optional non-empty extension lines, each ending in ``\\n``.
* c2sp.org/signed-note (C2SP/C2SP ``signed-note.md``): a note is
  ``text || "\\n" || signature lines``; a signature line is
  ``"— " name " " base64(key ID (4 bytes, big-endian) || signature) "\\n"``
  (em dash U+2014, then a space). For Ed25519 (signature type 0x01) the
  signature is RFC 8032 Ed25519 over the text and
  ``key ID = SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4]``.
* Verifier keys use the ``name+hash+base64(0x01 || public key)`` form of
  golang.org/x/mod/sumdb/note, where ``hash`` is the key ID as 8 lowercase hex
  digits; signer keys use ``PRIVATE+KEY+name+hash+base64(0x01 || seed)``.

Only Ed25519 is supported: the signed-note spec recommends implementations pick
the one signature type their design needs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .errors import VerificationError

__all__ = [
    "MAX_SIGNATURES",
    "SIGNATURE_TYPE_ED25519",
    "Checkpoint",
    "CheckpointError",
    "NoteError",
    "VerifierKey",
    "format_checkpoint_body",
    "key_id",
    "parse_checkpoint_body",
    "parse_signer_key",
    "parse_vkey",
    "sign_checkpoint",
    "sign_note",
    "signer_key_string",
    "verify_checkpoint",
    "verify_note",
    "vkey_string",
]

SIGNATURE_TYPE_ED25519 = 0x01
"""Signature type identifier byte for Ed25519 (c2sp.org/signed-note, "Signature types")."""

MAX_SIGNATURES = 100
"""Most signature lines a note may carry; the spec requires accepting at least 16."""

_SIG_PREFIX = "\u2014 "  # em dash, space
_ED25519_SIG_SIZE = 64
_ED25519_KEY_SIZE = 32
_HASH_SIZE = 32
_MAX_TREE_SIZE = (1 << 64) - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_KEY_HASH = re.compile(r"[0-9a-f]{8}")


class NoteError(VerificationError):
    """A signed note or key is malformed, or not validly signed by the expected key.

    Do not use the note's text: the signed-note spec says it MUST be ignored
    unless a trusted key's signature on it has been verified.
    """


class CheckpointError(VerificationError):
    """A checkpoint body does not follow c2sp.org/tlog-checkpoint; reject the checkpoint."""


# ----------------------------------------------------------------------- checkpoint


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log tree head: the note text of c2sp.org/tlog-checkpoint.

    ``origin`` identifies the log (a schema-less URL such as
    ``symbolsvc.local/log``), ``size`` is the number of leaves and
    ``root_hash`` the 32-byte RFC 9162 root. ``extensions`` are opaque extra
    lines; the spec does not recommend them, and this service writes none.
    """

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise CheckpointError("checkpoint origin must be a non-empty string")
        _check_line(self.origin, "checkpoint origin", CheckpointError)
        if (
            isinstance(self.size, bool)
            or not isinstance(self.size, int)
            or not 0 <= self.size <= _MAX_TREE_SIZE
        ):
            raise CheckpointError("checkpoint tree size must be an integer in [0, 2**64)")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != _HASH_SIZE:
            raise CheckpointError(f"checkpoint root hash must be {_HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise CheckpointError("checkpoint extensions must be a tuple of strings")
        for ext in self.extensions:
            if not isinstance(ext, str) or not ext:
                raise CheckpointError("checkpoint extension lines must be non-empty strings")
            _check_line(ext, "checkpoint extension line", CheckpointError)

    def body(self) -> str:
        """Return the note text; same as :func:`format_checkpoint_body`."""
        return format_checkpoint_body(self)


def format_checkpoint_body(checkpoint: Checkpoint) -> str:
    """Serialise a checkpoint as c2sp.org/tlog-checkpoint note text (each line ends in ``\\n``)."""
    lines = [
        checkpoint.origin,
        str(checkpoint.size),
        base64.b64encode(checkpoint.root_hash).decode("ascii"),
        *checkpoint.extensions,
    ]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint_body(body: str) -> Checkpoint:
    """Parse c2sp.org/tlog-checkpoint note text strictly; raise :class:`CheckpointError`.

    Rejected: text not ending in ``\\n``; fewer than three lines; any empty
    line; control characters; a size with a sign, leading zeros, non-ASCII
    digits or beyond 2**64-1; a root hash that is not canonical standard
    base64 of exactly 32 bytes.
    """
    if not isinstance(body, str):
        raise CheckpointError("checkpoint body must be text")
    if not body.endswith("\n"):
        raise CheckpointError("checkpoint body must end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint body needs origin, size and root hash lines")
    for line in lines:
        if not line:
            raise CheckpointError("checkpoint body lines must be non-empty")
        _check_line(line, "checkpoint line", CheckpointError)
    origin, size_text, root_text, *extensions = lines
    if not _DECIMAL.fullmatch(size_text) or int(size_text) > _MAX_TREE_SIZE:
        raise CheckpointError("checkpoint tree size must be a decimal uint64 without leading zeros")
    root_hash = _b64decode_canonical(root_text, CheckpointError, "checkpoint root hash")
    if len(root_hash) != _HASH_SIZE:
        raise CheckpointError(f"checkpoint root hash must be {_HASH_SIZE} bytes")
    return Checkpoint(origin, int(size_text), root_hash, tuple(extensions))


# ----------------------------------------------------------------------------- keys


@dataclass(frozen=True, slots=True)
class VerifierKey:
    """A trusted Ed25519 note verifier: key name, 4-byte key ID and public key."""

    name: str
    key_id: bytes
    public_key: Ed25519PublicKey

    def __str__(self) -> str:
        return vkey_string(self.name, self.public_key)


def _public_bytes(public_key: Ed25519PublicKey | bytes) -> bytes:
    if isinstance(public_key, Ed25519PublicKey):
        return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if isinstance(public_key, bytes) and len(public_key) == _ED25519_KEY_SIZE:
        return public_key
    raise NoteError(f"an Ed25519 public key is {_ED25519_KEY_SIZE} bytes")


def key_id(name: str, public_key: Ed25519PublicKey | bytes) -> bytes:
    """Return ``SHA-256(name || 0x0A || 0x01 || public key)[:4]`` (c2sp.org/signed-note)."""
    _check_key_name(name)
    data = name.encode("utf-8") + b"\n" + bytes([SIGNATURE_TYPE_ED25519])
    return hashlib.sha256(data + _public_bytes(public_key)).digest()[:4]


def vkey_string(name: str, public_key: Ed25519PublicKey | bytes) -> str:
    """Return the verifier key ``name+<key ID hex>+base64(0x01 || public key)``."""
    raw = _public_bytes(public_key)
    encoded = base64.b64encode(bytes([SIGNATURE_TYPE_ED25519]) + raw).decode("ascii")
    return f"{name}+{key_id(name, raw).hex()}+{encoded}"


def parse_vkey(vkey: str) -> VerifierKey:
    """Parse a verifier key string; raise :class:`NoteError` if malformed.

    The key ID in the string must equal the one computed from the name and key,
    the type byte must be Ed25519 (0x01) and the key exactly 32 bytes.
    """
    if not isinstance(vkey, str):
        raise NoteError("verifier key must be text")
    parts = vkey.split("+", 2)  # the base64 key may itself contain '+'
    if len(parts) != 3:
        raise NoteError("verifier key must have the form name+hash+key")
    name, hash_hex, key_b64 = parts
    _check_key_name(name)
    if not _KEY_HASH.fullmatch(hash_hex):
        raise NoteError("verifier key hash must be 8 lowercase hex digits")
    raw = _b64decode_canonical(key_b64, NoteError, "verifier key")
    if len(raw) != 1 + _ED25519_KEY_SIZE or raw[0] != SIGNATURE_TYPE_ED25519:
        raise NoteError("verifier key is not a 0x01-typed 32-byte Ed25519 key")
    kid = key_id(name, raw[1:])
    if kid.hex() != hash_hex:
        raise NoteError("verifier key hash does not match its name and key")
    return VerifierKey(name, kid, Ed25519PublicKey.from_public_bytes(raw[1:]))


def signer_key_string(name: str, private_key: Ed25519PrivateKey) -> str:
    """Return the secret signer key ``PRIVATE+KEY+name+hash+base64(0x01 || seed)``."""
    seed = private_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    kid = key_id(name, private_key.public_key())
    encoded = base64.b64encode(bytes([SIGNATURE_TYPE_ED25519]) + seed).decode("ascii")
    return f"PRIVATE+KEY+{name}+{kid.hex()}+{encoded}"


def parse_signer_key(skey: str) -> tuple[str, Ed25519PrivateKey]:
    """Parse a signer key string into ``(name, private key)``; raise :class:`NoteError`."""
    if not isinstance(skey, str):
        raise NoteError("signer key must be text")
    parts = skey.split("+", 4)
    if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
        raise NoteError("signer key must have the form PRIVATE+KEY+name+hash+key")
    _, _, name, hash_hex, key_b64 = parts
    _check_key_name(name)
    if not _KEY_HASH.fullmatch(hash_hex):
        raise NoteError("signer key hash must be 8 lowercase hex digits")
    raw = _b64decode_canonical(key_b64, NoteError, "signer key")
    if len(raw) != 1 + _ED25519_KEY_SIZE or raw[0] != SIGNATURE_TYPE_ED25519:
        raise NoteError("signer key is not a 0x01-typed 32-byte Ed25519 seed")
    private_key = Ed25519PrivateKey.from_private_bytes(raw[1:])
    if key_id(name, private_key.public_key()).hex() != hash_hex:
        raise NoteError("signer key hash does not match its name and key")
    return name, private_key


# ---------------------------------------------------------------------------- notes


def sign_note(body: str, name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign ``body`` with Ed25519 and return the c2sp.org/signed-note text.

    ``body`` must be non-empty UTF-8 text ending in ``\\n`` without control
    characters other than newline; ``name`` must be a valid key name (no
    Unicode spaces, no ``+``). Raises :class:`NoteError` otherwise.
    """
    if not isinstance(body, str) or not body.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_note_chars(body)
    _check_key_name(name)
    signature = private_key.sign(body.encode("utf-8"))
    kid = key_id(name, private_key.public_key())
    encoded = base64.b64encode(kid + signature).decode("ascii")
    return f"{body}\n{_SIG_PREFIX}{name} {encoded}\n"


def verify_note(note_text: str | bytes, verifier_key: str | VerifierKey) -> str:
    """Verify a c2sp.org/signed-note against one trusted key; return the note text.

    Signatures whose (name, key ID) pair is not the trusted key's are ignored,
    as the spec requires. A signature by the trusted key that fails to verify
    rejects the whole note, and so does the absence of any such signature.
    Raises :class:`NoteError`; never returns unverified text.
    """
    key = verifier_key if isinstance(verifier_key, VerifierKey) else parse_vkey(verifier_key)
    if isinstance(note_text, bytes):
        try:
            note_text = note_text.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not valid UTF-8") from None
    if not isinstance(note_text, str):
        raise NoteError("note must be text")
    _check_note_chars(note_text)

    split = note_text.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, sig_block = note_text[: split + 1], note_text[split + 2 :]
    if not sig_block or not sig_block.endswith("\n"):
        raise NoteError("note signature block must be non-empty and end with a newline")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has more than {MAX_SIGNATURES} signatures")

    message = text.encode("utf-8")
    verified = False
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise NoteError("note signature line must start with an em dash and a space")
        name, sep, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not encoded:
            raise NoteError("note signature line must be '— <name> <base64>'")
        _check_key_name(name)
        try:
            blob = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise NoteError("note signature is not valid base64") from None
        if len(blob) < 5:
            raise NoteError("note signature is too short to hold a key ID and a signature")
        if name != key.name or not hmac.compare_digest(blob[:4], key.key_id):
            continue  # another key's signature (a witness, a rotated key): ignore it
        signature = blob[4:]
        if len(signature) != _ED25519_SIG_SIZE:
            raise NoteError(f"signature by {key.name} has the wrong length")
        try:
            key.public_key.verify(signature, message)
        except InvalidSignature:
            raise NoteError(f"signature by {key.name} does not verify") from None
        verified = True
    if not verified:
        raise NoteError(f"note carries no signature by {key.name}+{key.key_id.hex()}")
    return text


def sign_checkpoint(
    checkpoint: Checkpoint, private_key: Ed25519PrivateKey, name: str | None = None
) -> str:
    """Return the signed note for ``checkpoint``; the key name defaults to its origin.

    (c2sp.org/tlog-checkpoint: the log's key name SHOULD match the origin line.)
    """
    return sign_note(format_checkpoint_body(checkpoint), name or checkpoint.origin, private_key)


def verify_checkpoint(
    note_text: str | bytes, verifier_key: str | VerifierKey, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and return it parsed.

    Raises :class:`NoteError` for a bad or missing signature, and
    :class:`CheckpointError` for a malformed body or an origin other than the
    expected ``origin`` (when given).
    """
    checkpoint = parse_checkpoint_body(verify_note(note_text, verifier_key))
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint is for log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


# -------------------------------------------------------------------------- helpers


def _check_key_name(name: str) -> None:
    """Key names MUST be non-empty and contain no Unicode spaces and no ``+``."""
    if not isinstance(name, str) or not name or "+" in name or any(ch.isspace() for ch in name):
        raise NoteError("key name must be non-empty, without spaces or '+'")
    _check_line(name, "key name", NoteError)


def _check_note_chars(text: str) -> None:
    """Notes MUST be valid UTF-8 with no ASCII control characters other than newline."""
    _check_text(text, "note", NoteError, allow_newline=True)


def _check_line(text: str, what: str, error: type[ValueError]) -> None:
    _check_text(text, what, error, allow_newline=False)


def _check_text(text: str, what: str, error: type[ValueError], *, allow_newline: bool) -> None:
    for ch in text:
        if ord(ch) < 0x20 and not (allow_newline and ch == "\n"):
            raise error(f"{what} contains a control character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise error(f"{what} is not valid Unicode text") from None


def _b64decode_canonical(text: str, error: type[ValueError], what: str) -> bytes:
    """Decode standard base64 (RFC 4648 §4), accepting only its canonical encoding."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise error(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise error(f"{what} is not canonical base64")
    return raw
