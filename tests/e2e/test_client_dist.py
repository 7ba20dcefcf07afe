"""The client library as its own distribution (clients/): its generated code matches the
protos; it installs into a clean virtual environment without the server and passes its
own tests (clients/tests) against a real server; mypy --strict accepts it."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import StartServer

ROOT = Path(__file__).resolve().parents[2]
CLIENT_V1 = ROOT / "clients" / "symbolsvc_client" / "v1"


def test_client_generated_code_matches_protos(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run([str(ROOT / "scripts" / "gen-proto"), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    fresh = tmp_path / "clients" / "symbolsvc_client" / "v1"
    names = sorted(p.name for p in fresh.iterdir())
    committed = sorted(p.name for p in CLIENT_V1.iterdir()
                       if p.suffix in (".py", ".pyi") and p.name != "__init__.py")
    assert names == committed, "run scripts/gen-proto"
    _, mismatch, errors = filecmp.cmpfiles(fresh, CLIENT_V1, names, shallow=False)
    assert not mismatch and not errors, f"stale client stubs {mismatch + errors}: run " \
                                        "scripts/gen-proto"
    assert "from symbolsvc_client.v1 import" in (CLIENT_V1 / "broker_service_pb2.py").read_text()


@pytest.mark.slow
@pytest.mark.sqlite_only("the client's tests exercise the client, not the registry backend")
def test_client_distribution_in_a_clean_venv(fresh_deployment: Path,
                                             start_server: StartServer,
                                             tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    install = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-c", str(ROOT / "constraints.txt"), f"{ROOT / 'clients'}[test]"],
        capture_output=True, text=True, timeout=600, check=False)
    assert install.returncode == 0, install.stderr[-3000:]
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True).stdout.lower()
    assert "symbolsvc-client==" in listed
    for absent in ("symbolsvc==", "psycopg", "cryptography", "prometheus"):
        assert absent not in listed, f"{absent} was installed with the client"

    server = start_server(fresh_deployment, listen="localhost:0")
    env = {**os.environ, "SYMBOLSVC_CLIENT_TEST_DEPLOYMENT": str(server.directory),
           "SYMBOLSVC_CLIENT_TEST_PORT": str(server.port)}
    env.pop("PYTHONPATH", None)
    tests = subprocess.run([str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            str(ROOT / "clients" / "tests")], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600, check=False)
    assert tests.returncode == 0, tests.stdout[-5000:] + tests.stderr[-2000:]

    mypy = subprocess.run([str(venv / "bin" / "mypy"), "--strict", "symbolsvc_client"],
                          cwd=ROOT / "clients", capture_output=True, text=True, timeout=600,
                          check=False)
    assert mypy.returncode == 0, mypy.stdout[-5000:]
