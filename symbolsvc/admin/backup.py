"""``symbolsvc backup`` and ``symbolsvc restore`` (docs/OPERATIONS.md, Back up / Restore).

A backup is a directory: the database copy and ``manifest.json`` (format, backend, schema
version, holdings, the access log's tree size and latest signed checkpoint, the copy's
SHA-256), both 0600 in a 0700 directory. The manifest is read from the copy itself, so it
describes exactly what was copied.

* SQLite: the online backup API (``sqlite3.Connection.backup``) copies a consistent
  snapshot while the server keeps serving; WAL lets writers go on meanwhile.
* PostgreSQL: ``pg_dump --format=custom`` under a snapshot exported by the transaction that
  reads the manifest (``pg_export_snapshot``), so dump and manifest agree; ``pg_restore``
  into the configured, empty database restores it.

A backup holds no individual number (the registry never does) but sealed subjects and the
access log: keep it as confidential as the database. Keys and certificates are not in it;
they are backed up separately (OPERATIONS.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..log.checkpoint import NoteError, verify_note
from ..pki import private_dir, write_private
from ..registry.migrations import sqlite_version
from ..registry.open import PgTarget, backend_of

FORMAT = "symbolsvc-backup/v1"
SQLITE_FILE = "registry.db"
PG_FILE = "registry.dump"
MANIFEST = "manifest.json"
# The serving process's sequencer lease means nothing in a copy: a restored server takes
# the lease at once instead of waiting for a holder that is not there.
_FREE_LEASE = "UPDATE sequencer_lease SET expires_us = 0"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _summary(query: Any) -> dict[str, Any]:
    """Schema-level facts from a connection's ``query(sql) -> first row``."""
    holdings = query("SELECT count(*) FROM holdings WHERE NOT released")[0]
    row = query("SELECT tree_size FROM log_state WHERE id = 1")
    tree_size = row[0] if row else 0
    row = query("SELECT tree_size, note FROM checkpoints ORDER BY tree_size DESC LIMIT 1")
    return {"live_holdings": holdings, "tree_size": tree_size,
            "checkpoint": row[1] if row else None,
            "checkpoint_tree_size": row[0] if row else 0}


def _prepare_out(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not an empty directory; a backup never "
                          "overwrites anything")
    return private_dir(out)


