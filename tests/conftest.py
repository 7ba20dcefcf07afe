"""What every test directory shares: the import path, markers, and the rule that CI runs
everything.

* tests/ is on ``sys.path`` (pytest puts a root conftest's directory there), so
  ``from helpers import ...`` works in tests/unit, tests/e2e and any other directory.
* ``@pytest.mark.sqlite_only("why")``: the test inspects what only the SQLite backend has
  (a registry in one file); its cases on backends without one (``single_file`` false in
  tests/helpers/backends.py: ``[postgres]``) are deselected, not skipped.
* With ``SYMBOLSVC_NO_SKIPS=1`` (CI) any skipped test fails the run.

Fixtures live with the tests that use them: tests/unit/conftest.py (in-process),
tests/e2e/conftest.py (real servers over mTLS).
"""

from __future__ import annotations

import os

import pytest

# Names older tests import from ``conftest``; they live in helpers now.
from helpers import AGENCIES, MUNICIPALITIES, TEST_POLICY, Registries, StartServer
from helpers.backends import TEST_BACKENDS

__all__ = ["AGENCIES", "MUNICIPALITIES", "TEST_POLICY", "Registries", "StartServer"]

collect_ignore = ["helpers", "vectors"]


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
                and "backend" in callspec.params
                and not TEST_BACKENDS[callspec.params["backend"]].single_file):
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
