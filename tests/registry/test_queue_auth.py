"""Authenticated queued records on every backend (docs/QUEUE_AUTH.md): a row written past
the service into the queue of unintegrated records — forged, altered, copied or moved — is
never integrated: the sequencer quarantines it (kept aside, not deleted) and integrates
the rest. Someone with database write access is played by tests/helpers/registry.tamper.
"""

from __future__ import annotations

import asyncio
import os

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers.registry import tamper
from memory_tree import MemoryTree

from registry.store_target import Target
from symbolsvc.log.checkpoint import verify_checkpoint, vkey_string
from symbolsvc.log.hashing import leaf_hash
from symbolsvc.log.integrate import planner
from symbolsvc.log.queue_auth import BAD_MAC, MALFORMED, NO_MAC, QueueAuthenticator
from symbolsvc.log.sequencer import checkpoint_signer
from symbolsvc.registry import ExchangeTag, NewRecord, Registry

ORIGIN = "test.local/log"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
VKEY = vkey_string(ORIGIN, KEY.public_key())
AUTH = QueueAuthenticator(bytes(range(100, 132)))
PLAN = planner(checkpoint_signer(ORIGIN, KEY), AUTH)


def _open(target: Target) -> Registry:
    reg = target.open()
    reg.queue_auth.mac = AUTH.mac  # as the server sets it
    return reg


def _records(start: int, n: int) -> list[NewRecord]:
    return [NewRecord(b"leaf-%d" % i, bytes([i]) * 32, b"sealed-%d" % i)
            for i in range(start, start + n)]


def _write(target: Target, sql: str, *params: object) -> int:
    return tamper(target.url, target.base, sql, params)


def _quarantined(target: Target) -> list[tuple[int, bytes, str]]:
    return [(int(i), bytes(leaf), str(reason)) for i, leaf, reason in target.query(
        "SELECT id, leaf, reason FROM quarantined_records ORDER BY qid")]


def _integrate_and_check(target: Target, reg: Registry, aio: asyncio.Runner,
                         legit: list[bytes], quarantined: int) -> None:
    """One integration: exactly ``legit`` leaves enter the tree, in order, and the
    checkpoint's root is theirs; ``quarantined`` rows were set aside."""
    async def step() -> None:
        result = await reg.integrate(1000, "seq", 60_000, PLAN)
        assert (result.integrated, result.quarantined) == (len(legit), quarantined)
        tree = MemoryTree()
        for leaf in legit:
            tree.append(leaf_hash(leaf))
        assert verify_checkpoint(result.checkpoint or "", VKEY, ORIGIN).root_hash == tree.root()
        assert [leaf for _, leaf in await reg.entries(0, 1000)] == legit
        assert target.query("SELECT COUNT(*) FROM access_records WHERE leaf_index IS NULL") \
            == [(0,)]
        assert (await reg.log_status()).quarantined == quarantined  # none reviewed yet

    aio.run(step())


def test_rows_are_tagged_and_verify(target: Target, aio: asyncio.Runner) -> None:
    reg = _open(target)
    ids = aio.run(reg.append_records(_records(0, 3)))
    rows = target.query("SELECT id, leaf, pseudonym, sealed_subject, mac FROM access_records "
                        "ORDER BY id")
    assert [r[0] for r in rows] == ids
    assert all(AUTH.check((int(i), bytes(a), bytes(b), bytes(c), bytes(m))) is None
               for i, a, b, c, m in rows)
    assert all(len(bytes(r[4])) == 32 for r in rows)
    aio.run(reg.close())


def test_forged_queued_row_is_quarantined(target: Target, aio: asyncio.Runner) -> None:
    reg = _open(target)
    legit = _records(0, 2)
    aio.run(reg.append_records(legit))
    # an insert with no tag, and one with a made-up tag, as someone with write access would
    _write(target, "INSERT INTO access_records (id, pseudonym, sealed_subject, leaf) "
                   "VALUES (?, ?, ?, ?)", 900, bytes(32), b"x", b"forged-no-tag")
    _write(target, "INSERT INTO access_records (id, pseudonym, sealed_subject, leaf, mac) "
                   "VALUES (?, ?, ?, ?, ?)", 901, bytes(32), b"x", b"forged-tag", os.urandom(32))
    # a leaf written as text (SQLite keeps it TEXT; PostgreSQL casts it to bytea)
    _write(target, "INSERT INTO access_records (id, pseudonym, sealed_subject, leaf, mac) "
                   "VALUES (?, ?, ?, ?, ?)", 902, bytes(32), b"x", "text-leaf", os.urandom(32))
    more = _records(2, 1)
    aio.run(reg.append_records(more))
    _integrate_and_check(target, reg, aio, [r.leaf for r in legit + more], 3)
    rows = target.query("SELECT id, reason FROM quarantined_records ORDER BY qid")
    assert rows[:2] == [(900, NO_MAC), (901, BAD_MAC)]
    assert rows[2][0] == 902 and rows[2][1] in (MALFORMED, BAD_MAC)
    aio.run(reg.close())


