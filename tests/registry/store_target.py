"""A fresh registry database for the shared backend suite, reached only through the
product's backend seam (:func:`symbolsvc.registry.backends.backend_for`).

The only backend-specific part is :data:`FRESH`: how to make an empty database, from
the tests' per-backend objects (tests/helpers/backends.py).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.backends import TEST_BACKENDS

from symbolsvc.registry import Registry
from symbolsvc.registry.backends import Backend, Inspector, backend_for

FRESH: dict[str, Callable[[Path], AbstractContextManager[str]]] = {
    name: tb.fresh for name, tb in TEST_BACKENDS.items()}
"""How to make an empty database, per backend (tests/helpers/backends.py)."""


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
