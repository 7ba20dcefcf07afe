"""``symbolsvc backup`` and ``symbolsvc restore`` (docs/OPERATIONS.md, Back up / Restore).

A backup is a directory: the registry copy (:mod:`symbolsvc.registry.copies` makes it, one
consistent snapshot while the server serves) and ``manifest.json`` (format, backend, schema
version, live holdings, the access log's tree size and latest signed checkpoint, the copy's
SHA-256), both 0600 in a 0700 directory. The manifest is read from the snapshot itself,
so it describes exactly what was copied.

A restore checks the manifest, the copy's SHA-256 and that the latest checkpoint is signed
by this deployment's log key before anything is touched. A backup holds no individual
number (the registry never does) but sealed subjects and the access log: keep it as
confidential as the database. Keys and certificates are not in it; they are backed up
separately (OPERATIONS.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..log.checkpoint import NoteError, verify_note
from ..pki import private_dir, write_private
from ..registry import copies

FORMAT = "symbolsvc-backup/v1"
MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def backup(config: Config, out: Path) -> dict[str, Any]:
    """Copy the registry into the new (or empty) directory ``out``; return the manifest."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not an empty directory; a backup never "
                          "overwrites anything")
    started = dt.datetime.now(dt.UTC)
    url, base = config.storage_url, config.base
    name = copies.copy_name(url)
    facts = copies.snapshot(url, base, private_dir(out) / name)
    manifest = {"format": FORMAT, "started_at": started.isoformat(timespec="seconds"),
                "log_origin": config.log_origin, "file": name, **facts,
                "sha256": _sha256(out / name)}
    write_private(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def read_manifest(src: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{src / MANIFEST}: cannot read the manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ConfigError(f"{src / MANIFEST}: expected format {FORMAT!r}")
    return manifest


def _check(config: Config, src: Path, manifest: dict[str, Any]) -> Path:
    name = copies.copy_name(config.storage_url)
    if manifest.get("file") != name:
        raise ConfigError(f"{src}: a {manifest.get('backend')} backup cannot be restored into "
                          "this deployment's storage")
    copy = src / name
    if not copy.is_file() or _sha256(copy) != manifest.get("sha256"):
        raise ConfigError(f"{copy}: missing or altered (SHA-256 differs from the manifest)")
    note = manifest.get("checkpoint")
    vkey_path = config.tls_ca.parent / "log.vkey"
    if note and vkey_path.exists():
        for vkey in (v for v in vkey_path.read_text().splitlines() if v.strip()):
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


def restore(config: Config, src: Path, *, replace: bool) -> dict[str, Any]:
    """Restore the backup directory ``src`` into this (stopped) deployment."""
    manifest = read_manifest(src)
    copy = _check(config, src, manifest)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    copies.restore(config.storage_url, config.base, copy, replace=replace, stamp=stamp)
    return manifest
