"""Fixtures for the end-to-end suite: real deployments, real server processes, real clients.

Every test under tests/e2e gets these; the helpers they use live in tests/helpers.

* ``backend`` (session) — ``"sqlite"`` or ``"postgres"``: every fixture below that makes a
  deployment depends on it, so every test that starts a real server runs once per registry
  backend (ids ``[sqlite]`` / ``[postgres]``). For "postgres" each deployment gets a fresh
  PostgreSQL database of its own (migrated, written into its config.toml ``[storage] url``,
  dropped at teardown); restarting a server on the same deployment keeps its database.
  Without a reachable PostgreSQL the "postgres" cases skip, saying how to enable them
  (``$SYMBOLSVC_TEST_PG_URL``, tests/helpers/postgres.py). A test that only makes sense
  on SQLite is marked ``@pytest.mark.sqlite_only("why")`` (tests/conftest.py deselects
  its [postgres] case).
* ``deployment_template`` (session) — a directory written once by the real
  ``symbolsvc init`` with :data:`AGENCIES`, and :data:`TEST_POLICY` written over the
  sample permission table. Never served itself: other deployments are copies of it.
* ``registries`` / ``session_registries`` — :class:`Registries` of the test / of the
  session: ``provision(directory)`` gives a copied deployment its own empty registry.
* ``deployment`` (session) — the copy the shared server serves.
* ``fresh_deployment`` — a copy with an empty registry, for a test that damages state
  (kill -9, SIGTERM, policy reloads).
* ``server_extra_config`` (session) — ``{section: {key: value}}`` merged into the config
  of every server the fixtures start (none by default).
* ``start_server`` — a factory: ``start_server(directory, extra_config=None, env=None)``
  starts a :class:`helpers.ServerProcess` and stops (or kills) it after the test.
* ``server`` (session) — the shared server on ``deployment``; ``clients`` (session) —
  :class:`helpers.Clients` for it; ``dep`` — its :class:`symbolsvc_client.Deployment`.
* ``numbers`` (session) — fresh valid individual numbers, distinct across the session.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

# AGENCIES, TEST_POLICY, StartServer, ... are imported here also for tests that still say
# ``from conftest import ...``; new tests import them from helpers.
from helpers import (
    AGENCIES,
    MUNICIPALITIES,
    TEST_POLICY,
    Clients,
    NumberSource,
    Registries,
    ServerProcess,
    StartServer,
    config_with,
    copy_deployment,
    init_deployment_cli,
)
from helpers.backends import TEST_BACKENDS
from symbolsvc_client import Deployment

__all__ = ["AGENCIES", "BACKENDS", "MUNICIPALITIES", "TEST_POLICY", "Registries",
           "StartServer"]

# The registry backends the end-to-end suite runs against (tests/helpers/backends.py).
BACKENDS = sorted(TEST_BACKENDS)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The registry backend of the deployments this test's servers run on."""
    TEST_BACKENDS[request.param].require()  # or skip, saying how to enable
    return str(request.param)


@pytest.fixture(scope="session")
def session_registries(backend: str) -> Iterator[Registries]:
    regs = Registries(backend)
    try:
        yield regs
    finally:
        regs.close()


@pytest.fixture
def registries(backend: str) -> Iterator[Registries]:
    regs = Registries(backend)
    try:
        yield regs
    finally:
        regs.close()


SUITE_LIMITS = """
[limits.roles.agency]
concurrent_calls = 256
streams = 64
rate = 1000000
burst = 1000000
"""


@pytest.fixture(scope="session")
def deployment_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("template") / "dep"
    init_deployment_cli(directory, AGENCIES)
    (directory / "policy.toml").write_text(TEST_POLICY)
    # The suite's bulk loads and crash tests are not about per-principal limits: give
    # agencies room (test_isolation_*.py set the limits they exercise).
    with (directory / "config.toml").open("a") as f:
        f.write(SUITE_LIMITS)
    return directory


@pytest.fixture(scope="session")
def server_extra_config() -> Mapping[str, Mapping[str, Any]]:
    """Configuration merged into every server the fixtures start (none by default)."""
    return {}


def _start(directory: Path, log_dir: Path, name: str,
           extra_config: Mapping[str, Mapping[str, Any]] | None,
           env: Mapping[str, str] | None, **kwargs: Any) -> ServerProcess:
    config = config_with(directory / "config.toml", extra_config, name)
    return ServerProcess(config, log_dir / f"{name}.log", env=env, **kwargs).start()


@pytest.fixture(scope="session")
def deployment(deployment_template: Path, tmp_path_factory: pytest.TempPathFactory,
               session_registries: Registries) -> Path:
    directory = tmp_path_factory.mktemp(f"shared-{session_registries.backend}") / "dep"
    return session_registries.provision(copy_deployment(deployment_template, directory))


@pytest.fixture(scope="session")
def server(deployment: Path, server_extra_config: Mapping[str, Mapping[str, Any]]
           ) -> Iterator[ServerProcess]:
    proc = _start(deployment, deployment.parent, "server", server_extra_config, None)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def dep(deployment: Path) -> Deployment:
    return Deployment(deployment)


@pytest.fixture(scope="session")
def clients(dep: Deployment, server: ServerProcess) -> Iterator[Clients]:
    c = Clients(dep, server.address)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def numbers() -> NumberSource:
    return NumberSource()


@pytest.fixture
def fresh_deployment(deployment_template: Path, tmp_path: Path, registries: Registries) -> Path:
    return registries.provision(copy_deployment(deployment_template, tmp_path / "dep"))


@pytest.fixture
def start_server(tmp_path: Path, server_extra_config: Mapping[str, Mapping[str, Any]],
                 registries: Registries) -> Iterator[StartServer]:
    """``start_server(directory, extra_config=None, env=None, **ServerProcess kwargs)``.

    Depends on ``registries`` so that its servers stop before their databases are dropped."""
    started: list[ServerProcess] = []

    def start(directory: Path, extra_config: Mapping[str, Mapping[str, Any]] | None = None,
              env: Mapping[str, str] | None = None, **kwargs: Any) -> ServerProcess:
        merged = {**server_extra_config}
        for section, values in (extra_config or {}).items():
            merged[section] = {**merged.get(section, {}), **values}
        name = f"server{len(started)}"
        proc = ServerProcess(config_with(directory / "config.toml", merged, name),
                             tmp_path / f"{name}.log", env=env, **kwargs)
        started.append(proc)
        return proc.start()

    try:
        yield start
    finally:
        for proc in started:
            if proc.running:
                try:
                    proc.stop(timeout=20)
                except AssertionError:
                    proc.kill()
