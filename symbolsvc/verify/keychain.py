"""The log's verifier keys over time: ``pki/log.vkey`` with one vkey per line, oldest first.

A log-key rotation (``symbolsvc keys rotate-log``) appends the new key's vkey
line; from then until ``rotate-log --finish`` every checkpoint is signed by the
old key and by the new one (a signed note may carry several signatures). A
verifier walking checkpoints in order trusts the first key of the file, and
moves to the next key only through a checkpoint signed by both: a key that
appears in the file but was never introduced that way signs nothing the
verifier accepts, and once the new key is introduced a checkpoint signed by the
old key alone is refused (an exposed old key cannot sign a future for the log).
"""

from __future__ import annotations

from pathlib import Path

from ..log.checkpoint import (
    Checkpoint,
    NoteError,
    VerifierKey,
    parse_checkpoint_body,
    parse_vkey,
    signed_by,
    verify_checkpoint,
    verify_note,
)


def parse_vkeys(text: str) -> list[VerifierKey]:
    """The vkeys of a ``log.vkey`` file: one per non-empty line, oldest first, one name."""
    keys = [parse_vkey(line.strip()) for line in text.splitlines() if line.strip()]
    if not keys:
        raise NoteError("the file holds no verifier key")
    if len({k.name for k in keys}) != 1:
        raise NoteError("every key of the log must carry the same name (the log's origin)")
    if len({k.key_id + bytes(str(k), "utf-8") for k in keys}) != len(keys):
        raise NoteError("a verifier key is listed twice")
    return keys


class KeyChain:
    """The trusted log keys and how far a verifier has followed their rotations."""

    def __init__(self, keys: list[VerifierKey]) -> None:
        self.keys = keys
        self.position = 0  # index of the key checkpoints must be signed by now

    @classmethod
    def of(cls, keys: KeyChain | VerifierKey) -> KeyChain:
        """``keys`` itself, or a chain of the one key."""
        return keys if isinstance(keys, KeyChain) else cls([keys])

    @classmethod
    def load(cls, path: Path | str) -> KeyChain:
        return cls(parse_vkeys(Path(path).read_text(encoding="utf-8")))

    @property
    def name(self) -> str:
        return self.keys[0].name

    @property
    def current(self) -> VerifierKey:
        return self.keys[self.position]

    def verify(self, note: str, origin: str | None) -> Checkpoint:
        """Verify the next checkpoint in log order; follow a rotation it completes."""
        signed = signed_by(note, self.keys)
        if not signed[self.position]:
            later = [i for i in range(self.position + 1, len(self.keys)) if signed[i]]
            if later:
                raise NoteError(
                    f"signed by log key {later[0] + 1} of {len(self.keys)} but not by key "
                    f"{self.position + 1}: a new log key is accepted only through a checkpoint "
                    "signed by both")
            verify_note(note, self.current)  # raises with the precise reason
        checkpoint = verify_checkpoint(note, self.current, origin)
        while self.position + 1 < len(self.keys) and signed[self.position + 1]:
            self.position += 1
        return checkpoint

    def verify_any(self, note: str, origin: str | None) -> Checkpoint:
        """Verify a note the auditor saved (state file) under whichever listed key signed it."""
        for key in reversed(self.keys):
            try:
                return verify_checkpoint(note, key, origin)
            except NoteError:
                continue
        raise NoteError("no signature by any key of the log")

    def resume_from(self, note: str) -> None:
        """Start at the newest key that signed ``note`` (a checkpoint verified before)."""
        signed = signed_by(note, self.keys)
        newest = max((i for i, s in enumerate(signed) if s), default=0)
        self.position = max(self.position, newest)

    def __str__(self) -> str:
        return "".join(f"{k}\n" for k in self.keys)


__all__ = ["KeyChain", "parse_checkpoint_body", "parse_vkeys"]
