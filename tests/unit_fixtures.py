"""The registry conformance fixture and a per-test event loop, for in-process tests.

Import what you need from here; pytest fixtures defined here are activated by
importing them into the test module (``from unit_fixtures import aio, registry``).

* numbers (:func:`make_number`, :func:`reference_check_digit`, :data:`valid_numbers`, ...)
  — re-exported from :mod:`helpers.numbers`, their one home.
* ``aio`` — an :class:`asyncio.Runner` (one event loop per test, the same machinery as
  :func:`asyncio.run`); call ``aio.run(coro)``.
* ``registry`` — the registry conformance fixture, parameterised over backends. All
  backend-specific set-up lives in :func:`open_registry`; adding a backend means adding
  its name to :data:`REGISTRY_BACKENDS` and a branch there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import VECTORS
from helpers.numbers import (
    ascii_digits,
    make_number,
    number_for,
    prefixes,
    reference_check_digit,
    reference_remainder,
    valid_numbers,
)

from symbolsvc.registry import Registry

__all__ = [
    "REGISTRY_BACKENDS", "VECTORS", "aio", "ascii_digits", "make_number", "number_for",
    "open_registry", "prefixes", "reference_check_digit", "reference_remainder", "registry",
    "valid_numbers",
]

# Backends the registry conformance suite runs against. "postgres" needs a server
# (tests/helpers/postgres.py): without one its cases skip, saying how to enable them.
REGISTRY_BACKENDS = ["sqlite", "postgres"]


@pytest.fixture
def aio() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


async def open_registry(kind: str, tmp_path: Path) -> Registry:
    """Create an empty registry of the given backend; everything backend-specific is here."""
    if kind == "sqlite":
        from symbolsvc.registry.sqlite import SqliteRegistry

        return SqliteRegistry(tmp_path / "registry.sqlite3")
    if kind == "postgres":
        from helpers.postgres import ThrowawayPgRegistry, require_postgres

        require_postgres()
        return ThrowawayPgRegistry()  # a fresh database, dropped by close()
    raise AssertionError(f"no test set-up for registry backend {kind!r}")


@pytest.fixture(params=REGISTRY_BACKENDS)
def registry(request: pytest.FixtureRequest, aio: asyncio.Runner, tmp_path: Path) -> Iterator[
    Registry
]:
    reg = aio.run(open_registry(request.param, tmp_path))
    try:
        yield reg
    finally:
        aio.run(reg.close())
