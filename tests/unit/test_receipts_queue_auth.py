"""Receipts, queued-record tags and the merge-delay watch, in process (docs/QUEUE_AUTH.md).

Receipts are read back with the independent verifier of tests/helpers/receipts.py (C2SP
signed-note text alone, no production code); the watch runs on an injected clock.
"""

from __future__ import annotations

import asyncio
import base64
import logging

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers.notes import Rejected
from helpers.receipts import independent_receipt

from symbolsvc.log.checkpoint import vkey_string
from symbolsvc.log.hashing import leaf_hash
from symbolsvc.log.integrate import plan_integration
from symbolsvc.log.merge_delay import LogWatch
from symbolsvc.log.queue_auth import BAD_MAC, MALFORMED, NO_MAC, QueueAuthenticator
from symbolsvc.log.receipts import ReceiptSigner
from symbolsvc.registry import ExchangeTag, Integration, IntegrationInput, LogStatus, NewRecord
from symbolsvc.verify.keychain import KeyChain, parse_vkeys
from symbolsvc.verify.receipts import parse_receipt, split_receipts

ORIGIN = "test.local/access-log"
OLD, NEW = (Ed25519PrivateKey.from_private_bytes(bytes([k]) * 32) for k in (1, 2))
VKEY_OLD, VKEY_NEW = (vkey_string(ORIGIN, k.public_key()) for k in (OLD, NEW))
AUTH = QueueAuthenticator(bytes(range(32)))


def test_receipt_format_read_by_the_independent_verifier() -> None:
    signer = ReceiptSigner(ORIGIN, OLD, 10.0, clock=lambda: 1_765_000_000.25)
    h = leaf_hash(b"a record")
    note = signer.sign(h)
    r = independent_receipt(note, VKEY_OLD)
    assert (r.origin, r.leaf_hash, r.integrate_by) == (ORIGIN, h, 1_765_000_011)  # rounded up
    assert note.splitlines()[:4] == [ORIGIN, "receipt", base64.b64encode(h).decode(),
                                     "2025-12-06T05:46:51Z"]
    with pytest.raises(Rejected):
        independent_receipt(note, VKEY_NEW)  # another key's: no signature by it
    with pytest.raises(Rejected):
        independent_receipt(note.replace("receipt", "receipts", 1), VKEY_OLD)


def test_receipt_during_a_log_key_rotation_carries_both_signatures() -> None:
    note = ReceiptSigner(ORIGIN, [OLD, NEW], 10.0).sign(bytes(32))
    assert independent_receipt(note, VKEY_OLD) == independent_receipt(note, VKEY_NEW)
    keys = KeyChain(parse_vkeys(f"{VKEY_OLD}\n{VKEY_NEW}"))
    assert parse_receipt(note, keys, ORIGIN).leaf_hash == bytes(32)


def test_receipts_signed_off_the_event_loop_are_the_same_notes() -> None:
    """sign_many signs on the signer's thread (the server's path): the same notes as
    sign, in order, each read by the independent verifier."""
    signer = ReceiptSigner(ORIGIN, OLD, 10.0, clock=lambda: 1_765_000_000.25)
    hashes = [leaf_hash(b"record %d" % i) for i in range(5)]
    notes = asyncio.run(signer.sign_many(hashes))
    assert notes == [signer.sign(h) for h in hashes]  # Ed25519 is deterministic
    assert [independent_receipt(n, VKEY_OLD).leaf_hash for n in notes] == hashes


def test_receipts_file_is_split_at_blank_lines_between_notes() -> None:
    signer = ReceiptSigner(ORIGIN, OLD, 10.0)
    notes = [signer.sign(bytes([i]) * 32) for i in range(3)]
    for text in ("\n".join(notes), "\n\n\n".join(notes), "".join(notes)):
        assert split_receipts(text) == notes
    keys = KeyChain(parse_vkeys(VKEY_OLD))
    assert [parse_receipt(n, keys, ORIGIN).leaf_hash[0] for n in notes] == [0, 1, 2]


def test_tag_covers_the_id_and_every_byte_of_the_row() -> None:
    rec = NewRecord(b"leaf", b"p" * 32, b"sealed")
    tag = AUTH.mac(7, rec)
    row = (7, rec.leaf, rec.pseudonym, rec.sealed_subject, tag)
    assert AUTH.check(row) is None
    for bad in ((8, *row[1:]), (7, b"leaf!", *row[2:]), (7, rec.leaf, b"q" * 32, *row[3:]),
                (*row[:3], b"other", tag), (*row[:4], bytes(32))):
        assert AUTH.check(bad) == BAD_MAC
    assert AUTH.check((*row[:4], None)) == NO_MAC
    assert AUTH.check((7, b"leaf")) == NO_MAC
    assert AUTH.check((7, "leaf", *row[2:])) == MALFORMED  # SQLite: a TEXT in a BLOB column
    assert QueueAuthenticator(bytes(range(1, 33))).check(row) == BAD_MAC  # another key


