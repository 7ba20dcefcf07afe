"""Edit config.toml in place, keeping the operator's comments and layout (tomlkit), and never
write a file the strict loader would refuse."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.toml_document import TOMLDocument

from ..config import Config, load_config, parse_config
from ..errors import ConfigError
from ..pki import write_private, write_public


def edit_config(path: Path, change: Callable[[TOMLDocument], None], *,
                dry_run: bool = False) -> Config:
    """Apply ``change`` to the parsed document, validate the result, replace the file
    atomically (same mode as before; not with ``dry_run``); return the new configuration."""
    path = path.resolve()
    load_config(path)  # the file as it is must already be valid
    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    except TOMLKitError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    change(doc)
    config = parse_config(path, doc.unwrap())
    if dry_run:
        return config
    text = tomlkit.dumps(doc).encode()
    mode = os.stat(path).st_mode & 0o777
    (write_private if mode & 0o077 == 0 else write_public)(path, text)
    return config


def add_principal(doc: TOMLDocument, name: str, identity: str, roles: list[str]) -> None:
    principals = doc.get("principals")
    if principals is None:
        principals = tomlkit.table(is_super_table=True)
        doc.append("principals", principals)
    entry = tomlkit.table()
    entry["identity"] = identity
    entry["roles"] = roles
    principals.append(name, entry)


def remove_principal(doc: TOMLDocument, name: str) -> None:
    del doc["principals"][name]


def set_revoked(doc: TOMLDocument, relative: str) -> None:
    doc["tls"]["revoked"] = relative
