"""Verifying through the AuditService, as the auditor: ``GetCheckpoint``, ``ListEntries``
page by page, and ``GetConsistencyProof`` from the checkpoint verified last time."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from ..inquiry import VerifyKey
from ..log.checkpoint import VerifierKey
from ..log.errors import ProofError
from ..log.verification import verify_consistency
from .common import (
    AuditReport,
    Inquiries,
    Tree,
    check_previous_root,
    check_previous_size,
    decode_leaf,
    fail,
    leaf_hash_of,
    note_label,
    verify_note,
)
from .errors import AuditError
from .keychain import KeyChain
from .policies import PolicyLedger
from .state import TrustedState
from .witnesses import WitnessPolicy

__all__ = ["AuditSource", "verify_remote"]


class AuditSource(Protocol):
    """What :func:`verify_remote` needs: the AuditService calls of ``AuditorClient``."""

    def checkpoint(self) -> str: ...

    def consistency_proof(self, first_size: int, second_size: int) -> list[bytes]: ...

    def entries(self, start: int, end: int) -> Sequence[Any]: ...  # items: .index, .leaf


def verify_remote(
    client: AuditSource,
    vkey: KeyChain | VerifierKey,
    *,
    origin: str | None = None,
    previous: TrustedState | None = None,
    source: str = "AuditService",
    witnesses: WitnessPolicy | None = None,
    agency_keys: Mapping[str, Sequence[VerifyKey]] | None = None,
) -> AuditReport:
    """Verify the log served by an AuditService; raise on the first problem.

    Takes the latest checkpoint, checks it is consistent with ``previous`` (a
    consistency proof, then again from the leaves themselves), downloads every
    leaf of that checkpoint page by page and recomputes its root.
    """
    from symbolsvc_client.clients import CallError

    vkey = KeyChain.of(vkey)
    origin = origin or vkey.name
    try:
        inquiries = Inquiries(agency_keys)
        report = _verify_remote(client, vkey, origin, previous, source, witnesses, inquiries)
        return replace(report, inquiries_checked=inquiries.checked,
                       inquiries_unchecked=inquiries.unchecked)
    except CallError as exc:  # the service did not answer: nothing was verified
        raise AuditError(f"{source}: {exc}") from None


def _verify_remote(client: AuditSource, vkey: KeyChain, origin: str,
                   previous: TrustedState | None, source: str,
                   witnesses: WitnessPolicy | None, inquiries: Inquiries) -> AuditReport:
    if witnesses is None:
        note = client.checkpoint()
    else:
        note = client.checkpoint(min_cosignatures=witnesses.quorum)  # type: ignore[call-arg]
    if previous is not None:
        vkey.resume_from(previous.checkpoint)
    latest = verify_note(note_label(note), note, vkey, origin)
    cosigned = [] if witnesses is None else witnesses.check(note_label(note), note)
    label = f"checkpoint {latest.size}"
    check_previous_size(previous, latest)
    if previous is not None and 0 < previous.size:
        if previous.size == latest.size:
            if not hmac.compare_digest(previous.root_hash, latest.root_hash):
                raise fail(f"rolled back: {label} has a different root hash from the "
                            "checkpoint of the same size verified before")
        else:
            proof = client.consistency_proof(previous.size, latest.size)
            try:
                verify_consistency(previous.size, latest.size, list(proof),
                                   previous.root_hash, latest.root_hash)
            except ProofError as exc:
                raise fail(f"rolled back: {label} is not consistent with the checkpoint of "
                            f"size {previous.size} verified before ({exc})") from None

    tree = Tree(previous)
    policies = PolicyLedger()
    while tree.size < latest.size:
        page = client.entries(tree.size, latest.size)
        if not page:
            raise fail(f"leaf {tree.size} missing")
        for entry in page:
            expected = tree.size
            index = entry.index
            if index != expected:
                if index >= latest.size:
                    raise fail(f"leaf {index}: beyond the latest checkpoint "
                                f"(size {latest.size})")
                if index > expected:
                    raise fail(f"leaf {expected} missing")
                raise fail(f"leaf {index}: returned twice or out of order")
            if index >= latest.size:
                raise fail(f"leaf {index}: beyond the latest checkpoint (size {latest.size})")
            leaf = entry.leaf
            tree.append(leaf_hash_of(index, leaf))
            record = decode_leaf(index, leaf)
            policies.check(index, record)
            inquiries.check(index, record)
    if not hmac.compare_digest(tree.frontier.root(), latest.root_hash):
        raise fail(f"{label}: root hash does not match the first {latest.size} leaves")
    check_previous_root(previous, tree.root_at_previous)
    return AuditReport(source, latest.origin, latest.size, latest.root_hash, note, 1, None,
                       previous, tuple(sorted(c.name for c in cosigned)))
