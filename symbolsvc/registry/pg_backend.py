"""The ``postgresql://`` backend: open, create, migrate and inspect a PostgreSQL registry.

Registered for ``postgresql://`` and ``postgres://`` URLs in :mod:`.backends`; the
registry itself is :class:`~.postgres.PgRegistry`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql as pgsql

from ..errors import ConfigError
from .migrations import Migration, pg_migrate, pg_version
from .postgres import PgRegistry, _first_line, connect_sync
from .url import PgTarget


class PgBackend:
    """:class:`~.backends.Backend` for ``postgresql://`` (and ``postgres://``) URLs."""

    name = "postgres"

    def describe(self, url: str, base: Path) -> str:
        return PgTarget.parse(url).display

    def open(self, url: str, base: Path) -> PgRegistry:
        registry = PgRegistry(PgTarget.parse(url))
        registry.check_schema()
        return registry

    def create(self, url: str, base: Path) -> str:
        target = PgTarget.parse(url)
        if not target.dbname:
            raise ConfigError(f"{target.display}: the URL names no database")
        last_error = ""
        for maintenance in ("postgres", "template1"):
            admin = target.with_dbname(maintenance)
            try:
                conn = psycopg.connect(admin.conninfo, password=admin.password,
                                       autocommit=True, connect_timeout=5)
            except psycopg.Error as exc:
                last_error = target.scrub(_first_line(exc))
                continue
            with conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (target.dbname,)
                ).fetchone()
                if exists:
                    return f"{target.display}: exists"
                try:
                    conn.execute(pgsql.SQL("CREATE DATABASE {}").format(
                        pgsql.Identifier(target.dbname)))
                except psycopg.Error as exc:
                    raise ConfigError(target.scrub(
                        f"{target.display}: CREATE DATABASE failed: {str(exc).strip()}")
                    ) from None
            return f"{target.display}: created"
        raise ConfigError(f"{target.display}: cannot connect to the server to create the "
                          f"database: {last_error}")

    def migrate(self, url: str, base: Path) -> list[Migration]:
        target = PgTarget.parse(url)
        with connect_sync(target) as conn:
            return pg_migrate(conn, target.display)

    def schema_version(self, url: str, base: Path) -> int:
        with connect_sync(PgTarget.parse(url)) as conn:
            return pg_version(conn)

    def inspect(self, url: str, base: Path) -> PgInspector:
        return PgInspector(PgTarget.parse(url))


class PgInspector:
    """:class:`~.backends.Inspector` on a PostgreSQL registry (a read-only session)."""

    def __init__(self, target: PgTarget) -> None:
        self._conn = connect_sync(target)
        self._conn.read_only = True

    def execute(self, sql: str, params: tuple[Any, ...] = ()
                ) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = self._conn.execute(sql.replace("?", "%s"), params)
        rows = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                for r in cur.fetchall()]
        return [d.name for d in cur.description or ()], rows

    def tables(self) -> list[str]:
        _, rows = self.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            "current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name")
        return [r[0] for r in rows]

    def close(self) -> None:
        self._conn.close()


BACKEND = PgBackend()
