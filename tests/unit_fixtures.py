"""Helpers and fixtures for the network-free unit tests (not the gRPC end-to-end suite).

Import what you need from here; pytest fixtures defined here are activated by
importing them into the test module (``from unit_fixtures import aio``).

* :func:`reference_check_digit` — SPEC §6 written out again from the text, independent
  of :mod:`symbolsvc.numbers`, so the tests do not check the code against itself.
* :data:`valid_numbers` — a hypothesis strategy of valid individual numbers.
* ``aio`` — an :class:`asyncio.Runner` (one event loop per test, the same machinery as
  :func:`asyncio.run`); call ``aio.run(coro)``.

The registry's own suite, run on every backend, is tests/registry (its conftest.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import strategies as st

VECTORS = Path(__file__).parent / "vectors"

def reference_check_digit(first_eleven: str) -> int:
    """SPEC §6, literally: P11..P1 left to right, Q_n = n+1 (n<=6) or n-5 (n>=7)."""
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
