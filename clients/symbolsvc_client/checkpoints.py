"""Verifying the access log's checkpoints on the client side, witnesses included.

    from symbolsvc_client.checkpoints import verify_checkpoint
    note = auditor.checkpoint(min_cosignatures=2)
    cp = verify_checkpoint(note, log_vkey, witness_vkeys=[w1, w2], quorum=2)
    cp.size, cp.root_hash, cp.witnesses

A checkpoint is a C2SP signed note (c2sp.org/tlog-checkpoint, c2sp.org/signed-note)
signed by the log's Ed25519 key; witnesses add C2SP tlog-cosignature lines
(Ed25519 ``cosignature/v1``: key ID ``SHA-256(name ‖ "\\n" ‖ 0x04 ‖ key)[:4]``, signature
``u64 timestamp ‖ Ed25519("cosignature/v1\\ntime <t>\\n" ‖ body)``). Requiring ``quorum``
of the given witnesses protects against a log showing different histories to different
clients (a split view): docs/WITNESS.md in the server's repository.

Needs the ``cryptography`` package (``pip install symbolsvc-client[verify]``); the
rest of the client does not.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CheckpointRejected", "VerifiedCheckpoint", "verify_checkpoint"]

_DASH = "\u2014 "


class CheckpointRejected(ValueError):
    """The note is malformed, not signed by the log, or lacks the witness quorum."""


@dataclass(frozen=True)
class VerifiedCheckpoint:
    origin: str
    size: int
    root_hash: bytes
    witnesses: tuple[str, ...]  # names of the witnesses whose cosignatures verified


def _ed25519(raw: bytes) -> Any:
    try:
        mod = importlib.import_module("cryptography.hazmat.primitives.asymmetric.ed25519")
    except ImportError:
        raise CheckpointRejected("verifying needs the cryptography package: "
                                 "pip install 'symbolsvc-client[verify]'") from None
    return mod.Ed25519PublicKey.from_public_bytes(raw)


def _key(vkey: str, type_byte: int) -> tuple[str, bytes, Any]:
    try:
        name, key_hash, b64 = vkey.strip().split("+", 2)
        typed = base64.b64decode(b64, validate=True)
    except ValueError:
        raise CheckpointRejected(f"malformed vkey {vkey!r}") from None
    if len(typed) != 33 or typed[0] != type_byte:
        raise CheckpointRejected(f"vkey {name!r} is not of type 0x{type_byte:02x}")
    kid = hashlib.sha256(name.encode() + b"\n" + typed).digest()[:4]
    if kid.hex() != key_hash:
        raise CheckpointRejected(f"vkey {name!r}: hash does not match")
    return name, kid, _ed25519(typed[1:])


def _valid(public_key: Any, signature: bytes, message: bytes) -> bool:
    try:
        public_key.verify(signature, message)
    except Exception:  # noqa: BLE001 - cryptography's InvalidSignature, imported lazily
        return False
    return True


def verify_checkpoint(note: str, log_vkey: str, *, witness_vkeys: Sequence[str] = (),
                      quorum: int = 0, origin: str | None = None) -> VerifiedCheckpoint:
    """Verify the log's signature and at least ``quorum`` witness cosignatures.

    Signature lines by unknown keys are ignored; a line by a trusted key that does not
    verify rejects the note. Raises :class:`CheckpointRejected`.
    """
    if not 0 <= quorum <= len(witness_vkeys):
        raise CheckpointRejected("quorum must be between 0 and the number of witness keys")
    text, sep, block = note.rpartition("\n\n")
    if not sep or not block.endswith("\n"):
        raise CheckpointRejected("not a signed note")
    text += "\n"
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not lines[1].isdigit():
        raise CheckpointRejected("not a checkpoint body")
    try:
        root_hash = base64.b64decode(lines[2], validate=True)
    except ValueError:
        raise CheckpointRejected("root hash is not base64") from None
    if len(root_hash) != 32:
        raise CheckpointRejected("root hash is not 32 bytes")
    if origin is not None and lines[0] != origin:
        raise CheckpointRejected(f"checkpoint is for {lines[0]!r}, not {origin!r}")
    log_name, log_kid, log_key = _key(log_vkey, 0x01)
    witnesses = [_key(v, 0x04) for v in witness_vkeys]
    signed, cosigned = False, set()
    for line in block[:-1].split("\n"):
        if not line.startswith(_DASH) or line.count(" ") != 2:
            raise CheckpointRejected("malformed signature line")
        name, b64 = line[len(_DASH):].split(" ")
        try:
            blob = base64.b64decode(b64, validate=True)
        except ValueError:
            raise CheckpointRejected("signature is not base64") from None
        if name == log_name and blob[:4] == log_kid:
            if not _valid(log_key, blob[4:], text.encode()):
                raise CheckpointRejected("the log's signature does not verify")
            signed = True
        for w_name, w_kid, w_key in witnesses:
            if name == w_name and blob[:4] == w_kid:
                if len(blob) != 76:
                    raise CheckpointRejected(f"cosignature by {name} has the wrong length")
                message = f"cosignature/v1\ntime {int.from_bytes(blob[4:12], 'big')}\n{text}"
                if not _valid(w_key, blob[12:], message.encode()):
                    raise CheckpointRejected(f"cosignature by {name} does not verify")
                cosigned.add(name)
    if not signed:
        raise CheckpointRejected("no valid signature by the log's key")
    if len(cosigned) < quorum:
        raise CheckpointRejected(f"{len(cosigned)} valid witness cosignature(s); "
                                 f"{quorum} required")
    return VerifiedCheckpoint(lines[0], int(lines[1]), root_hash, tuple(sorted(cosigned)))
