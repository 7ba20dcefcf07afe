"""``add-checkpoint`` (c2sp.org/tlog-witness), without HTTP: parse, check, cosign.

:func:`add_checkpoint` turns a request body into an :class:`Answer` (status code,
body, content type) exactly as the spec orders the checks: 400 malformed, 404 unknown
origin, 403 no valid signature by a trusted log key, 400 old size above the
checkpoint's, 409 old size not the one last cosigned (body: that size), 409 same size
but another root (a fork), 422 consistency proof fails (a fork or a rewritten
history), else 200 with the cosignature line, after the new state is committed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..log.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteError,
    VerifierKey,
    parse_checkpoint_body,
    verify_note,
)
from ..log.cosignature import cosign, split_note
from ..log.errors import ProofError
from ..log.hashing import EMPTY_ROOT
from ..log.verification import verify_consistency
from .config import WitnessConfig
from .state import Known, WitnessState

log = logging.getLogger("symbolsvc.witness")

MAX_PROOF_LINES = 63
SIZE_TYPE = "text/x.tlog.size"
TEXT_TYPE = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: str
    content_type: str = TEXT_TYPE


class _Refused(Exception):
    def __init__(self, answer: Answer) -> None:
        self.answer = answer


def _bad(message: str) -> _Refused:
    return _Refused(Answer(400, message + "\n"))


@dataclass(frozen=True, slots=True)
class Request:
    old_size: int
    proof: list[bytes]
    note: str
    text: str  # the note's body (what the log signed and the witness cosigns)
    checkpoint: Checkpoint


def parse_request(body: bytes) -> Request:
    """Parse an add-checkpoint body strictly; raise :class:`_Refused` (400)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("request is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise _bad("request needs an empty line before the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    digits = first[4:]
    if (not first.startswith("old ") or not digits.isascii() or not digits.isdigit()
            or (digits != "0" and digits.startswith("0")) or len(digits) > 20):
        raise _bad("first line must be 'old <size>' in decimal without leading zeroes")
    proof_lines = lines[1:]
    if len(proof_lines) > MAX_PROOF_LINES:
        raise _bad(f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in proof_lines:
        try:
            h = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise _bad("a consistency proof line is not base64") from None
        if len(h) != 32:
            raise _bad("a consistency proof line is not a 32-byte hash")
        proof.append(h)
    try:
        note_text, _ = split_note(note)
        checkpoint = parse_checkpoint_body(note_text)
    except (NoteError, CheckpointError) as exc:
        raise _bad(f"malformed checkpoint: {exc}") from None
    return Request(int(digits), proof, note, note_text, checkpoint)


class Witness:
    """The witness's behaviour over its config and state; ``clock`` is POSIX seconds."""

    def __init__(self, config: WitnessConfig, state: WitnessState,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.state = state
        self.clock = clock

    def add_checkpoint(self, body: bytes) -> Answer:
        try:
            return self._add(body)
        except _Refused as refused:
            return refused.answer

    def _add(self, body: bytes) -> Answer:
        req = parse_request(body)
        cp = req.checkpoint
        keys = self.config.logs.get(cp.origin)
        if keys is None:
            raise _Refused(Answer(404, "unknown log origin\n"))
        if not any(_signed(req.note, key) for key in keys):
            raise _Refused(Answer(403, "no valid signature by a trusted key of this log\n"))
        if req.old_size > cp.size:
            raise _bad("old size is larger than the checkpoint's size")
        if req.old_size == 0 and req.proof:
            raise _bad("the consistency proof must be empty when the old size is 0")
        refusal: list[Answer] = []

        def decide(known: Known) -> tuple[int, bytes, str] | None:
            if req.old_size != known.size:
                refusal.append(Answer(409, f"{known.size}\n", SIZE_TYPE))
                return None
            old_root = known.root_hash if known.root_hash is not None else EMPTY_ROOT
            if req.old_size == cp.size:
                if not hmac.compare_digest(old_root, cp.root_hash):
                    refusal.append(Answer(409, "a checkpoint of this size with another root "
                                          "hash was cosigned: the log has forked\n"))
                    return None
            elif req.old_size > 0:
                try:
                    verify_consistency(req.old_size, cp.size, req.proof, old_root,
                                       cp.root_hash)
                except ProofError as exc:
                    refusal.append(Answer(422, f"not consistent with the checkpoint of size "
                                          f"{known.size} cosigned before: {exc}\n"))
                    return None
            return cp.size, cp.root_hash, req.note

        self.state.advance(cp.origin, decide)
        if refusal:
            answer = refusal[0]
            if answer.content_type != SIZE_TYPE:
                log.warning("refused a checkpoint of %s (size %d, old size %d): %s",
                            cp.origin, cp.size, req.old_size, answer.body.strip())
                self.state.record_refusal(cp.origin, req.old_size, answer.body.strip(),
                                          body.decode("utf-8"))
            return answer
        line = cosign(req.text, self.config.name, self.config.private_key, int(self.clock()))
        return Answer(200, line)


def _signed(note: str, key: VerifierKey) -> bool:
    try:
        verify_note(note, key)
    except NoteError:
        return False
    return True
