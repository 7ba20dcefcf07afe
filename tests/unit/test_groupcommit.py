"""The SQLite writer: adaptive group commit and WAL checkpoints off the commit path.

A real SQLite file in WAL mode with ``synchronous = FULL``; a second connection
checks what is on disk. No timing assertions: what is checked holds however slow
the machine is.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from symbolsvc.registry.groupcommit import GroupCommitter
from symbolsvc.registry.sqlite_wal import Checkpointer, tune_writer


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _table(path: Path) -> None:
    conn = _connect(path)
    conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
    conn.close()


def test_every_result_arrives_after_its_commit_whatever_the_grouping(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    _table(path)
    writer = GroupCommitter(lambda: tune_writer(_connect(path)))
    reader = _connect(path)
    seen_uncommitted: list[int] = []

    def insert(k: int):  # type: ignore[no-untyped-def]
        return lambda conn: conn.execute("INSERT INTO t VALUES (?, zeroblob(100))", (k,)).rowcount

    async def caller(c: int) -> None:
        for i in range(25):
            k = c * 1000 + i
            assert await writer.submit(insert(k)) == 1
            # Acknowledged: another connection must see it on disk now.
            if reader.execute("SELECT count(*) FROM t WHERE k = ?", (k,)).fetchone() != (1,):
                seen_uncommitted.append(k)

    async def main() -> None:
        await asyncio.gather(*(caller(c) for c in range(32)))

    asyncio.run(main())
    writer.close()
    assert not seen_uncommitted
    assert writer.units == 32 * 25 and 1 <= writer.groups <= writer.units
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (800,)


def test_a_lone_caller_is_never_held_back_for_company(tmp_path: Path) -> None:
    """One caller at a time: every group is that one unit (the wait for a larger group
    is for about as many units as the previous group had: one)."""
    path = tmp_path / "w.db"
    _table(path)
    writer = GroupCommitter(lambda: tune_writer(_connect(path)))

    async def main() -> None:
        for k in range(50):
            await writer.submit(lambda conn, k=k: conn.execute(
                "INSERT INTO t VALUES (?, NULL)", (k,)))

    asyncio.run(main())
    writer.close()
    assert writer.groups == writer.units == 50


def test_the_wal_is_checkpointed_by_its_own_thread_not_in_commit(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    _table(path)
    writer = GroupCommitter(lambda: tune_writer(_connect(path)))
    checkpointer = Checkpointer(path, lambda: _connect(path))
    try:
        async def main() -> None:
            for batch in range(20):
                await writer.submit(lambda conn, b=batch: conn.executemany(
                    "INSERT INTO t VALUES (?, zeroblob(4000))",
                    [(b * 100 + i,) for i in range(100)]))

        asyncio.run(main())
        # (No assertion on the WAL's size here: the checkpointer runs concurrently and may
        # already have truncated it, however fast or slow this machine is.)
        # The checkpointer moves every committed page into the main file: a copy of
        # that file alone (no WAL) holds every row, eventually.
        deadline = time.monotonic() + 120
        while _rows_in_main_file(path, tmp_path / "copy.db") != 2000:
            assert time.monotonic() < deadline, "the WAL was not checkpointed"
            time.sleep(0.05)
        assert checkpointer.checkpoints >= 1
    finally:
        checkpointer.close()
        writer.close()


def _rows_in_main_file(path: Path, copy: Path) -> int:
    copy.write_bytes(path.read_bytes())
    copy.with_name(copy.name + "-wal").unlink(missing_ok=True)
    try:
        conn = sqlite3.connect(copy)
        try:
            return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return -1  # copied mid-checkpoint


def test_only_the_health_probe_clears_a_full_disk(tmp_path: Path) -> None:
    """A write that fits after a refused one does not prove the disk has room: after a
    checkpoint resets the WAL, a small commit reuses pages already allocated. Health
    stays NOT_SERVING until the probe's 1 MiB write fits (server._writes_fit)."""
    from symbolsvc.registry.sqlite import SqliteRegistry

    async def go() -> None:
        registry = SqliteRegistry(tmp_path / "r.db")
        try:
            registry.write_failure = "STORAGE_FULL"  # as a refused write leaves it
            await registry._write(lambda conn: conn.execute("SELECT 1"))
            assert registry.write_failure == "STORAGE_FULL"
            await registry.probe_write()
            assert registry.write_failure is None
        finally:
            await registry.close()

    asyncio.run(go())


def _wal_frames(path: Path) -> int:
    conn = _connect(path)
    try:
        return int(conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        conn.close()


def test_a_long_wal_starts_over_even_with_a_reader_always_in_it(tmp_path: Path) -> None:
    """Under load a read is always in flight, and passive checkpoints alone never let
    the writer start the WAL over (the soak's -wal file grew to 1.4 GB in 6 minutes).
    Here a reader opened before any checkpoint pins the WAL: a passive checkpoint
    leaves it as long as it was; once the WAL is past the threshold the checkpointer
    restarts it, waits only briefly while the reader is still there (retrying at its
    next poll), and after the reader leaves the next commit starts from frame 1 and
    the file is cut back to the limit."""
    path = tmp_path / "w.db"
    _table(path)
    writer = tune_writer(_connect(path))
    writer.execute("PRAGMA journal_size_limit = 65536")  # the test's own small limit

    def commit(rows: range) -> None:
        writer.executemany("INSERT INTO t VALUES (?, zeroblob(4000))", [(k,) for k in rows])

    commit(range(200))
    reader = _connect(path)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (200,)
    passive_only = Checkpointer(path, lambda: _connect(path), enabled=False,
                                restart_frames=10**9)
    restarting = Checkpointer(path, lambda: _connect(path), enabled=False, restart_frames=50)
    try:
        commit(range(200, 210))
        long_wal = _wal_frames(path)
        assert passive_only.step() is False
        commit(range(210, 220))
        assert _wal_frames(path) > long_wal  # still appending, never starting over
        assert restarting.step() is False  # the reader is still in the WAL
        reader.execute("COMMIT")
        assert restarting.step() is True and restarting.restarts == 1
        commit(range(220, 221))
        assert _wal_frames(path) < 10
        assert path.with_name("w.db-wal").stat().st_size <= 65536
        assert writer.execute("SELECT count(*) FROM t").fetchone() == (221,)
    finally:
        for c in (passive_only, restarting):
            c.close()
        reader.close()
        writer.close()

