"""The shared backend suite: every test here runs on SQLite AND on PostgreSQL.

One fixture is parameterised over the backends: ``target`` (ids ``[sqlite]`` /
``[postgres]``), a fresh, empty, migrated registry database named by its storage URL.
Everything else is derived from it and goes through the product's own backend seam
(:func:`symbolsvc.registry.backends.backend_for`): ``target.open()`` is a registry
as a server opens it (call it twice for two replicas on one database),
``target.inspect()`` a read-only SQL look inside. ``registry`` is ``target.open()``
closed after the test; ``aio`` one event loop per test.

The only backend-specific part is ``FRESH`` (tests/registry/store_target.py): how to
make an empty database, taken from tests/helpers/backends.py.
Without a reachable PostgreSQL the [postgres] cases skip, saying how to enable them
(tests/helpers/postgres.py); CI sets ``SYMBOLSVC_REQUIRE_PG=1`` so they fail instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry.store_target import FRESH, Target
from symbolsvc.registry import Registry


@pytest.fixture(params=sorted(FRESH))
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    with FRESH[request.param](tmp_path) as url:
        yield Target(url, tmp_path)


@pytest.fixture
def aio() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture
def registry(target: Target, aio: asyncio.Runner) -> Iterator[Registry]:
    reg = target.open()
    try:
        yield reg
    finally:
        aio.run(reg.close())
