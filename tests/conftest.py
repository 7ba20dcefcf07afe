"""Fixtures for the end-to-end suite: real deployments, real server processes, real clients.

* ``backend`` (session) — ``"sqlite"`` or ``"postgres"``: every fixture below that makes a
  deployment depends on it, so every test that starts a real server runs once per registry
  backend (ids ``[sqlite]`` / ``[postgres]``). For "postgres" each deployment gets a fresh
  PostgreSQL database of its own (migrated, written into its config.toml ``[storage] url``,
  dropped at teardown); restarting a server on the same deployment keeps its database.
  Without a reachable PostgreSQL the "postgres" cases skip, saying how to enable them
  (``$SYMBOLSVC_TEST_PG_URL``, tests/postgres_fixtures.py). A test that only makes sense
  on SQLite is marked ``@pytest.mark.sqlite_only("why")``.
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

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    Clients,
    NumberSource,
    ServerProcess,
    config_with,
    copy_deployment,
    init_deployment_cli,
    set_storage_url,
)
from postgres_fixtures import create_database, drop_database, require_postgres
from symbolsvc_client import Deployment

AGENCIES = ("city-chiyoda", "city-minato", "pension-service", "tax-office")
MUNICIPALITIES = ("city-chiyoda", "city-minato")

# SPEC §9's shape: groups, several rules with distinct office works and info items.
#
#  requester         office work         info item             providers
#  pension-service   survivor-pension    resident-tax-income   city-chiyoda, city-minato
#  city-chiyoda      resident-tax        national-tax-income   tax-office
#  tax-office        tax-investigation   resident-record       city-chiyoda
#  city-chiyoda      child-allowance     pension-status        pension-service
#  city-minato       child-allowance     pension-status        pension-service
TEST_POLICY = """\
[groups]
municipalities = ["city-chiyoda", "city-minato"]

[[allow]]
requester   = "pension-service"
office_work = "survivor-pension"
info_item   = "resident-tax-income"
providers   = ["@municipalities"]

[[allow]]
requester   = "city-chiyoda"
office_work = "resident-tax"
info_item   = "national-tax-income"
providers   = ["tax-office"]

[[allow]]
requester   = "tax-office"
office_work = "tax-investigation"
info_item   = "resident-record"
providers   = ["city-chiyoda"]

[[allow]]
requester   = "@municipalities"
office_work = "child-allowance"
info_item   = "pension-status"
providers   = ["pension-service"]
"""

SUITE_LIMITS = """
[limits.roles.agency]
concurrent_calls = 256
streams = 64
rate = 1000000
burst = 1000000
"""

StartServer = Callable[..., ServerProcess]

# The registry backends the end-to-end suite runs against.
BACKENDS = ["sqlite", "postgres"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(reason): the test inspects what only the SQLite backend has "
        "(its files, its copies); its [postgres] case is deselected")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A ``sqlite_only`` test's [postgres] case does not exist: it is deselected, not skipped,
    so that a skip always means something that should have run did not."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        if (item.get_closest_marker("sqlite_only") is not None and callspec is not None
                and callspec.params.get("backend") == "postgres"):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


_SKIPPED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With ``SYMBOLSVC_NO_SKIPS=1`` (CI), any skipped test fails the run: CI installs
    everything the suite needs, so a skip there means a test silently did not run."""
    if os.environ.get("SYMBOLSVC_NO_SKIPS") == "1" and _SKIPPED:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"SYMBOLSVC_NO_SKIPS=1 but {len(_SKIPPED)} test(s) skipped: "
                                + ", ".join(_SKIPPED[:20]), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The registry backend of the deployments this test's servers run on."""
    if request.param == "postgres":
        require_postgres()  # or skip, saying how to enable
    return str(request.param)


class Registries:
    """Gives deployment directories registries of their own on ``backend``.

    SQLite needs nothing: the file (data/registry.db) is created by the server's first
    start. PostgreSQL: a new database, migrated, its URL written into the deployment's
    config.toml; :meth:`close` drops every database made here.
    """

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._databases: list[str] = []

    def provision(self, directory: Path) -> Path:
        if self.backend == "postgres":
            name, url = create_database()
            self._databases.append(name)
            set_storage_url(directory, url)
        return directory

    def close(self) -> None:
        for name in self._databases:
            drop_database(name)  # WITH (FORCE): a server killed mid-test may hold sessions
        self._databases.clear()


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


@pytest.fixture(scope="session")
def deployment_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("template") / "dep"
    init_deployment_cli(directory, AGENCIES)
    (directory / "policy.toml").write_text(TEST_POLICY)
    # The suite's bulk loads and crash tests are not about per-principal limits: give
    # agencies room (tests/test_isolation_*.py set the limits they exercise).
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
