"""The contributor rules CI enforces (CONTRIBUTING.md): ``ruff check`` and ``mypy`` are clean.

Both run as subprocesses of the test virtual environment's interpreter, from the repository
root, with the configuration in pyproject.toml; a finding fails the test and is printed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, check=False)


def test_ruff_check_is_clean() -> None:
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, f"ruff check found problems:\n{result.stdout}{result.stderr}"


def test_mypy_is_clean() -> None:
    # No path arguments: [tool.mypy] files names symbolsvc and clients/symbolsvc_client.
    result = _run("mypy")
    assert result.returncode == 0, f"mypy found problems:\n{result.stdout}{result.stderr}"
    assert "Success: no issues found" in result.stdout
