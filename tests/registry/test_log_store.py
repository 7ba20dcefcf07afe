"""The log store and the sequencer on every backend: atomic integration, the lease, a
backlog, restart, racing sequencers.

No network: a registry opened through the backend seam (the ``target`` fixture runs each
test on SQLite and on PostgreSQL), a Sequencer, and the pure tree code as the reference.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
import sys
import textwrap

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from memory_tree import MemoryTree

from registry.store_target import Target
from symbolsvc.log.checkpoint import verify_checkpoint, vkey_string
from symbolsvc.log.hashing import leaf_hash, root_from_leaf_hashes
from symbolsvc.log.integrate import planner
from symbolsvc.log.proofs import consistency_proof, inclusion_proof
from symbolsvc.log.sequencer import LogNotifier, Sequencer, checkpoint_signer
from symbolsvc.log.verification import verify_consistency, verify_inclusion
from symbolsvc.registry import NewRecord, Registry

ORIGIN = "test.local/log"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
VKEY = vkey_string(ORIGIN, KEY.public_key())
SIGN = checkpoint_signer(ORIGIN, KEY)


def _records(start: int, n: int) -> list[NewRecord]:
    return [NewRecord(b"leaf-%d" % i, bytes(32), b"sealed") for i in range(start, start + n)]


def _db_state(target: Target) -> tuple[int, ...]:
    (row,) = target.query(
        "SELECT (SELECT COUNT(*) FROM access_records WHERE leaf_index IS NOT NULL), "
        "(SELECT COUNT(*) FROM tree_nodes), "
        "(SELECT COALESCE(MAX(tree_size), -1) FROM log_state), "
        "(SELECT COALESCE(MAX(tree_size), -1) FROM checkpoints)")
    return tuple(int(v) for v in row)


def test_failed_integration_leaves_nothing_behind(target: Target, aio: asyncio.Runner) -> None:
    async def body() -> None:
        reg = target.open()
        await reg.append_records(_records(0, 10))
        first = await reg.integrate(100, "me", 5000, planner(SIGN))
        assert (first.leader, first.integrated, first.tree_size) == (True, 10, 10)
        await reg.append_records(_records(10, 7))
        before = _db_state(target)

        def failing_sign(size: int, root: bytes) -> str:
            raise RuntimeError("signer died after the nodes were written")

        with pytest.raises(RuntimeError):
            await reg.integrate(100, "me", 5000, planner(failing_sign))
        assert _db_state(target) == before  # all or nothing
        second = await reg.integrate(100, "me", 5000, planner(SIGN))
        assert (second.integrated, second.tree_size) == (7, 17)
        tree = MemoryTree()
        for i in range(17):
            tree.append(leaf_hash(b"leaf-%d" % i))
        cp = verify_checkpoint(second.checkpoint or "", VKEY, ORIGIN)
        assert cp.root_hash == tree.root()
        nodes = await reg.get_nodes([(0, 3), (1, 0), (4, 0)])
        assert nodes == tree.get_nodes([(0, 3), (1, 0), (4, 0)])
        await reg.close()

    aio.run(body())


_CHILD = textwrap.dedent("""
    import asyncio, os, sys
    from pathlib import Path
    from symbolsvc.log.integrate import planner
    from symbolsvc.registry import NewRecord
    from symbolsvc.registry.backends import open_registry

    def die(size, root):  # the process dies inside the integration transaction
        os._exit(9)

    async def main():
        reg = open_registry(sys.argv[1], Path(sys.argv[2]))
        await reg.append_records([NewRecord(b"leaf-%d" % i, bytes(32), b"s") for i in range(50)])
        await reg.integrate(1000, "child", 60000, planner(die))

    asyncio.run(main())
