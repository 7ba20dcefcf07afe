"""A fresh registry database for the shared backend suite, reached only through the
product's backend seam (:func:`symbolsvc.registry.backends.backend_for`).

The only backend-specific lines are :data:`FRESH`: how to make an empty database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from postgres_fixtures import fresh_database, require_postgres

from symbolsvc.registry import Registry
from symbolsvc.registry.backends import Backend, Inspector, backend_for


@contextmanager
def _fresh_sqlite(tmp: Path) -> Iterator[str]:
    yield "sqlite:registry.db"  # relative to the deployment base, like a real config


@contextmanager
def _fresh_postgres(tmp: Path) -> Iterator[str]:
    require_postgres()
    with fresh_database() as url:
        yield url


FRESH: dict[str, Callable[[Path], AbstractContextManager[str]]] = {
    "sqlite": _fresh_sqlite,
    "postgres": _fresh_postgres,
}


@dataclass(frozen=True)
class Target:
    """A fresh registry database: its URL, the base its relative paths resolve against."""

    url: str
    base: Path

    @property
    def backend(self) -> Backend:
        return backend_for(self.url)

    def open(self) -> Registry:
        return self.backend.open(self.url, self.base)

    def inspect(self) -> Inspector:
        return self.backend.inspect(self.url, self.base)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only statement (``?`` placeholders)."""
        db = self.inspect()
        try:
            return db.execute(sql, params)[1]
        finally:
            db.close()
