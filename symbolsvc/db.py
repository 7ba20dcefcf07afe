"""``symbolsvc db create | migrate | check``: the registry database's life cycle.

* ``create`` makes the database named by ``[storage] url`` if it does not exist
  (PostgreSQL: ``CREATE DATABASE`` through the server's ``postgres`` database;
  SQLite: the file's directory and the file).
* ``migrate`` applies the pending schema migrations (:mod:`.registry.migrations`).
* ``check`` reports the schema version and whether this symbolsvc runs on it
  (exit status 0 when it does, 1 when not).

What differs between engines is the backend's (:mod:`.registry.backends`). Every
message names the database by its redacted URL, never with a password.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .registry.backends import backend_for
from .registry.migrations import Migration, describe, latest


@dataclass(frozen=True)
class Status:
    backend: str
    where: str  # redacted
    version: int
    latest: int
    ok: bool
    message: str


def create(config: Config) -> str:
    """Create the database if absent; a one-line report."""
    return backend_for(config.storage_url).create(config.storage_url, config.base)


def migrate(config: Config) -> tuple[Status, list[Migration]]:
    """Apply pending migrations; the resulting status and the migrations applied."""
    applied = backend_for(config.storage_url).migrate(config.storage_url, config.base)
    return check(config), applied


def check(config: Config) -> Status:
    """The schema version found and whether this symbolsvc runs on it."""
    url, base = config.storage_url, config.base
    backend = backend_for(url)
    found = backend.schema_version(url, base)
    ok, message = describe(found, backend.name)
    return Status(backend.name, backend.describe(url, base), found, latest(backend.name), ok,
                  message)
