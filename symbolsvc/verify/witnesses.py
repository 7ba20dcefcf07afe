"""Requiring k of n witness cosignatures on the checkpoint an audit verifies
(``--witness-vkey``, ``--witness-quorum``; docs/WITNESS.md)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..log.checkpoint import NoteError
from ..log.cosignature import Cosignature, WitnessKey, parse_witness_vkey, verify_cosignatures
from .errors import AuditError, AuditFailure


@dataclass(frozen=True)
class WitnessPolicy:
    """The witnesses an auditor trusts, and how many must have cosigned."""

    keys: tuple[WitnessKey, ...]
    quorum: int

    @classmethod
    def load(cls, vkeys: list[str], quorum: int | None) -> WitnessPolicy | None:
        """From vkeys given inline or as files; quorum defaults to all of them."""
        if not vkeys:
            if quorum:
                raise AuditError("--witness-quorum needs --witness-vkey")
            return None
        keys = []
        for text in vkeys:
            path = Path(text)
            try:
                raw = path.read_text(encoding="ascii").strip() if path.is_file() else text
                keys.append(parse_witness_vkey(raw))
            except (OSError, UnicodeDecodeError, NoteError) as exc:
                raise AuditError(f"--witness-vkey {text}: {exc}") from None
        if len({k.name for k in keys}) != len(keys):
            raise AuditError("--witness-vkey: two keys have the same witness name")
        quorum = len(keys) if quorum is None else quorum
        if not 1 <= quorum <= len(keys):
            raise AuditError(f"--witness-quorum must be from 1 to {len(keys)} (the witness "
                             "keys given)")
        return cls(tuple(keys), quorum)

    def check(self, label: str, note: str) -> list[Cosignature]:
        """The note's valid cosignatures; :class:`AuditFailure` if fewer than the quorum."""
        try:
            return verify_cosignatures(note, self.keys, self.quorum, now=int(time.time()))[1]
        except NoteError as exc:
            raise AuditFailure(f"{label}: not witnessed: {exc}") from None

    def valid(self, label: str, note: str) -> list[Cosignature]:
        """The note's valid cosignatures, however few; :class:`AuditFailure` only if a
        line by a trusted witness does not verify (a forged or damaged cosignature)."""
        try:
            return verify_cosignatures(note, self.keys, 0, now=int(time.time()))[1]
        except NoteError as exc:
            raise AuditFailure(f"{label}: bad witness cosignature: {exc}") from None
