"""Deployments for tests: written by the real ``symbolsvc init``, copied, configured, and
given a registry of their own on either backend.

* :data:`AGENCIES`, :data:`TEST_POLICY` — the agencies and permission table of the
  end-to-end suite's deployments.
* :func:`init_deployment_cli`, :func:`copy_deployment` — a deployment, from the real command
  or as a cheap copy of one without its data.
* :func:`config_with`, :func:`storage_url`, :func:`set_storage_url` — configuration variants.
* :class:`Registries` — an empty registry of its own for each copied deployment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

AGENCIES = ("city-chiyoda", "city-minato", "pension-service", "tax-office")
MUNICIPALITIES = ("city-chiyoda", "city-minato")

# CONTRACT §9's shape: groups, several rules with distinct office works and info items.
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


def init_deployment_cli(directory: Path, agencies: Iterable[str], *extra: str,
                        env: Mapping[str, str] | None = None,
                        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real ``symbolsvc init DIR --agency ...`` command."""
    args = [sys.executable, "-m", "symbolsvc", "init", str(directory)]
    for a in agencies:
        args += ["--agency", a]
    return subprocess.run([*args, *extra], capture_output=True, text=True, timeout=120,
                          check=check, env={**os.environ, **(env or {})})


def copy_deployment(src: Path, dst: Path) -> Path:
    """A copy of a deployment's configuration, keys and PKI, without its data and logs.

    Much cheaper than a second ``symbolsvc init`` for a test that needs a fresh registry.
    """
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("data", "logs", "config.*.toml"))
    (dst / "data").mkdir(exist_ok=True)
    (dst / "logs").mkdir(exist_ok=True)
    return dst


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_toml(doc: Mapping[str, Any], prefix: str = "") -> str:
    """A minimal TOML writer for configuration documents (tables of scalars and lists)."""
    lines: list[str] = []
    scalars = {k: v for k, v in doc.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in doc.items() if isinstance(v, Mapping)}
    if prefix and scalars:
        lines.append(f"[{prefix}]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
    for k, v in tables.items():
        if lines:
            lines.append("")
        lines.append(dump_toml(v, f"{prefix}.{k}" if prefix else k).rstrip("\n"))
    return "\n".join(lines) + "\n"


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def config_with(config: Path, extra: Mapping[str, Mapping[str, Any]] | None,
                name: str = "test") -> Path:
    """``config`` itself when there is nothing to change; else a variant with the ``extra``
    sections merged in, written next to it (so relative paths keep working), e.g.
    ``{"server": {"max_message_bytes": 65536}, "storage": {"url": "postgresql://..."}}``."""
    if not extra:
        return config
    doc = _merge(tomllib.loads(config.read_text()), extra)
    out = config.with_name(f"config.{name}.toml")
    out.write_text(dump_toml(doc))
    return out


def config_file(where: Path) -> Path:
    return where / "config.toml" if where.is_dir() else where


def storage_url(where: Path) -> str:
    """``[storage] url`` of a deployment directory (its config.toml) or of a config file."""
    return str(tomllib.loads(config_file(where).read_text())["storage"]["url"])


def set_storage_url(directory: Path, url: str) -> None:
    """Point a deployment's config.toml at another registry (before a server starts)."""
    config = directory / "config.toml"
    config.write_text(dump_toml(_merge(tomllib.loads(config.read_text()),
                                       {"storage": {"url": url}})))


class Registries:
    """Gives deployment directories registries of their own on ``backend`` (a name in
    :data:`.backends.TEST_BACKENDS`; its ``provision``: nothing for SQLite, whose file the
    server's first start creates; a new migrated PostgreSQL database, its URL written into
    the deployment's config.toml). :meth:`close` drops every database made here.
    """

    def __init__(self, backend: str) -> None:
        from .backends import TEST_BACKENDS

        self.backend = backend
        self._tests = TEST_BACKENDS[backend]
        self._handles: list[str] = []

    def provision(self, directory: Path) -> Path:
        handle = self._tests.provision(directory)
        if handle is not None:
            self._handles.append(handle)
        return directory

    def close(self) -> None:
        for handle in self._handles:
            self._tests.drop(handle)
        self._handles.clear()