def test_tag_of_an_exchange_covers_its_exchange_key_and_digest() -> None:
    rec = NewRecord(b"leaf", b"p" * 32, b"sealed", exchange=ExchangeTag(b"k" * 32, b"d" * 32))
    row = (7, rec.leaf, rec.pseudonym, rec.sealed_subject, AUTH.mac(7, rec), b"k" * 32,
           b"d" * 32)
    assert AUTH.check(row) is None
    for bad in ((*row[:5], b"K" * 32, row[6]), (*row[:6], b"D" * 32),  # edited
                (*row[:5], None, None), (*row[:5], row[6], row[5])):  # removed, swapped
        assert AUTH.check(bad) == BAD_MAC
    assert AUTH.check((*row[:6], None)) == MALFORMED  # half an exchange
    plain = NewRecord(b"leaf", b"p" * 32, b"sealed")
    tagged = (7, plain.leaf, plain.pseudonym, plain.sealed_subject, AUTH.mac(7, plain))
    assert AUTH.check((*tagged, None, None)) is None  # a row of no exchange: as before
    assert AUTH.check((*tagged, b"k" * 32, b"d" * 32)) == BAD_MAC  # an exchange added


def test_planner_quarantines_rows_that_fail_and_integrates_the_rest() -> None:
    good = [(i, b"leaf-%d" % i, bytes(32), b"s") for i in (1, 2, 3)]
    rows = [(*r, AUTH.mac(r[0], NewRecord(r[1], r[2], r[3]))) for r in good]
    rows[1] = (*rows[1][:4], bytes(32))  # a made-up tag
    plan = plan_integration(IntegrationInput(None, None, [*rows, (9, b"bare")]),
                            lambda n, root: f"cp {n}", AUTH)
    assert plan.assign == [(0, 1), (1, 3)] and plan.tree_size == 2
    assert plan.quarantine == [(2, BAD_MAC), (9, NO_MAC)]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _status(size: int, oldest: float | None, holder: str | None = None,
            expires: float = 0, quarantined: int = 0) -> LogStatus:
    return LogStatus(size, holder, int(expires * 1e6),
                     None if oldest is None else int(oldest * 1e6), quarantined)


def test_watch_reports_lag_beyond_the_delay_and_a_parked_lease(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    watch = LogWatch(2.0, 1000, clock=clock)
    caplog.set_level(logging.INFO, "symbolsvc.security")
    watch.observe(_status(5, 999.5), "me")
    assert watch.broker_serving and watch.log_serving and watch.lag == pytest.approx(0.5)
    clock.now = 1003.0  # the lease was parked by "123456789012-x" and nothing integrates
    watch.observe(_status(5, 999.5, "123456789012-x", 9e9), "me")
    assert not watch.broker_serving and not watch.log_serving
    events = [r.__dict__.get("event") for r in caplog.records]
    assert events == ["merge_delay_exceeded", "sequencer_lease_stalled"]
    assert "123456789012" not in caplog.text  # the holder is attacker-written: masked
    clock.now = 1004.0
    watch.observe(_status(5, 999.5, "123456789012-x", 9e9), "me")  # reported once
    assert len(caplog.records) == 2
    watch.observe(_status(9, None, "me", 9e9), "me")  # integrated: back to normal
    assert watch.broker_serving and watch.log_serving and watch.lag == 0
    assert [r.__dict__.get("event") for r in caplog.records][2:] == [
        "merge_delay_restored", "sequencer_lease_resumed"]


def test_watch_lag_cannot_be_hidden_by_editing_queued_us() -> None:
    clock = Clock()
    watch = LogWatch(2.0, 1000, clock=clock)
    watch.observe(_status(5, 2e9), "me")  # a queued_us far in the future
    clock.now += 3
    watch.observe(_status(5, 2e9), "me")  # the tree did not grow meanwhile
    assert watch.lag == pytest.approx(3) and not watch.broker_serving


def test_watch_degrades_the_log_while_quarantined_rows_are_unreviewed(
        caplog: pytest.LogCaptureFixture) -> None:
    watch = LogWatch(2.0, 1000, clock=Clock())
    caplog.set_level(logging.INFO, "symbolsvc.security")
    watch.integrated(Integration(True, 3, 3, "cp", quarantined=2))
    assert [r.__dict__.get("count") for r in caplog.records] == [2]
    watch.observe(_status(3, None, quarantined=2), "me")
    assert watch.broker_serving and not watch.log_serving
    watch.observe(_status(3, None), "me")  # reviewed
    assert watch.log_serving
