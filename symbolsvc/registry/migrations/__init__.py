"""Versioned schema migrations, one directory of SQL files per backend.

``sqlite/NNNN_name.sql`` and ``postgres/NNNN_name.sql`` are applied in order,
each in its own transaction together with the bump of ``meta.schema_version``,
so a database is always at exactly one known version. A file, once released,
is never edited: a change is a new file. ``symbolsvc db migrate`` applies the
pending ones; servers check the version at start-up and refuse to run against
a schema they do not know (not yet migrated, or newer than the code).

The PostgreSQL files stay within what Citus, CockroachDB and YugabyteDB accept
(docs/SCALING.md). Two ``db migrate`` runs at once on one database are not
supported: the loser fails on a duplicate object or on the ``meta`` row lock
and is simply run again.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from ...errors import ConfigError

BACKENDS = ("sqlite", "postgres")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def migrations(backend: str) -> tuple[Migration, ...]:
    """The backend's migrations in version order; versions are 1, 2, ... without gaps."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}")
    found = []
    for entry in resources.files(__package__).joinpath(backend).iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m[1]), m[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda mig: mig.version)
    if [mig.version for mig in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{backend} migrations are not numbered 1..n without gaps")
    return tuple(found)


def latest(backend: str) -> int:
    """The schema version this code runs on."""
    return len(migrations(backend))


def require_current(found: int, backend: str, where: str) -> None:
    """Raise :class:`ConfigError` unless ``found`` is the version this code runs on."""
    want = latest(backend)
    if found == want:
        return
    if found < want:
        raise ConfigError(
            f"{where}: registry schema version {found} is older than version {want} that this "
            "symbolsvc needs; run `symbolsvc db migrate --config CONFIG` first"
        )
    raise ConfigError(
        f"{where}: registry schema version {found} is newer than version {want}, the newest "
        "this symbolsvc knows; upgrade symbolsvc (a downgrade is not supported)"
    )


def describe(found: int, backend: str) -> tuple[bool, str]:
    """(up to date?, a one-line report) for ``symbolsvc db check``."""
    want = latest(backend)
    if found == want:
        return True, f"schema version {found}: up to date"
    if found < want:
        return False, (f"schema version {found}, this symbolsvc needs {want}: "
                       "run `symbolsvc db migrate`")
    return False, f"schema version {found} is newer than {want}, the newest this symbolsvc knows"


def _pending(found: int, backend: str, where: str) -> list[Migration]:
    if found > latest(backend):
        require_current(found, backend, where)
    return [m for m in migrations(backend) if m.version > found]


# -- SQLite ----------------------------------------------------------------------


def sqlite_version(conn: sqlite3.Connection) -> int:
    """The schema version of an SQLite registry (0: empty file)."""
    if conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone() is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def sqlite_migrate(conn: sqlite3.Connection, where: str) -> list[Migration]:
    """Apply pending migrations to an autocommit (isolation_level=None) connection.

    ``BEGIN IMMEDIATE`` takes the write lock before the version is read, so two
    processes opening one new file at once apply each migration exactly once.
    """
    applied: list[Migration] = []
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            todo = _pending(sqlite_version(conn), "sqlite", where)
            if not todo:
                conn.execute("COMMIT")
                return applied
            mig = todo[0]
            # executescript would COMMIT first; run the statements one by one instead.
            for stmt in _statements(mig.sql):
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(mig.version),),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(mig)


def _statements(script: str) -> list[str]:
    """Split an SQL script at the semicolons that end complete statements."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf)
            buf = ""
    if buf.strip() and not all(ln.strip().startswith("--") or not ln.strip()
                               for ln in buf.splitlines()):
        raise RuntimeError("migration script ends with an incomplete statement")
    return out


# -- PostgreSQL (and compatible engines), through a synchronous psycopg connection --


def pg_version(conn: Any) -> int:
    """The schema version of a PostgreSQL registry (0: no symbolsvc tables)."""
    row = conn.execute(
        "SELECT 1 FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_name = 'meta'"
    ).fetchone()
    if row is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def pg_migrate(conn: Any, where: str) -> list[Migration]:
    """Apply pending migrations, one transaction each, on an autocommit connection."""
    applied: list[Migration] = []
    while True:
        with conn.transaction():
            found = pg_version(conn)
            if found:
                # Serialises concurrent migrators on the version row (no advisory locks).
                conn.execute("SELECT value FROM meta WHERE key = 'schema_version' FOR UPDATE")
                found = pg_version(conn)
            todo = _pending(found, "postgres", where)
            if not todo:
                return applied
            mig = todo[0]
            conn.execute(mig.sql.encode())
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(mig.version),),
            )
        applied.append(mig)
