"""A deployment's registry read from outside, whichever its backend: read-only SQL, row
counts, a whole dump to scan for what must never be stored, and snapshots to roll back to."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from .backends import file_bytes, per_backend
from .deployments import config_file, storage_url


def registry_path(directory: Path) -> Path:
    """The SQLite registry file of a deployment (``sqlite:data/registry.db``)."""
    return directory / "data" / "registry.db"
def registry_backend(where: Path) -> str:
    """``"sqlite"`` or ``"postgres"``: the registry a deployment (or config file) uses."""
    from symbolsvc.registry.backends import backend_for

    return backend_for(storage_url(where)).name


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


WRITTEN_BY_CALLS = ("holdings", "access_records")


def call_rows(where: Path) -> dict[str, int]:
    """Rows of the tables a call writes; the sequencer updates its own (tree_nodes,
    checkpoints, log_state) in the background, whenever it integrates queued records."""
    counts = row_counts(where)
    return {t: counts[t] for t in WRITTEN_BY_CALLS}


def registry_bytes(db: Path) -> dict[str, bytes]:
    """The raw bytes of the SQLite file and of its -wal (and -shm) files, where present."""
    return file_bytes(db)


def registry_dump(where: Path) -> dict[str, bytes]:
    """Everything a deployment's registry stores, as bytes to scan, by source (the backend's
    :meth:`~.backends.BackendTests.dump`: SQLite's file and WAL byte for byte; PostgreSQL's
    ``pg_dump`` and every stored value raw)."""
    return per_backend(where).dump(where)


class RegistrySnapshot:
    """A copy of a deployment's registry, taken and put back while no server runs on it
    (the backend's :meth:`~.backends.BackendTests.snapshot`)."""

    def __init__(self, directory: Path, tmp: Path) -> None:
        self.directory = directory
        self.backend = registry_backend(directory)
        self._snapshot = per_backend(directory).snapshot(directory, tmp)

    def restore(self) -> None:
        self._snapshot.restore()

    def discard(self) -> None:
        self._snapshot.discard()


def tamper(url: str, base: Path, sql: str, params: tuple[Any, ...] = ()) -> int:
    """Write to a registry as an attacker with database access would: straight through
    the driver, past the service (``?`` placeholders). Returns the rows changed."""
    from symbolsvc.registry.backends import backend_for

    from .backends import TEST_BACKENDS

    return TEST_BACKENDS[backend_for(url).name].tamper(url, base, sql, params)


def tamper_deployment(where: Path, sql: str, params: tuple[Any, ...] = ()) -> int:
    """:func:`tamper` on a deployment's registry."""
    return tamper(storage_url(where), config_file(where).parent, sql, params)
