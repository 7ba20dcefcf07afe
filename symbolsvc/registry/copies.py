"""Whole-registry copies and bulk changes for day-2 operations (``symbolsvc backup``,
``restore``, ``agency remove``): the engine-specific half, behind the backend seam.

* SQLite: the online backup API (:meth:`sqlite3.Connection.backup`) copies one consistent
  snapshot in one step while the server keeps writing (WAL).
* PostgreSQL: ``pg_dump --format=custom`` under a snapshot exported by the transaction
  that reads the summary (``pg_export_snapshot``), so dump and summary agree;
  ``pg_restore --single-transaction`` restores it.

A copy's sequencer lease is cleared: the process that held it is not there, and a
restored server should not wait for it to expire.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .backends import backend_for
from .migrations import pg_version, sqlite_version
from .url import PgTarget

FREE_LEASE = "UPDATE sequencer_lease SET expires_us = 0"
_COUNT = "SELECT count(*) FROM holdings WHERE agency = {p} AND NOT released"
_RELEASE = "UPDATE holdings SET released = {yes} WHERE agency = {p} AND NOT released"


def summary(query: Any) -> dict[str, Any]:
    """Schema-level facts from ``query(sql) -> first row``."""
    holdings = query("SELECT count(*) FROM holdings WHERE NOT released")[0]
    row = query("SELECT tree_size FROM log_state WHERE id = 1")
    tree_size = row[0] if row else 0
    row = query("SELECT tree_size, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1")
    return {"live_holdings": holdings, "tree_size": tree_size,
            "checkpoint": row[1] if row else None,
            "checkpoint_tree_size": row[0] if row else 0}


def _sqlite_path(url: str, base: Path) -> Path:
    from .sqlite import BACKEND

    return BACKEND.path(url, base)


def _is_sqlite(url: str) -> bool:
    return backend_for(url).name == "sqlite"


def _one(row: Any) -> Any:
    """The first column of a row a query always returns."""
    assert row is not None
    return row[0]


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# -- one agency's holdings --------------------------------------------------------------


def _agency_sql(url: str, base: Path, template: str, agency: str) -> int:
    if _is_sqlite(url):
        path = _sqlite_path(url, base)
        if not path.exists():
            return 0
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            try:
                cur = conn.execute(template.format(p="?", yes=1), (agency,))
                return cur.fetchone()[0] if cur.description else cur.rowcount
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise ConfigError(f"{path}: {exc}") from None
    import psycopg

    from .postgres import connect_sync

    target = PgTarget.parse(url)
    with connect_sync(target) as pg:
        try:
            pcur = pg.execute(template.format(p="%s", yes="TRUE"), (agency,))
        except psycopg.Error as exc:
            raise ConfigError(target.scrub(f"{target.display}: {_first_line(exc)}")) from None
        return _one(pcur.fetchone()) if pcur.description else pcur.rowcount


def live_holdings(url: str, base: Path, agency: str) -> int:
    return _agency_sql(url, base, _COUNT, agency)


def release_agency(url: str, base: Path, agency: str) -> int:
    """End every live holding of ``agency`` in one statement; how many were live."""
    return _agency_sql(url, base, _RELEASE, agency)


# -- copies ------------------------------------------------------------------------------


def copy_name(url: str) -> str:
    return "registry.db" if _is_sqlite(url) else "registry.dump"


def snapshot(url: str, base: Path, out: Path) -> dict[str, Any]:
    """Copy the registry to the new file ``out`` (mode 0600); its summary and schema."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    if _is_sqlite(url):
        return _snapshot_sqlite(_sqlite_path(url, base), out)
    return _snapshot_postgres(PgTarget.parse(url), out)


def _snapshot_sqlite(src_path: Path, out: Path) -> dict[str, Any]:
    if not src_path.exists():
        raise ConfigError(f"{src_path}: no registry to back up")
    src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(out, isolation_level=None)
    try:
        src.backup(dst)  # one step: a single consistent snapshot of the source
        dst.execute("PRAGMA journal_mode = DELETE")  # the copy is one self-contained file
        dst.execute(FREE_LEASE)
        facts = summary(lambda sql: dst.execute(sql).fetchone())
        return {"backend": "sqlite", "schema_version": sqlite_version(dst), **facts}
    except sqlite3.Error as exc:
        raise ConfigError(f"{src_path}: backup failed: {exc}") from None
    finally:
        dst.close()
        src.close()


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(f"{name} is not installed (Debian: postgresql-client)")
    return path


def _pg_env(target: PgTarget) -> dict[str, str]:
    env = dict(os.environ)
    if target.password is not None:
        env["PGPASSWORD"] = target.password
    return env


