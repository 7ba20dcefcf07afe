"""``symbolsvc db create | migrate | check``: the registry database's life cycle.

* ``create`` makes the database named by ``[storage] url`` if it does not exist
  (PostgreSQL: ``CREATE DATABASE`` through the server's ``postgres`` database;
  SQLite: the file's directory and the file).
* ``migrate`` applies the pending schema migrations (:mod:`.registry.migrations`).
* ``check`` reports the schema version and whether this symbolsvc runs on it
  (exit status 0 when it does, 1 when not).

Every message names the database by its redacted URL, never with a password.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from .config import Config
from .errors import ConfigError
from .registry.migrations import (
    Migration,
    describe,
    latest,
    pg_migrate,
    pg_version,
    sqlite_migrate,
    sqlite_version,
)
from .registry.open import PgTarget, backend_of


@dataclass(frozen=True)
class Status:
    backend: str
    where: str  # redacted
    version: int
    latest: int
    ok: bool
    message: str


def _sqlite_connect(config: Config) -> sqlite3.Connection:
    path = config.sqlite_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: cannot open the SQLite registry: {exc}") from None
    return conn


def create(config: Config) -> str:
    """Create the database if absent; a one-line report."""
    if backend_of(config.storage_url) == "sqlite":
        path = config.sqlite_path()
        existed = path.exists()
        _sqlite_connect(config).close()
        return f"{path}: {'exists' if existed else 'created'}"
    import psycopg
    from psycopg import sql

    target = PgTarget.parse(config.storage_url)
    if not target.dbname:
        raise ConfigError(f"{target.display}: the URL names no database")
    last_error = ""
    for maintenance in ("postgres", "template1"):
        admin = target.with_dbname(maintenance)
        try:
            conn = psycopg.connect(admin.conninfo, password=admin.password, autocommit=True,
                                   connect_timeout=5)
        except psycopg.Error as exc:
            last_error = target.scrub(str(exc).strip().splitlines()[0])
            continue
        with conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (target.dbname,)
            ).fetchone()
            if exists:
                return f"{target.display}: exists"
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target.dbname)))
            except psycopg.Error as exc:
                raise ConfigError(target.scrub(
                    f"{target.display}: CREATE DATABASE failed: {str(exc).strip()}")) from None
        return f"{target.display}: created"
    raise ConfigError(f"{target.display}: cannot connect to the server to create the "
                      f"database: {last_error}")


def migrate(config: Config) -> tuple[Status, list[Migration]]:
    """Apply pending migrations; the resulting status and the migrations applied."""
    if backend_of(config.storage_url) == "sqlite":
        conn = _sqlite_connect(config)
        try:
            applied = sqlite_migrate(conn, str(config.sqlite_path()))
        finally:
            conn.close()
        return check(config), applied
    from .registry.postgres import connect_sync

    target = PgTarget.parse(config.storage_url)
    with connect_sync(target) as pg:
        applied = pg_migrate(pg, target.display)
    return check(config), applied


def check(config: Config) -> Status:
    """The schema version found and whether this symbolsvc runs on it."""
    backend = backend_of(config.storage_url)
    if backend == "sqlite":
        path = config.sqlite_path()
        if not path.exists():
            found, where = 0, str(path)
        else:
            conn = _sqlite_connect(config)
            try:
                found = sqlite_version(conn)
            finally:
                conn.close()
            where = str(path)
    else:
        from .registry.postgres import connect_sync

        target = PgTarget.parse(config.storage_url)
        where = target.display
        with connect_sync(target) as pg:
            found = pg_version(pg)
    ok, message = describe(found, backend)
    return Status(backend, where, found, latest(backend), ok, message)