""")


def test_kill_inside_the_integration_transaction(target: Target, aio: asyncio.Runner) -> None:
    async def seed() -> str:
        reg = target.open()
        await reg.append_records(_records(0, 20))
        result = await reg.integrate(1000, "seed", 1, planner(SIGN))
        await reg.release_lease("seed")
        await reg.close()
        return result.checkpoint or ""

    first_note = aio.run(seed())
    proc = subprocess.run([sys.executable, "-c", _CHILD, target.url, str(target.base)],
                          check=False, timeout=60)
    assert proc.returncode == 9
    assert _db_state(target) == (20, 38, 20, 20)  # the killed integration left no trace

    async def recover() -> None:
        reg = target.open()
        # the child's lease was taken in the same, rolled-back transaction
        assert (await reg.log_status()).lease_holder == "seed"
        result = await reg.integrate(1000, "next", 5000, planner(SIGN))
        assert (result.leader, result.integrated, result.tree_size) == (True, 50, 70)
        a = verify_checkpoint(first_note, VKEY, ORIGIN)
        b = verify_checkpoint(result.checkpoint or "", VKEY, ORIGIN)

        ids = [(level, idx) for level in range(8) for idx in range(70 >> level)]
        hashes = await reg.get_nodes(ids)
        tree = MemoryTree()
        for i, h in enumerate(hashes[:70]):
            tree.append(h)
            assert h == leaf_hash(b"leaf-%d" % (i if i < 20 else i - 20))
        assert tree.root() == b.root_hash
        verify_consistency(20, 70, consistency_proof(20, 70, tree), a.root_hash, b.root_hash)
        verify_inclusion(hashes[25], 25, 70, inclusion_proof(25, 70, tree), b.root_hash)
        await reg.close()

    aio.run(recover())


def test_lease_one_holder_at_a_time(target: Target, aio: asyncio.Runner) -> None:
    async def body() -> None:
        reg = target.open()
        await reg.append_records(_records(0, 3))
        a = await reg.integrate(10, "a", 60_000, planner(SIGN))
        b = await reg.integrate(10, "b", 60_000, planner(SIGN))
        assert a.leader and not b.leader and b.integrated == 0 and b.tree_size == 3
        status = await reg.log_status()
        assert status.lease_holder == "a" and status.tree_size == 3
        await reg.release_lease("b")  # not b's to release: no effect
        assert not (await reg.integrate(10, "b", 60_000, planner(SIGN))).leader
        await reg.release_lease("a")
        await reg.append_records(_records(3, 2))
        b = await reg.integrate(10, "b", 60_000, planner(SIGN))
        assert b.leader and b.integrated == 2 and b.tree_size == 5
        assert not (await reg.integrate(10, "a", 60_000, planner(SIGN))).leader
        await reg.close()

    aio.run(body())


def test_sequencer_drains_a_backlog_and_stops_gracefully(
    target: Target, aio: asyncio.Runner
) -> None:
    async def body() -> None:
        reg = target.open()
        notifier = LogNotifier()
        seq = Sequencer(reg, SIGN, notifier, interval_ms=20, batch=10, lease_ms=1000)
        await seq.start()
        assert notifier.size == 0 and (await reg.latest_checkpoint()) is not None  # size 0
        await reg.append_records(_records(0, 35))
        await asyncio.wait_for(notifier.wait_for_growth(34, 5), 6)
        deadline = asyncio.get_running_loop().time() + 5
        while notifier.size < 35:
            assert asyncio.get_running_loop().time() < deadline
            await notifier.wait_for_growth(notifier.size, 1)
        await reg.append_records(_records(35, 3))
        await seq.stop()  # the final integration takes the last three
        assert (await reg.log_status()).tree_size == 38
        assert (await reg.log_status()).lease_expires_us == 0  # handed over
        sizes = [cp for cp in [await reg.checkpoint_at(n) for n in (0, 10, 20, 30, 35, 38)]
                 if cp is not None]
        assert sizes[0].tree_size == 0 and sizes[-1].tree_size == 38
        await reg.close()

    aio.run(body())


def test_restart_continues_the_stored_frontier(target: Target, aio: asyncio.Runner) -> None:
    async def body() -> None:
        tree = MemoryTree()
        for round_ in range(3):
            reg = target.open()
            recs = _records(round_ * 13, 13)
            await reg.append_records(recs)
            result = await reg.integrate(100, f"p{round_}", 60_000, planner(SIGN))
            await reg.release_lease(f"p{round_}")
            for r in recs:
                tree.append(leaf_hash(r.leaf))
            assert verify_checkpoint(result.checkpoint or "", VKEY).root_hash == tree.root()
            assert [i for i, _ in await reg.entries(0, 1000)] == list(range(tree.size))
            await reg.close()

    aio.run(body())


def test_cosignatures_join_the_stored_note_by_compare_and_set(
        target: Target, aio: asyncio.Runner) -> None:
    """Witness cosignature lines are added to a stored checkpoint's note only if the note
    is still the one read (docs/WITNESS.md); recent_checkpoints lists the newest first."""
    async def body() -> None:
        reg = target.open()
        for n in (3, 2):
            await reg.append_records(_records(0, n))
            await reg.integrate(100, "me", 5000, planner(SIGN))
        recent = await reg.recent_checkpoints(10)
        assert [cp.tree_size for cp in recent] == [5, 3]
        assert [cp.tree_size for cp in await reg.recent_checkpoints(1)] == [5]
        cp = recent[1]
        line = f"\u2014 witness.test/w1 {base64.b64encode(bytes(76)).decode()}\n"
        assert await reg.replace_note(3, cp.note, cp.note + line)
        assert not await reg.replace_note(3, cp.note, cp.note + "\u2014 other AAAA\n")
        stored = await reg.checkpoint_at(3)
        assert stored is not None and stored.note == cp.note + line
        verify_checkpoint(stored.note, VKEY)  # still the log's valid signed note
        assert not await reg.replace_note(4, "", "x")  # no checkpoint of that size
        assert (await reg.latest_checkpoint()) == recent[0]  # others untouched
        await reg.close()

    aio.run(body())


def _text_sign(size: int, root: bytes) -> str:
    return f"test-checkpoint {size} {root.hex()}"


def test_racing_sequencers_integrate_every_record_exactly_once(target: Target) -> None:
    """Two processes' sequencers call integrate concurrently while records arrive: one
    holds the lease at a time, and the tree has every record once, in one order."""
    async def run() -> None:
        a, b, writer = target.open(), target.open(), target.open()
        try:
            stop = asyncio.Event()
            leaders: list[str] = []

            async def sequencer(reg: Registry, name: str) -> None:
                while not stop.is_set():
                    step = await reg.integrate(7, name, 300, planner(_text_sign))
                    if step.leader:
                        leaders.append(name)
                        if len(leaders) == 3:  # whoever led first hands over mid-stream
                            await reg.release_lease(name)
                            while leaders[-1] == name:  # until the other one has led
                                await asyncio.sleep(0.01)
                    await asyncio.sleep(0)

            async def load() -> None:
                for i in range(60):
                    await writer.append_records(
                        [NewRecord(b"leaf-%d-%d" % (i, j), b"p", b"s") for j in range(5)])
                    await asyncio.sleep(0.02)
                stop.set()

            await asyncio.gather(sequencer(a, "seq-a"), sequencer(b, "seq-b"), load())
            while (await a.integrate(1000, "seq-a", 300, planner(_text_sign))).leader is False:
                await asyncio.sleep(0.1)
            entries = await a.entries(0, 1000)
            assert [i for i, _ in entries] == list(range(300))
            assert len({leaf for _, leaf in entries}) == 300
            cp = await a.latest_checkpoint()
            assert cp is not None and cp.tree_size == 300
            root = root_from_leaf_hashes([leaf_hash(x) for _, x in entries])
            assert cp.note == _text_sign(300, root)
            assert {"seq-a", "seq-b"} <= set(leaders)
        finally:
            for reg in (a, b, writer):
                await reg.close()

    asyncio.run(run())
