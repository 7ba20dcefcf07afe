"""A deployment's registry read from outside, whichever its backend: read-only SQL, row
counts, a whole dump to scan for what must never be stored, and snapshots to roll back to."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from .deployments import config_file, storage_url


def registry_path(directory: Path) -> Path:
    """The SQLite registry file of a deployment (``sqlite:data/registry.db``)."""
    return directory / "data" / "registry.db"
def registry_backend(where: Path) -> str:
    """``"sqlite"`` or ``"postgres"``: the registry a deployment (or config file) uses."""
    from symbolsvc.registry.backends import backend_for

    return backend_for(storage_url(where)).name


def _sqlite_file(where: Path) -> Path:
    url = storage_url(where)
    path = Path(url.removeprefix("sqlite:"))
    return path if path.is_absolute() else config_file(where).parent / path


def open_readonly(db: Path) -> sqlite3.Connection:
    """A read-only connection to the live SQLite registry (the server keeps writing)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.execute("PRAGMA query_only = 1")
    return conn


class RegistryReader:
    """Read-only SQL on a deployment's live registry, whichever its backend.

    ``where`` is a deployment directory or a server's config file. Statements use ``?``
    placeholders and SQL both backends accept (e.g. ``NOT released``, not ``released = 0``).
    """

    def __init__(self, where: Path) -> None:
        from symbolsvc.registry.backends import backend_for

        url = storage_url(where)
        backend = backend_for(url)
        self.backend = backend.name
        self._db = backend.inspect(url, config_file(where).parent)

    def __enter__(self) -> RegistryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def execute(self, sql: str, params: tuple[Any, ...] = ()
                ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows."""
        return self._db.execute(sql, params)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.execute(sql, params)[1]

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        (row,) = self.query(sql, params)
        return row

    def tables(self) -> list[str]:
        return self._db.tables()

    def rows(self, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        return self.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from tables()


def row_counts(where: Path) -> dict[str, int]:
    """Row count of every table in a deployment's registry."""
    with RegistryReader(where) as db:
        return {t: db.one(f'SELECT COUNT(*) FROM "{t}"')[0]  # noqa: S608
                for t in db.tables()}


def registry_bytes(db: Path) -> dict[str, bytes]:
    """The raw bytes of the SQLite file and of its -wal (and -shm) files, where present."""
    out: dict[str, bytes] = {}
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(db) + suffix)
        if p.exists():
            out[p.name] = p.read_bytes()
    return out


def registry_dump(where: Path) -> dict[str, bytes]:
    """Everything a deployment's registry stores, as bytes to scan, by source.

    SQLite: the database file and its WAL, byte for byte. PostgreSQL: ``pg_dump``'s plain
    SQL dump of the database (schema and every row, bytea in hex) and every stored value
    of every table in its raw form (bytea as its bytes), so a binary encoding cannot hide
    behind the dump's hex.
    """
    if registry_backend(where) == "sqlite":
        return registry_bytes(_sqlite_file(where))
    from symbolsvc.registry.url import PgTarget

    target = PgTarget.parse(storage_url(where))
    env = {**os.environ, **({"PGPASSWORD": target.password} if target.password else {})}
    dump = subprocess.run(["pg_dump", "--no-owner", "--no-privileges", "-d", target.conninfo],
                          capture_output=True, check=True, timeout=120, env=env).stdout
    values: list[bytes] = []
    with RegistryReader(where) as db:
        for table in db.tables():
            for row in db.rows(table)[1]:
                values += [v if isinstance(v, bytes) else str(v).encode() for v in row]
    return {"pg_dump": dump, "stored values": b"\x00".join(values)}


class RegistrySnapshot:
    """A copy of a deployment's registry, taken and put back while no server runs on it.

    SQLite: a copy of the file (through the backup API). PostgreSQL: a database made
    from the live one as its template; :meth:`restore` drops the live database and renames
    the copy to its name, so the deployment's config stays as it is.
    """

    def __init__(self, directory: Path, tmp: Path) -> None:
        self.directory = directory
        self.backend = registry_backend(directory)
        if self.backend == "sqlite":
            live = _sqlite_file(directory)
            self._copy = tmp / f"snapshot-{time.monotonic_ns()}.db"
            src, out = sqlite3.connect(f"file:{live}?mode=ro", uri=True), sqlite3.connect(
                self._copy)
            try:
                src.backup(out)
            finally:
                src.close()
                out.close()
        else:
            from symbolsvc.registry.url import PgTarget

            from .postgres import clone_database

            self._live = PgTarget.parse(storage_url(directory)).dbname
            self._clone: str | None = clone_database(self._live)

    def restore(self) -> None:
        if self.backend == "sqlite":
            live = _sqlite_file(self.directory)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{live}{suffix}").unlink(missing_ok=True)
            shutil.copy(self._copy, live)
        else:
            from .postgres import replace_database

            assert self._clone is not None, "already restored"
            replace_database(self._live, self._clone)
            self._clone = None

    def discard(self) -> None:
        if self.backend == "postgres" and self._clone is not None:
            from .postgres import drop_database

            drop_database(self._clone)
            self._clone = None


def tamper(url: str, base: Path, sql: str, params: tuple[Any, ...] = ()) -> int:
    """Write to a registry as an attacker with database access would: straight through
    the driver, past the service (``?`` placeholders). Returns the rows changed."""
    from symbolsvc.registry.backends import backend_for

    if backend_for(url).name == "sqlite":
        path = Path(url.removeprefix("sqlite:").removeprefix("//"))
        conn = sqlite3.connect(path if path.is_absolute() else base / path, timeout=30)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            with conn:
                return conn.execute(sql, params).rowcount
        finally:
            conn.close()
    import psycopg

    from symbolsvc.registry.url import PgTarget

    target = PgTarget.parse(url)
    kwargs = {"password": target.password} if target.password else {}
    with psycopg.connect(target.conninfo, autocommit=True, **kwargs) as pg:
        return pg.execute(sql.replace("?", "%s"), params).rowcount


def tamper_deployment(where: Path, sql: str, params: tuple[Any, ...] = ()) -> int:
    """:func:`tamper` on a deployment's registry."""
    return tamper(storage_url(where), config_file(where).parent, sql, params)