def backup(config: Config, out: Path) -> dict[str, Any]:
    """Copy the registry into the new directory ``out``; return the manifest."""
    out = _prepare_out(out)
    started = dt.datetime.now(dt.UTC)
    if backend_of(config.storage_url) == "sqlite":
        manifest = _backup_sqlite(config, out)
    else:
        manifest = _backup_postgres(config, out)
    manifest = {"format": FORMAT, "started_at": started.isoformat(timespec="seconds"),
                "log_origin": config.log_origin, **manifest}
    write_private(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def _backup_sqlite(config: Config, out: Path) -> dict[str, Any]:
    src_path = config.sqlite_path()
    if not src_path.exists():
        raise ConfigError(f"{src_path}: no registry to back up")
    dst_path = out / SQLITE_FILE
    fd = os.open(dst_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    src = sqlite3.connect(f"file:{src_path}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(dst_path, isolation_level=None)
    try:
        src.backup(dst)  # one step: a single consistent snapshot of the source
        dst.execute("PRAGMA journal_mode = DELETE")  # the copy is one self-contained file
        dst.execute(_FREE_LEASE)
        summary = _summary(lambda sql: dst.execute(sql).fetchone())
        version = sqlite_version(dst)
    except sqlite3.Error as exc:
        raise ConfigError(f"{src_path}: backup failed: {exc}") from None
    finally:
        dst.close()
        src.close()
    return {"backend": "sqlite", "file": SQLITE_FILE, "schema_version": version, **summary,
            "sha256": _sha256(dst_path)}


def _pg_env(target: PgTarget) -> dict[str, str]:
    env = dict(os.environ)
    if target.password is not None:
        env["PGPASSWORD"] = target.password
    return env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(f"{name} is not installed (Debian: postgresql-client)")
    return path


def _backup_postgres(config: Config, out: Path) -> dict[str, Any]:
    import psycopg

    from ..registry.migrations import pg_version

    target = PgTarget.parse(config.storage_url)
    dump = out / PG_FILE
    try:
        with psycopg.connect(target.conninfo, password=target.password, autocommit=True,
                             connect_timeout=10) as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
            summary = _summary(lambda sql: conn.execute(sql).fetchone())
            version = pg_version(conn)
            proc = subprocess.run(
                [_tool("pg_dump"), "--format=custom", f"--snapshot={snapshot}",
                 "--no-owner", "--no-privileges", f"--file={dump}", "--dbname",
                 target.conninfo],
                env=_pg_env(target), capture_output=True, text=True, check=False)
            conn.execute("COMMIT")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(target.scrub(f"{target.display}: backup failed: {first}")) from None
    if proc.returncode != 0:
        raise ConfigError(target.scrub(f"{target.display}: pg_dump failed: "
                                       f"{proc.stderr.strip()[:500]}"))
    os.chmod(dump, 0o600)
    return {"backend": "postgres", "file": PG_FILE, "schema_version": version, **summary,
            "sha256": _sha256(dump)}


# -- restore ----------------------------------------------------------------------------


def read_manifest(src: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{src / MANIFEST}: cannot read the manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{src / MANIFEST}: expected format {FORMAT!r}")
    return manifest


def _check(config: Config, src: Path, manifest: dict[str, Any], backend: str) -> Path:
    if manifest.get("backend") != backend:
        raise ConfigError(f"{src}: a {manifest.get('backend')} backup cannot be restored into "
                          f"this {backend} deployment")
    copy = src / str(manifest.get("file"))
    if not copy.is_file() or _sha256(copy) != manifest.get("sha256"):
        raise ConfigError(f"{copy}: missing or altered (SHA-256 differs from the manifest)")
    note = manifest.get("checkpoint")
    vkey_path = config.tls_ca.parent / "log.vkey"
    if note and vkey_path.exists():
        vkeys = [v for v in vkey_path.read_text().splitlines() if v.strip()]
        for vkey in vkeys:
            try:
                verify_note(note, vkey)
                break
            except (NoteError, ValueError):
                continue
        else:
            raise ConfigError(f"{src}: its latest checkpoint is not signed by this "
                              f"deployment's log key ({vkey_path}): a backup of another "
                              "deployment?")
    return copy


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


def restore(config: Config, src: Path, *, replace: bool) -> dict[str, Any]:
    """Restore the backup directory ``src`` into this (stopped) deployment."""
    manifest = read_manifest(src)
    backend = backend_of(config.storage_url)
    copy = _check(config, src, manifest, backend)
    if backend == "postgres":
        _restore_postgres(config, copy, replace=replace)
        return manifest
    target = config.sqlite_path()
    busy = _sqlite_in_use(target)
    if busy:
        raise ConfigError(f"{target}: a server is running on this deployment ({busy}); "
                          "stop it before restoring")
    if target.exists():
        if not replace:
            raise ConfigError(f"{target} exists; restore never overwrites data unless told "
                              "(--replace keeps the current file as *.before-restore)")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        target.rename(target.with_name(f"{target.name}.before-restore-{stamp}"))
        for suffix in ("-wal", "-shm"):
            side = target.with_name(target.name + suffix)
            if side.exists():
                side.rename(side.with_name(f"{side.name}.before-restore-{stamp}"))
    private_dir(target.parent)
    tmp = target.with_name(f".{target.name}.restoring")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    src_conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    dst = sqlite3.connect(tmp, isolation_level=None)
    try:
        if src_conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise ConfigError(f"{copy}: fails SQLite's integrity check")
        src_conn.backup(dst)
        dst.execute(_FREE_LEASE)
        dst.execute("PRAGMA journal_mode = WAL")
    finally:
        dst.close()
        src_conn.close()
    os.replace(tmp, target)
    return manifest


def _restore_postgres(config: Config, dump: Path, *, replace: bool) -> None:
    from ..registry.postgres import connect_sync

    target = PgTarget.parse(config.storage_url)
    with connect_sync(target) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = "
                              "current_schema()").fetchone()[0]
        rows = 0
        for table in ("holdings", "access_records", "checkpoints"):
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None:
                rows += conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
        others = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                              "current_database() AND pid <> pg_backend_pid()").fetchone()[0]
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
        conn.execute(_FREE_LEASE)
