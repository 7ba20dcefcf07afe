"""The auditor's inputs and memory: the verifier key and the state file.

The *state file* is the auditor's memory between runs: the origin, size, root
hash and signed note of the latest checkpoint verified. A later run must find a
log that extends it. It is written (atomically) only after a run passes.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..log.checkpoint import CheckpointError, NoteError, VerifierKey, parse_vkey, verify_checkpoint
from .errors import AuditError

__all__ = ["TrustedState", "load_state", "load_vkey", "save_state"]


def load_vkey(path: Path | str) -> VerifierKey:
    """Read a signed-note verifier key file (``pki/log.vkey``: one line)."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"cannot read verifier key {path}: {exc}") from None
    try:
        return parse_vkey(text)
    except NoteError as exc:
        raise AuditError(f"{path}: not a verifier key: {exc}") from None


@dataclass(frozen=True, slots=True)
class TrustedState:
    """The latest checkpoint the auditor has verified (kept in the state file)."""

    origin: str
    size: int
    root_hash: bytes
    checkpoint: str  # the signed note, exactly as verified

    def to_json(self) -> str:
        return json.dumps({
            "origin": self.origin,
            "size": self.size,
            "root_hash": base64.b64encode(self.root_hash).decode("ascii"),
            "checkpoint": self.checkpoint,
        }, indent=2) + "\n"


def load_state(path: Path | str, vkey: VerifierKey) -> TrustedState | None:
    """Read the state file; ``None`` if it does not exist yet (first verification).

    The saved note must still verify under ``vkey`` and agree with the saved
    origin, size and root: a state file from another log is refused.
    """
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"cannot read state file {p}: {exc}") from None
    try:
        data = json.loads(raw)
        state = TrustedState(str(data["origin"]), int(data["size"]),
                             base64.b64decode(data["root_hash"], validate=True),
                             str(data["checkpoint"]))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise AuditError(f"state file {p} is malformed: {exc}") from None
    try:
        cp = verify_checkpoint(state.checkpoint, vkey, state.origin)
    except (NoteError, CheckpointError) as exc:
        raise AuditError(f"state file {p}: its checkpoint does not verify: {exc}") from None
    if cp.size != state.size or cp.root_hash != state.root_hash:
        raise AuditError(f"state file {p}: size or root hash differs from its checkpoint")
    return state


def save_state(path: Path | str, state: TrustedState) -> None:
    """Write the state file atomically (a crash leaves the old or the new one)."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(state.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
