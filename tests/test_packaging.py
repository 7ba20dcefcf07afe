"""Packaging: the server's wheel holds only ``symbolsvc`` (no bench, no tests, no client),
the client's only ``symbolsvc_client`` with its generated code and ``py.typed``; both
carry an SPDX license expression and the license file; psycopg is an extra."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _wheel(source: Path, out: Path) -> zipfile.ZipFile:
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--disable-pip-version-check", "-w", str(out), str(source)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    return zipfile.ZipFile(wheel)


def _metadata(whl: zipfile.ZipFile) -> tuple[set[str], dict[str, list[str]]]:
    tops = {n.split("/", 1)[0] for n in whl.namelist() if ".dist-info" not in n}
    name = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
    msg = Parser().parsestr(whl.read(name).decode())
    return tops, {k: msg.get_all(k) or [] for k in set(msg.keys())}


@pytest.mark.slow
def test_server_wheel(tmp_path: Path) -> None:
    whl = _wheel(ROOT, tmp_path)
    tops, meta = _metadata(whl)
    assert tops == {"symbolsvc"}
    assert meta["License-Expression"] == ["Apache-2.0"]
    assert any(n.endswith("licenses/LICENSE") for n in whl.namelist())
    requires = meta["Requires-Dist"]
    assert all("extra ==" in r for r in requires if r.startswith("psycopg"))
    runtime = [r for r in requires if "extra ==" not in r]
    assert runtime and not any("==" in r for r in runtime)  # ranges, not pins
    assert "symbolsvc/py.typed" in whl.namelist()


@pytest.mark.slow
def test_client_wheel(tmp_path: Path) -> None:
    whl = _wheel(ROOT / "clients", tmp_path)
    tops, meta = _metadata(whl)
    assert tops == {"symbolsvc_client"}
    assert meta["License-Expression"] == ["Apache-2.0"]
    names = set(whl.namelist())
    assert {"symbolsvc_client/py.typed", "symbolsvc_client/v1/broker_service_pb2.py",
            "symbolsvc_client/v1/broker_service_pb2.pyi"} <= names
    deps = {re.split(r"[<>=!~;\s]", r, maxsplit=1)[0] for r in meta["Requires-Dist"]
            if "extra ==" not in r}
    assert deps == {"grpcio", "grpcio-status", "grpcio-health-checking", "protobuf"}
