"""The client distribution's own tests run against a real server that someone else
started: ``SYMBOLSVC_CLIENT_TEST_DEPLOYMENT`` (the deployment directory, for the
certificates) and ``SYMBOLSVC_CLIENT_TEST_PORT`` (the server listens on ``localhost:PORT``, i.e. on
both 127.0.0.1 and ::1). The server's own suite (tests/e2e/test_client_dist.py) installs this
distribution into a clean virtual environment and runs these against a server it starts.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest


def check_digit(first_eleven: str) -> int:
    """CONTRACT §6: Q_n = n + 1 (n <= 6), n - 5 (n >= 7), over P11..P1 from the right."""
    total = sum(int(d) * (n + 1 if n <= 6 else n - 5)
                for n, d in enumerate(reversed(first_eleven), start=1))
    r = total % 11
    return 0 if r <= 1 else 11 - r


@pytest.fixture(scope="session")
def deployment_dir() -> Path:
    value = os.environ.get("SYMBOLSVC_CLIENT_TEST_DEPLOYMENT")
    if not value:
        pytest.fail("set SYMBOLSVC_CLIENT_TEST_DEPLOYMENT and SYMBOLSVC_CLIENT_TEST_PORT "
                    "(a running symbolsvc serving that deployment on localhost:PORT)")
    return Path(value)


@pytest.fixture(scope="session")
def port() -> int:
    return int(os.environ["SYMBOLSVC_CLIENT_TEST_PORT"])


@pytest.fixture
def number() -> str:
    eleven = f"{random.randrange(10**10, 10**11):011d}"
    return eleven + str(check_digit(eleven))
