"""Fixtures for the pytest-benchmark suites (``python -m pytest bench``)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.load import nth_number
from symbolsvc.keys import Keyring
from symbolsvc.symbols import Deriver


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    lp = asyncio.new_event_loop()
    yield lp
    lp.close()


@pytest.fixture(scope="session")
def deriver() -> Deriver:
    return Deriver(Keyring.generate())


class NumberSource:
    """Valid individual numbers, never repeated within a session."""

    def __init__(self) -> None:
        self._next = random.randrange(10**10)

    def take(self, n: int) -> list[str]:
        start = self._next
        self._next += n
        return [nth_number(i) for i in range(start, start + n)]


@pytest.fixture(scope="session")
def numbers() -> NumberSource:
    return NumberSource()


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(
        '[groups]\nagencies = ["city-chiyoda", "city-minato", "pension-service"]\n\n'
        '[[allow]]\nrequester = "@agencies"\noffice_work = "demo-exchange"\n'
        'info_item = "demo-record"\nproviders = ["@agencies"]\n'
    )
    return path
