"""Old import names for in-process tests: a per-test event loop, and the numbers helpers.

New tests use ``from helpers import ...`` (numbers, vectors) and the ``aio`` fixture of
tests/unit/conftest.py; this module stays for tests written against it.

* numbers (:func:`make_number`, :func:`reference_check_digit`, :data:`valid_numbers`, ...)
  — re-exported from :mod:`helpers.numbers`, their one home.
* ``aio`` — an :class:`asyncio.Runner` (one event loop per test, the same machinery as
  :func:`asyncio.run`); call ``aio.run(coro)``. Activated by importing it into the test
  module (``from unit_fixtures import aio``).

The registry's own suite, run on every backend, is tests/registry (its conftest.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

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

__all__ = [
    "VECTORS", "aio", "ascii_digits", "make_number", "number_for", "prefixes",
    "reference_check_digit", "reference_remainder", "valid_numbers",
]


@pytest.fixture
def aio() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner
