"""PostgreSQL-specific registry behaviour: many writers, migrations, outages, secrets.

What both backends share is proven by the shared backend suite (tests/registry, on
SQLite and PostgreSQL alike); this file covers what only a shared, networked database
raises.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from postgres_fixtures import fresh_database, require_postgres

from symbolsvc.errors import ConfigError, Unavailable
from symbolsvc.log.integrate import planner
from symbolsvc.registry import NewHolding, NewRecord
from symbolsvc.registry.migrations import latest, pg_version
from symbolsvc.registry.postgres import PgRegistry, connect_sync
from symbolsvc.registry.url import PgTarget, redact_url

SECRET = "n0t-in-any-message"


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_postgres()
    with fresh_database() as url:
        yield url


def _holding(i: int) -> NewHolding:
    return NewHolding("agency-a", f"k1.sym{i:06d}", b"sealed-%d" % i)


def test_server_refuses_unmigrated_and_newer_schemas() -> None:
    require_postgres()
    with fresh_database(migrate=False) as url:
        reg = PgRegistry(url)
        with pytest.raises(ConfigError, match="db migrate"):
            reg.check_schema()
        target = PgTarget.parse(url)
        with connect_sync(target) as conn:
            from symbolsvc.registry.migrations import pg_migrate

            assert [m.version for m in pg_migrate(conn, "t")] == list(range(1, latest("postgres")
                                                                            + 1))
            assert pg_migrate(conn, "t") == []
            assert pg_version(conn) == latest("postgres")
            reg.check_schema()
            conn.execute("UPDATE meta SET value = %s WHERE key = 'schema_version'",
                         (str(latest("postgres") + 1),))
        with pytest.raises(ConfigError, match="newer"):
            reg.check_schema()


def test_unreachable_database_is_unavailable_and_the_password_stays_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"postgresql://someone:{SECRET}@127.0.0.1:1/nowhere"
    assert SECRET not in redact_url(url)
    assert SECRET not in redact_url(f"postgresql://h/db?password={SECRET}&sslmode=require")

    async def run() -> list[BaseException]:
        reg = PgRegistry(url, timeout=0.5, connect_timeout=1)
        errors: list[BaseException] = []
        for call in (reg.ping(), reg.issue([_holding(1)]), reg.lookup("a", "b"),
                     reg.append_records([NewRecord(b"l", b"p", b"s")])):
            try:
                await call
            except Unavailable as exc:
                errors.append(exc)
        await reg.close()
        return errors

    with caplog.at_level(logging.DEBUG):
        errors = asyncio.run(run())
    assert len(errors) == 4
    assert all(e.reason == "STORAGE_UNAVAILABLE" for e in errors)  # type: ignore[attr-defined]
    text = "\n".join(str(e) for e in errors) + caplog.text
    assert SECRET not in text
    with pytest.raises(ConfigError) as info:
        PgRegistry(url).check_schema()
    assert SECRET not in str(info.value) and "***" in str(info.value)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pgdeploy")
    subprocess.run([sys.executable, "-m", "symbolsvc", "init", str(d / "dep"), "--agency",
                    "city-a"], check=True, capture_output=True)
    return d / "dep"


def _with_url(deployment: Path, url: str) -> Path:
    config = deployment / "config.toml"
    lines = config.read_text().splitlines()
    lines = [f'url = "{url}"' if line.startswith("url = ") else line for line in lines]
    out = deployment / f"config-{abs(hash(url))}.toml"
    out.write_text("\n".join(lines) + "\n")
    return out


def _db(command: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "symbolsvc", "db", command, "--config",
                           str(config)], capture_output=True, text=True, timeout=60)


def test_db_create_migrate_check_on_postgres(deployment: Path) -> None:
    admin = PgTarget.parse(require_postgres())
    name = "symbolsvc_t_cli_" + str(abs(hash(deployment)) % 10**8)
    target = admin.with_dbname(name)
    url = target.conninfo.replace("://", f"://:{SECRET}@", 1) if "@" not in target.conninfo \
        else target.conninfo.replace("@", f":{SECRET}@", 1)
    config = _with_url(deployment, url)
    from postgres_fixtures import drop_database

    drop_database(name)
    try:
        check = _db("check", config)
        assert check.returncode != 0
        created = _db("create", config)
        assert created.returncode == 0, created.stderr
        assert "created" in created.stdout
        assert "exists" in _db("create", config).stdout
        check = _db("check", config)
        assert check.returncode == 1 and "db migrate" in check.stdout
        migrated = _db("migrate", config)
        assert migrated.returncode == 0 and "0001_initial" in migrated.stdout
        check = _db("check", config)
        assert check.returncode == 0 and "up to date" in check.stdout
        for out in (check, migrated, created):
            assert SECRET not in out.stdout + out.stderr
    finally:
        drop_database(name)


def test_db_migrate_and_check_on_sqlite(deployment: Path, tmp_path: Path) -> None:
    config = _with_url(deployment, f"sqlite:{tmp_path}/r.db")
    assert _db("check", config).returncode == 1
    assert _db("create", config).returncode == 0
    migrated = _db("migrate", config)
    assert migrated.returncode == 0, migrated.stderr
    check = _db("check", config)
    assert check.returncode == 0 and f"schema version {latest('sqlite')}" in check.stdout


def _sign(size: int, root: bytes) -> str:
    return f"test-checkpoint {size} {root.hex()}"


def test_a_record_committing_late_with_a_lower_id_is_integrated_later_not_lost(
    pg_url: str,
) -> None:
    """PostgreSQL hands out ids at INSERT, not at COMMIT: the sequencer must not skip
    a record whose transaction commits after a higher id was integrated."""
    import psycopg

    from symbolsvc.log.hashing import leaf_hash, root_from_leaf_hashes

    async def run() -> None:
        reg = PgRegistry(pg_url)
        late = await psycopg.AsyncConnection.connect(pg_url)
        try:
            await late.execute("INSERT INTO access_records (pseudonym, sealed_subject, leaf) "
                               "VALUES ('p', 's', 'late')")  # id 1, not committed yet
            (rid,) = await reg.append_records([NewRecord(b"early", b"p", b"s")])
            first = await reg.integrate(100, "seq-a", 5000, planner(_sign))
            assert (first.integrated, first.tree_size) == (1, 1)
            await late.commit()
            second = await reg.integrate(100, "seq-a", 5000, planner(_sign))
            assert (second.integrated, second.tree_size) == (1, 2)
            entries = await reg.entries(0, 10)
            assert entries == [(0, b"early"), (1, b"late")]
            assert rid > 1  # the late record's id is lower, its leaf index higher
            cp = await reg.latest_checkpoint()
            assert cp is not None and cp.note == _sign(
                2, root_from_leaf_hashes([leaf_hash(b"early"), leaf_hash(b"late")]))
        finally:
            await late.close()
            await reg.close()

    asyncio.run(run())


def test_growth_notifications_report_the_stored_size_never_a_forged_one(
    pg_url: str,
) -> None:
    """Watches across replicas (issue 11): ``follow_growth`` reports every integration
    committed through any registry on the database, as the stored size. A NOTIFY anyone
    who may connect can send on the channel, with a made-up size, only makes it read the
    stored size again: the forged size never reaches the watchers."""
    import psycopg

    from symbolsvc.registry.pg_listen import CHANNEL

    async def run() -> None:
        writer, follower = PgRegistry(pg_url), PgRegistry(pg_url)  # two replicas
        seen: list[int] = []
        changed = asyncio.Event()

        def on_size(size: int) -> None:
            seen.append(size)
            changed.set()

        async def until(predicate: object) -> None:
            async with asyncio.timeout(60):  # generous: only a missing delivery fails
                while not predicate():  # type: ignore[operator]
                    changed.clear()
                    await changed.wait()

        task = asyncio.ensure_future(follower.follow_growth(on_size))
        forger = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
        try:
            await until(lambda: seen == [0])  # on LISTEN: the stored size, once
            await writer.append_records([NewRecord(b"leaf-%d" % i, b"p", b"s")
                                         for i in range(3)])
            await writer.integrate(100, "seq-a", 5000, planner(_sign))
            await until(lambda: seen[-1] == 3)
            await forger.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "999999999"))
            await forger.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "x"))
            await writer.append_records([NewRecord(b"leaf-3", b"p", b"s")])
            await writer.integrate(100, "seq-a", 5000, planner(_sign))
            await until(lambda: seen[-1] == 4)  # delivered after the forgeries
            assert max(seen) == 4 and seen == sorted(seen), seen
        finally:
            task.cancel()
            await forger.close()
            await writer.close()
            await follower.close()

    asyncio.run(run())
