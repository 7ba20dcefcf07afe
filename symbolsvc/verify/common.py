"""What both verification modes share: the report, the recomputed tree, the checks."""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .. import inquiry
from ..log.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteError,
    parse_checkpoint_body,
)
from ..log.compact import Frontier
from ..log.hashing import EMPTY_ROOT, leaf_hash
from ..records import AccessRecord, LeafError
from .errors import AuditFailure
from .keychain import KeyChain
from .state import TrustedState


@dataclass(frozen=True, slots=True)
class AuditReport:
    """What a passing verification established."""

    source: str
    origin: str
    size: int
    root_hash: bytes
    checkpoint: str  # the latest signed note
    checkpoints_verified: int
    unsequenced: int | None  # records not yet integrated (database mode only)
    previous: TrustedState | None
    witnessed_by: tuple[str, ...] = ()  # witnesses whose cosignatures were verified
    witnessed_size: int | None = None  # the checkpoint they cosigned (None: the latest)
    # signed inquiries the records keep: checked against the agencies' certificates, or
    # left unchecked (no certificates given)
    inquiries_checked: int = 0
    inquiries_unchecked: int = 0

    @property
    def state(self) -> TrustedState:
        return TrustedState(self.origin, self.size, self.root_hash, self.checkpoint)

    def summary(self) -> str:
        """The one-line summary printed on success."""
        parts = [
            f"OK: {self.source}: log {self.origin}, {self.size} leaves, "
            f"{self.checkpoints_verified} checkpoint(s) verified, "
            f"root {base64.b64encode(self.root_hash).decode('ascii')}",
        ]
        if self.inquiries_checked:
            parts.append(f"{self.inquiries_checked} signed inquiries verified")
        if self.inquiries_unchecked:
            parts.append(f"{self.inquiries_unchecked} signed inquiries NOT checked (no agency "
                         "certificates given: --agency-certs)")
        if self.unsequenced:
            parts.append(f"{self.unsequenced} record(s) not yet integrated")
        if self.witnessed_by:
            which = ("" if self.witnessed_size in (None, self.size)
                     else f"checkpoint {self.witnessed_size} ")
            parts.append(f"{which}cosigned by {len(self.witnessed_by)} witness(es): "
                         f"{', '.join(self.witnessed_by)}")
        if self.previous is None:
            parts.append("no earlier checkpoint to compare with")
        else:
            parts.append(f"extends the checkpoint of size {self.previous.size} verified before")
        return "; ".join(parts)


def fail(message: str) -> AuditFailure:
    return AuditFailure(message)


def leaf_hash_of(index: int, leaf: object) -> bytes:
    if not isinstance(leaf, bytes):
        raise fail(f"leaf {index}: stored as {type(leaf).__name__}, not bytes")
    return leaf_hash(leaf)


def decode_leaf(index: int, leaf: bytes) -> AccessRecord:
    """Check one leaf is a canonical access record and return it decoded.

    ``AccessRecord.decode`` accepts only the canonical encoding (exact lengths,
    strict UTF-8, no trailing bytes, sorted distinct providers), so a leaf that
    decodes is the encoding of its record; no re-encoding is needed.
    """
    try:
        return AccessRecord.decode(leaf)
    except LeafError as exc:
        raise fail(f"leaf {index}: not a canonical access record ({exc})") from None


class Inquiries:
    """Checks every signed inquiry a record keeps (docs/SIGNED_INQUIRIES.md) against the
    requester's certificate keys (``inquiry.agency_keys``); None: count them unchecked."""

    def __init__(self, keys: Mapping[str, Sequence[inquiry.VerifyKey]] | None) -> None:
        self.keys = keys
        self.checked = 0
        self.unchecked = 0

    def check(self, index: int, record: AccessRecord) -> None:
        try:
            found = inquiry.from_record(record)
        except ValueError as exc:
            raise fail(f"leaf {index}: {exc}") from None
        if found is None:
            return
        if self.keys is None:
            self.unchecked += 1
            return
        keys = self.keys.get(record.requester)
        if not keys:
            raise fail(f"leaf {index}: no certificate of agency {record.requester!r} to check "
                       "its signed inquiry")
        if not inquiry.verify(keys, *found):
            raise fail(f"leaf {index}: the signed inquiry does not verify against agency "
                       f"{record.requester!r}'s certificate")
        self.checked += 1


def note_label(note: object) -> str:
    """``checkpoint N`` from a note's (unverified) size line, for messages only."""
    if isinstance(note, str):
        split = note.rfind("\n\n")
        try:
            return f"checkpoint {parse_checkpoint_body(note[: split + 1]).size}"
        except CheckpointError:
            pass
    return "checkpoint"


def verify_note(label: str, note: object, vkey: KeyChain, origin: str) -> Checkpoint:
    """Verify the next checkpoint in log order against the key chain (keychain.py)."""
    if not isinstance(note, str):
        raise fail(f"{label}: note is not text")
    try:
        return vkey.verify(note, origin)
    except NoteError as exc:
        raise fail(f"{label}: bad signature ({exc})") from None
    except CheckpointError as exc:
        raise fail(f"{label}: {exc}") from None


def check_previous_size(previous: TrustedState | None, latest: Checkpoint) -> None:
    if previous is not None and latest.size < previous.size:
        raise fail(f"rolled back: the latest checkpoint has size {latest.size}, smaller than "
                    f"the checkpoint of size {previous.size} verified before")


def check_previous_root(previous: TrustedState | None, root_at_previous: bytes | None) -> None:
    if previous is None:
        return
    if root_at_previous is None or not hmac.compare_digest(root_at_previous,
                                                           previous.root_hash):
        raise fail(f"rolled back: the first {previous.size} leaves do not have the root hash "
                    f"of the checkpoint of size {previous.size} verified before")


class Tree:
    """The recomputed tree: a frontier plus the root at the previously verified size."""

    def __init__(self, previous: TrustedState | None) -> None:
        self.frontier = Frontier()
        self.previous = previous
        self.root_at_previous: bytes | None = (
            EMPTY_ROOT if previous is not None and previous.size == 0 else None)

    @property
    def size(self) -> int:
        return self.frontier.size

    def append(self, lh: bytes) -> list[tuple[int, int, bytes]]:
        nodes = self.frontier.append(lh)
        if self.previous is not None and self.frontier.size == self.previous.size:
            self.root_at_previous = self.frontier.root()
        return nodes