def _snapshot_postgres(target: PgTarget, out: Path) -> dict[str, Any]:
    import psycopg

    try:
        with psycopg.connect(target.conninfo, password=target.password, autocommit=True,
                             connect_timeout=10) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            exported = _one(conn.execute("SELECT pg_export_snapshot()").fetchone())
            facts = summary(lambda sql: conn.execute(sql).fetchone())
            version = pg_version(conn)
            proc = subprocess.run(
                [_tool("pg_dump"), "--format=custom", f"--snapshot={exported}",
                 "--no-owner", "--no-privileges", f"--file={out}", "--dbname",
                 target.conninfo],
                env=_pg_env(target), capture_output=True, text=True, check=False)
            conn.execute("COMMIT")
    except psycopg.Error as exc:
        raise ConfigError(target.scrub(f"{target.display}: backup failed: "
                                       f"{_first_line(exc)}")) from None
    if proc.returncode != 0:
        raise ConfigError(target.scrub(f"{target.display}: pg_dump failed: "
                                       f"{proc.stderr.strip()[:500]}"))
    os.chmod(out, 0o600)
    return {"backend": "postgres", "schema_version": version, **facts}


# -- restore -----------------------------------------------------------------------------


def restore(url: str, base: Path, copy: Path, *, replace: bool, stamp: str) -> None:
    """Put ``copy`` in place of the registry ``url`` names, which no server may be using.
    Existing data is refused unless ``replace`` (SQLite keeps it as
    ``*.before-restore-<stamp>``)."""
    if _is_sqlite(url):
        _restore_sqlite(_sqlite_path(url, base), copy, replace=replace, stamp=stamp)
    else:
        _restore_postgres(PgTarget.parse(url), copy, replace=replace)


def _sqlite_in_use(path: Path) -> str | None:
    """Why the registry at ``path`` looks served right now (an unexpired sequencer lease)."""
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            row = conn.execute("SELECT holder, expires_us FROM sequencer_lease "
                               "WHERE id = 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    if row and row[1] > time.time_ns() // 1000:
        return f"server {row[0]} holds the sequencer lease"
    return None


def _restore_sqlite(target: Path, copy: Path, *, replace: bool, stamp: str) -> None:
    busy = _sqlite_in_use(target)
    if busy:
        raise ConfigError(f"{target}: a server is running on this deployment ({busy}); "
                          "stop it before restoring")
    if target.exists():
        if not replace:
            raise ConfigError(f"{target} exists; restore never overwrites data unless told "
                              "(--replace keeps the current file as *.before-restore-*)")
        for suffix in ("", "-wal", "-shm"):
            side = target.with_name(target.name + suffix)
            if side.exists():
                side.rename(side.with_name(f"{side.name}.before-restore-{stamp}"))
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.restoring")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    src = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    dst = sqlite3.connect(tmp, isolation_level=None)
    try:
        if src.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise ConfigError(f"{copy}: fails SQLite's integrity check")
        src.backup(dst)
        dst.execute(FREE_LEASE)
        dst.execute("PRAGMA journal_mode = WAL")
    except sqlite3.Error as exc:
        raise ConfigError(f"{copy}: restore failed: {exc}") from None
    finally:
        dst.close()
        src.close()
    os.replace(tmp, target)


def _restore_postgres(target: PgTarget, dump: Path, *, replace: bool) -> None:
    from .postgres import connect_sync

    with connect_sync(target) as conn:
        tables = _one(conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = "
                              "current_schema()").fetchone())
        rows = 0
        for table in ("holdings", "access_records", "checkpoints"):
            if _one(conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()) is not None:
                rows += _one(conn.execute(f"SELECT count(*) FROM {table}").fetchone())  # noqa: S608
        others = _one(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                              "current_database() AND pid <> pg_backend_pid()").fetchone())
    if others:
        raise ConfigError(f"{target.display}: {others} other sessions are connected; stop "
                          "every server of the deployment before restoring")
    if rows and not replace:
        raise ConfigError(f"{target.display} holds data; restore never overwrites data "
                          "unless told (--replace drops and recreates every table)")
    args = [_tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
            "--single-transaction", "--dbname", target.conninfo]
    if tables:
        args += ["--clean", "--if-exists"]
    proc = subprocess.run([*args, str(dump)], env=_pg_env(target), capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise ConfigError(target.scrub(f"{target.display}: pg_restore failed: "
                                       f"{proc.stderr.strip()[:500]}"))
    with connect_sync(target) as conn:
        conn.execute(FREE_LEASE)
