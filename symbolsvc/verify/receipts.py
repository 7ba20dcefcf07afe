"""``symbolsvc audit receipts``: is every receipt a broker kept included in the log?

A receipt (docs/ACCESS_LOG.md, "Receipts") is a C2SP signed note by the log key::

    <origin>
    receipt
    <base64 RFC 9162 leaf hash>
    <integrate-by, RFC 3339 UTC>

    — <origin> <base64 key ID || Ed25519 signature>

A file holds any number of them, one after another, separated by blank lines. For
each, this checks the signature against the deployment's ``pki/log.vkey`` (any key
listed: receipts signed before a log-key rotation stay valid), then asks the
AuditService for the inclusion proof of its leaf hash in the latest checkpoint
(``GetInclusionProof`` by ``leaf_hash``) and verifies the proof against the
checkpoint's root. A receipt whose leaf is absent after its integrate-by time is
proof that the log broke its promise.

Like the rest of :mod:`symbolsvc.verify`, this imports nothing of the server.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from ..log.checkpoint import NoteError, verify_note
from ..log.errors import ProofError
from ..log.verification import verify_inclusion
from .errors import AuditError, AuditFailure
from .keychain import KeyChain

__all__ = ["Receipt", "ReceiptReport", "check_receipts", "parse_receipt", "split_receipts"]

_SIG_PREFIX = "\u2014 "


class ProofSource(Protocol):
    """What :func:`check_receipts` needs of ``AuditorClient``."""

    def checkpoint(self) -> str: ...

    def inclusion_proof_by_hash(self, leaf_hash: bytes, tree_size: int
                                ) -> tuple[int, list[bytes]]: ...


@dataclass(frozen=True)
class Receipt:
    origin: str
    leaf_hash: bytes
    integrate_by: int  # seconds since the epoch

    @property
    def label(self) -> str:
        by = datetime.fromtimestamp(self.integrate_by, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"leaf hash {base64.b64encode(self.leaf_hash).decode()}, integrate by {by}"


@dataclass
class ReceiptReport:
    origin: str
    tree_size: int
    total: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def split_receipts(text: str) -> list[str]:
    """The notes of a receipts file: each is its text lines, one blank line, then its
    signature lines; notes are separated by one or more blank lines."""
    notes: list[str] = []
    body: list[str] = []
    sigs: list[str] = []
    for line in [*text.split("\n"), ""]:
        if line.startswith(_SIG_PREFIX) and body:
            sigs.append(line)
        elif line == "":
            if sigs:
                notes.append("\n".join(body) + "\n\n" + "\n".join(sigs) + "\n")
                body, sigs = [], []
        elif sigs:  # a text line right after signatures: a new note without a blank line
            notes.append("\n".join(body) + "\n\n" + "\n".join(sigs) + "\n")
            body, sigs = [line], []
        else:
            body.append(line)
    if body:
        notes.append("\n".join(body) + "\n")  # unsigned leftovers: rejected by the checks
    return notes


def parse_receipt(note: str, keys: KeyChain, origin: str) -> Receipt:
    """Verify one receipt's signature (any key of ``keys``) and parse its text."""
    text = None
    for key in reversed(keys.keys):
        try:
            text = verify_note(note, key)
            break
        except NoteError:
            continue
    if text is None:
        raise AuditFailure("no valid signature by the log key")
    lines = text.split("\n")
    if len(lines) != 5 or lines[4] != "":
        raise AuditFailure("a receipt's text is four lines")
    if lines[0] != origin:
        raise AuditFailure(f"receipt is for log {lines[0]!r}, not {origin!r}")
    if lines[1] != "receipt":
        raise AuditFailure("the second line is not 'receipt' (a checkpoint, not a receipt?)")
    try:
        leaf = base64.b64decode(lines[2], validate=True)
    except (binascii.Error, ValueError):
        raise AuditFailure("the leaf hash is not base64") from None
    if len(leaf) != 32 or base64.b64encode(leaf).decode() != lines[2]:
        raise AuditFailure("the leaf hash is not 32 bytes in canonical base64")
    try:
        by = datetime.strptime(lines[3], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise AuditFailure("the integrate-by time is not RFC 3339 UTC (YYYY-MM-DDTHH:MM:SSZ)"
                           ) from None
    return Receipt(lines[0], leaf, int(by.timestamp()))


def check_receipts(client: ProofSource, keys: KeyChain, text: str, *,
                   origin: str | None = None, now: float | None = None) -> ReceiptReport:
    """Check every receipt in ``text`` against the log ``client`` serves; the report lists
    one line per receipt that is invalid or not included. Raises :class:`AuditFailure`
    when the log's checkpoint does not verify, :class:`AuditError` when the file holds no
    receipt or the service does not answer."""
    from symbolsvc_client.clients import CallError

    origin = origin or keys.name
    notes = split_receipts(text)
    if not notes:
        raise AuditError("the file holds no receipt")
    now = time.time() if now is None else now
    try:
        note = client.checkpoint()
        try:
            checkpoint = keys.verify_any(note, origin)
        except (NoteError, ValueError) as exc:
            raise AuditFailure(f"the latest checkpoint does not verify: {exc}") from None
        size = checkpoint.size
        problems: list[str] = []
        for n, receipt_note in enumerate(notes, 1):
            try:
                receipt = parse_receipt(receipt_note, keys, origin)
            except AuditFailure as exc:
                problems.append(f"receipt {n}: INVALID: {exc}")
                continue
            problem = _included(client, receipt, size, checkpoint.root_hash, now, CallError)
            if problem:
                problems.append(f"receipt {n} ({receipt.label}): {problem}")
    except CallError as exc:
        raise AuditError(f"the AuditService did not answer: {exc}") from None
    return ReceiptReport(origin, size, len(notes), problems)


def _included(client: ProofSource, receipt: Receipt, size: int, root: bytes, now: float,
              call_error: type[Exception]) -> str | None:
    """None when the receipt's leaf is proved in the tree of ``size``; else why not."""
    overdue = now > receipt.integrate_by
    missing = (f"MISSING from the log of size {size}"
               + (", past its integrate-by time: the log broke its promise" if overdue
                  else " (not yet due: check again after its integrate-by time)"))
    if size == 0:
        return missing
    try:
        index, proof = client.inclusion_proof_by_hash(receipt.leaf_hash, size)
    except call_error as exc:
        code = getattr(exc, "code", None)
        if code is not None and getattr(code, "name", "") == "NOT_FOUND":
            return missing
        raise
    try:
        verify_inclusion(receipt.leaf_hash, index, size, list(proof), root)
    except ProofError as exc:
        return f"the inclusion proof for leaf {index} does not verify ({exc})"
    return None