def test_altered_queued_row_is_quarantined(target: Target, aio: asyncio.Runner) -> None:
    reg = _open(target)
    recs = _records(0, 4)
    ids = aio.run(reg.append_records(recs))
    _write(target, "UPDATE access_records SET leaf = ? WHERE id = ?", b"leaf-altered", ids[1])
    _write(target, "UPDATE access_records SET sealed_subject = ? WHERE id = ?", b"other",
           ids[2])
    _integrate_and_check(target, reg, aio, [recs[0].leaf, recs[3].leaf], 2)
    assert _quarantined(target) == [(ids[1], b"leaf-altered", BAD_MAC),
                                    (ids[2], recs[2].leaf, BAD_MAC)]
    aio.run(reg.close())


def test_queued_row_with_edited_exchange_columns_is_quarantined(
        target: Target, aio: asyncio.Runner) -> None:
    """The tag covers exchange_key and exchange_digest (docs/EXCHANGES.md): edited, they
    would let a replay be answered from another record, or free a taken exchange id."""
    reg = _open(target)
    recs = [NewRecord(r.leaf, r.pseudonym, r.sealed_subject,
                      exchange=ExchangeTag(b"key-%d" % i, b"digest-%d" % i))
            for i, r in enumerate(_records(0, 4))]
    ids = aio.run(reg.append_records(recs))
    _write(target, "UPDATE access_records SET exchange_digest = ? WHERE id = ?", b"other",
           ids[1])
    _write(target, "UPDATE access_records SET exchange_key = NULL, exchange_digest = NULL "
                   "WHERE id = ?", ids[2])
    _integrate_and_check(target, reg, aio, [recs[0].leaf, recs[3].leaf], 2)
    assert _quarantined(target) == [(ids[1], recs[1].leaf, BAD_MAC),
                                    (ids[2], recs[2].leaf, BAD_MAC)]
    aio.run(reg.close())


def test_duplicated_or_moved_queued_row_is_quarantined(target: Target,
                                                       aio: asyncio.Runner) -> None:
    reg = _open(target)
    recs = _records(0, 4)
    ids = aio.run(reg.append_records(recs))
    # a copy of a genuine row, tag and all, under a new id (a duplicate, or a replay)
    _write(target, "INSERT INTO access_records (id, pseudonym, sealed_subject, leaf, mac) "
                   "SELECT ?, pseudonym, sealed_subject, leaf, mac FROM access_records "
                   "WHERE id = ?", 950, ids[0])
    # two genuine rows' contents swapped (a reorder): the tags cover the ids
    for src, dst in ((ids[2], -1), (ids[3], ids[2]), (-1, ids[3])):
        _write(target, "UPDATE access_records SET id = ? WHERE id = ?", dst, src)
    _integrate_and_check(target, reg, aio, [recs[0].leaf, recs[1].leaf], 3)
    assert sorted(_quarantined(target)) == sorted([
        (ids[2], recs[3].leaf, BAD_MAC), (ids[3], recs[2].leaf, BAD_MAC),
        (950, recs[0].leaf, BAD_MAC)])
    # a quarantined row put back (a replay of what was set aside) is set aside again
    _write(target, "INSERT INTO access_records (id, pseudonym, sealed_subject, leaf, mac) "
                   "SELECT id, pseudonym, sealed_subject, leaf, mac FROM quarantined_records "
                   "WHERE id = ?", 950)
    result = aio.run(reg.integrate(1000, "seq", 60_000, PLAN))
    assert (result.integrated, result.quarantined, result.tree_size) == (0, 1, 2)
    aio.run(reg.close())


def test_leaf_found_by_hash(target: Target, aio: asyncio.Runner) -> None:
    reg = _open(target)
    recs = _records(0, 5)
    aio.run(reg.append_records(recs))
    aio.run(reg.integrate(1000, "seq", 60_000, PLAN))
    assert aio.run(reg.leaf_index_by_hash(leaf_hash(recs[3].leaf), 5)) == 3
    assert aio.run(reg.leaf_index_by_hash(leaf_hash(recs[3].leaf), 3)) is None  # beyond size
    assert aio.run(reg.leaf_index_by_hash(leaf_hash(b"absent"), 5)) is None
    aio.run(reg.close())
