"""Fixtures for the in-process tests: no server process, no network.

* ``aio`` — an :class:`asyncio.Runner` (one event loop per test, the same machinery as
  :func:`asyncio.run`); call ``aio.run(coro)``.

Numbers, vectors and the other shared helpers: ``from helpers import ...``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest


@pytest.fixture
def aio() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner
