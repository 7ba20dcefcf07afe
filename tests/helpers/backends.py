"""The tests' side of the storage seam: one object per registry backend, registered in
:data:`TEST_BACKENDS` and nowhere else.

The product tells its backends apart in one place (``symbolsvc/registry/backends.py``,
one :class:`~symbolsvc.registry.backends.Backend` per URL scheme). The tests need a few
more things per backend that the product has no business doing: make an empty registry
for a deployment and drop it afterwards, dump everything stored (to scan it for
individual numbers), snapshot and restore it, check a file survived a kill. Those live
here, as methods of :class:`SqliteTests` and :class:`PostgresTests`; every other test
module asks :func:`per_backend` (by a deployment's storage URL, through the product's
seam) or :data:`TEST_BACKENDS` (by the ``backend`` fixture's parameter), and never
compares a backend's name (tests/unit/test_architecture.py checks it).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from symbolsvc.registry.backends import backend_for

from .deployments import config_file, set_storage_url, storage_url
from .postgres import (
    clone_database,
    create_database,
    drop_database,
    fresh_database,
    replace_database,
    require_postgres,
)


class Snapshot(Protocol):
    """A copy of a registry taken while no server runs on it."""

    def restore(self) -> None: ...

    def discard(self) -> None: ...


class BackendTests(Protocol):
    """What the tests do that depends on the backend."""

    name: str
    """The product backend's name (``Backend.name``): the ``backend`` fixture's id."""
    single_file: bool
    """The registry is one file on disk beside the deployment (a ``sqlite_only`` test
    inspects such a file; its other cases are deselected)."""

    def require(self) -> None:
        """Skip (or, with ``SYMBOLSVC_REQUIRE_PG=1``, fail) when it cannot run here."""

    def provision(self, directory: Path) -> str | None:
        """Give a deployment an empty registry of its own; a handle for :meth:`drop`."""

    def drop(self, handle: str) -> None: ...

    def fresh(self, tmp: Path) -> AbstractContextManager[str]:
        """An empty, migrated registry's URL, relative paths resolving against ``tmp``."""

    def dump(self, where: Path) -> dict[str, bytes]:
        """Everything the registry stores, as bytes to scan, by source."""

    def snapshot(self, where: Path, tmp: Path) -> Snapshot: ...

    def check_intact(self, where: Path) -> None:
        """Assert the storage itself is undamaged (after a kill -9)."""

    def stored_files(self, where: Path) -> list[Path]:
        """The files on disk that hold the registry (none for a database server)."""

    def live_evidence(self, where: Path) -> list[Path]:
        """Files whose presence shows a server is writing (none where it cannot be seen)."""

    def file_copy(self, where: Path, dest: Path) -> Path | None:
        """A consistent copy of the registry file (for ``audit verify --db``); None where
        the registry is no file."""

    def tamper(self, url: str, base: Path, sql: str, params: tuple[Any, ...]) -> int:
        """Run ``sql`` (``?`` placeholders) on the registry as an attacker with database
        access would, past the service; the rows changed."""


def _sqlite_file(where: Path) -> Path:
    url = storage_url(where)
    path = Path(url.removeprefix("sqlite:"))
    return path if path.is_absolute() else config_file(where).parent / path


def _backup(live: Path, dest: Path) -> Path:
    src, out = sqlite3.connect(f"file:{live}?mode=ro", uri=True), sqlite3.connect(dest)
    try:
        src.backup(out)
    finally:
        src.close()
        out.close()
    return dest


def file_bytes(db: Path) -> dict[str, bytes]:
    """The raw bytes of a SQLite file and of its -wal (and -shm) files, where present."""
    out: dict[str, bytes] = {}
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(db) + suffix)
        if p.exists():
            out[p.name] = p.read_bytes()
    return out


class _SqliteSnapshot:
    def __init__(self, where: Path, tmp: Path) -> None:
        self._live = _sqlite_file(where)
        self._copy = _backup(self._live, tmp / f"snapshot-{time.monotonic_ns()}.db")

    def restore(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self._live}{suffix}").unlink(missing_ok=True)
        shutil.copy(self._copy, self._live)

    def discard(self) -> None:
        self._copy.unlink(missing_ok=True)


class SqliteTests:
    """SQLite: the file (data/registry.db) is created by the server's first start."""

    name = "sqlite"
    single_file = True

    def require(self) -> None:
        return None

    def provision(self, directory: Path) -> str | None:
        return None

    def drop(self, handle: str) -> None:
        return None

    @contextmanager
    def fresh(self, tmp: Path) -> Iterator[str]:
        yield "sqlite:registry.db"  # relative to the deployment base, like a real config

    def dump(self, where: Path) -> dict[str, bytes]:
        """The database file and its WAL, byte for byte."""
        return file_bytes(_sqlite_file(where))

    def snapshot(self, where: Path, tmp: Path) -> Snapshot:
        return _SqliteSnapshot(where, tmp)

    def check_intact(self, where: Path) -> None:
        conn = sqlite3.connect(f"file:{_sqlite_file(where)}?mode=ro", uri=True, timeout=10)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        finally:
            conn.close()

    def stored_files(self, where: Path) -> list[Path]:
        return [_sqlite_file(where)]

    def live_evidence(self, where: Path) -> list[Path]:
        live = _sqlite_file(where)
        return [live.with_name(live.name + "-wal")]  # WAL mode while serving

    def file_copy(self, where: Path, dest: Path) -> Path | None:
        return _backup(_sqlite_file(where), dest)


    def tamper(self, url: str, base: Path, sql: str, params: tuple[Any, ...]) -> int:
        path = Path(url.removeprefix("sqlite:").removeprefix("//"))
        conn = sqlite3.connect(path if path.is_absolute() else base / path, timeout=30)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            with conn:
                return conn.execute(sql, params).rowcount
        finally:
            conn.close()


class _PostgresSnapshot:
    """A database made from the live one as its template; :meth:`restore` drops the live
    database and renames the copy to its name, so the deployment's config stays as is."""

    def __init__(self, where: Path) -> None:
        from symbolsvc.registry.url import PgTarget

        self._live = PgTarget.parse(storage_url(where)).dbname
        self._clone: str | None = clone_database(self._live)

    def restore(self) -> None:
        assert self._clone is not None, "already restored"
        replace_database(self._live, self._clone)
        self._clone = None

    def discard(self) -> None:
        if self._clone is not None:
            drop_database(self._clone)
            self._clone = None


class PostgresTests:
    """PostgreSQL: a new database per deployment, migrated, its URL in the config."""

    name = "postgres"
    single_file = False

    def require(self) -> None:
        require_postgres()  # or skip, saying how to enable

    def provision(self, directory: Path) -> str | None:
        name, url = create_database()
        set_storage_url(directory, url)
        return name

    def drop(self, handle: str) -> None:
        drop_database(handle)  # WITH (FORCE): a server killed mid-test may hold sessions

    @contextmanager
    def fresh(self, tmp: Path) -> Iterator[str]:
        self.require()
        with fresh_database() as url:
            yield url

    def dump(self, where: Path) -> dict[str, bytes]:
        """``pg_dump``'s plain SQL dump (schema and every row, bytea in hex) and every
        stored value of every table in its raw form (bytea as its bytes), so a binary
        encoding cannot hide behind the dump's hex."""
        from symbolsvc.registry.url import PgTarget

        from .registry import RegistryReader

        target = PgTarget.parse(storage_url(where))
        env = {**os.environ, **({"PGPASSWORD": target.password} if target.password else {})}
        dump = subprocess.run(["pg_dump", "--no-owner", "--no-privileges", "-d",
                               target.conninfo], capture_output=True, check=True,
                              timeout=120, env=env).stdout
        values: list[bytes] = []
        with RegistryReader(where) as db:
            for table in db.tables():
                for row in db.rows(table)[1]:
                    values += [v if isinstance(v, bytes) else str(v).encode() for v in row]
        return {"pg_dump": dump, "stored values": b"\x00".join(values)}

    def snapshot(self, where: Path, tmp: Path) -> Snapshot:
        return _PostgresSnapshot(where)

    def check_intact(self, where: Path) -> None:
        return None  # PostgreSQL's own crash recovery is not the service's to check

    def stored_files(self, where: Path) -> list[Path]:
        return []

    def live_evidence(self, where: Path) -> list[Path]:
        return []

    def file_copy(self, where: Path, dest: Path) -> Path | None:
        return None

    def tamper(self, url: str, base: Path, sql: str, params: tuple[Any, ...]) -> int:
        import psycopg

        from symbolsvc.registry.url import PgTarget

        target = PgTarget.parse(url)
        kwargs = {"password": target.password} if target.password else {}
        with psycopg.connect(target.conninfo, autocommit=True, **kwargs) as pg:
            return pg.execute(sql.replace("?", "%s"), params).rowcount


TEST_BACKENDS: dict[str, BackendTests] = {b.name: b for b in (SqliteTests(), PostgresTests())}
"""Every backend the suites run on, by the product backend's name."""


def per_backend(where: Path) -> BackendTests:
    """The test-side backend of a deployment directory or config file (its storage URL,
    told apart by the product's seam)."""
    return TEST_BACKENDS[backend_for(storage_url(where)).name]
