"""The storage seam: one backend object per URL scheme, registered here and nowhere else.

A :class:`Backend` knows everything scheme-specific about a registry database:
how to open it for a server (schema checked, or for SQLite created and
migrated), create it, migrate it, read its schema version, and open a
read-only :class:`Inspector` on it (operators' and tests' look inside). Every
other module asks :func:`backend_for` instead of testing a URL's scheme, so a
new engine is one module and one line in :data:`_SCHEMES`.

Backends are imported on first use: a SQLite deployment never loads psycopg.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from ..errors import ConfigError
from .url import redact_url

if TYPE_CHECKING:
    from . import Registry
    from .migrations import Migration

__all__ = ["Backend", "Inspector", "backend_for", "open_registry"]


class Inspector(Protocol):
    """A read-only SQL connection to a registry, whichever its engine.

    Statements use ``?`` placeholders and SQL every backend accepts (``NOT released``,
    not ``released = 0``); binary values come back as ``bytes``.
    """

    def execute(self, sql: str, params: tuple[Any, ...] = ()
                ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows."""
        ...

    def tables(self) -> list[str]:
        """The registry's table names, sorted."""
        ...

    def close(self) -> None: ...


class Backend(Protocol):
    """Everything scheme-specific about one kind of registry database.

    ``url`` is the ``[storage] url``; ``base`` the directory relative paths in it are
    resolved against (the config file's directory).
    """

    name: str
    """``"sqlite"`` or ``"postgres"``: also the name of its migrations directory."""

    def describe(self, url: str, base: Path) -> str:
        """Where the registry is, for messages (never with a password)."""
        ...

    def open(self, url: str, base: Path) -> Registry:
        """The registry, its schema checked (SQLite: created and migrated)."""
        ...

    def create(self, url: str, base: Path) -> str:
        """Create the database if absent; a one-line report."""
        ...

    def migrate(self, url: str, base: Path) -> list[Migration]:
        """Apply the pending migrations; those applied."""
        ...

    def schema_version(self, url: str, base: Path) -> int:
        """The schema version found (0: none yet)."""
        ...

    def inspect(self, url: str, base: Path) -> Inspector:
        """A read-only connection to the registry."""
        ...


def _sqlite() -> Backend:
    from .sqlite import BACKEND

    return BACKEND


def _postgres() -> Backend:
    from .pg_backend import BACKEND

    return BACKEND


_SCHEMES: dict[str, Callable[[], Backend]] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
}


def backend_for(url: str) -> Backend:
    """The backend serving ``url``'s scheme; ConfigError for any other URL."""
    try:
        scheme = urlsplit(url).scheme
    except ValueError:
        scheme = ""
    factory = _SCHEMES.get(scheme)
    if factory is None:
        raise ConfigError(
            f"[storage] url {redact_url(url)!r}: expected sqlite:PATH or postgresql://..."
        )
    return factory()


def open_registry(url: str, base: Path) -> Registry:
    """The registry ``url`` names, schema checked (SQLite: created and migrated)."""
    return backend_for(url).open(url, base)
