"""Helpers and fixtures for the network-free unit tests (not the gRPC end-to-end suite).

Import what you need from here; pytest fixtures defined here are activated by
importing them into the test module (``from unit_fixtures import aio, registry``).

* :func:`reference_check_digit` — CONTRACT §6 written out again from the text, independent
  of :mod:`symbolsvc.numbers`, so the tests do not check the code against itself.
* :data:`valid_numbers` — a hypothesis strategy of valid individual numbers.
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
from hypothesis import strategies as st

from symbolsvc.registry import Registry

VECTORS = Path(__file__).parent / "vectors"

# Backends the registry conformance suite runs against. "postgres" needs a server
# (tests/postgres_fixtures.py): without one its cases skip, saying how to enable them.
REGISTRY_BACKENDS = ["sqlite", "postgres"]


def reference_check_digit(first_eleven: str) -> int:
    """CONTRACT §6, literally: P11..P1 left to right, Q_n = n+1 (n<=6) or n-5 (n>=7)."""
    assert len(first_eleven) == 11
    total = 0
    for idx, ch in enumerate(first_eleven):
        n = 11 - idx
        q = n + 1 if n <= 6 else n - 5
        total += (ord(ch) - ord("0")) * q
    r = total % 11
    return 0 if r <= 1 else 11 - r


def reference_remainder(first_eleven: str) -> int:
    total = 0
    for idx, ch in enumerate(first_eleven):
        n = 11 - idx
        total += (ord(ch) - ord("0")) * (n + 1 if n <= 6 else n - 5)
    return total % 11


def make_number(first_eleven: str) -> str:
    return first_eleven + str(reference_check_digit(first_eleven))


ascii_digits = st.sampled_from("0123456789")
prefixes = st.text(alphabet="0123456789", min_size=11, max_size=11)
valid_numbers = prefixes.map(make_number)


def number_for(i: int) -> str:
    """A deterministic valid number for index i (distinct for distinct i < 10**11)."""
    return make_number(f"{i:011d}")


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
        from postgres_fixtures import ThrowawayPgRegistry, require_postgres

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
