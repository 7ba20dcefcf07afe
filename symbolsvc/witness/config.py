"""witness.toml: a witness's own configuration (docs/WITNESS.md), strict like config.toml.

Keys (paths relative to the file's directory)::

    name = "witness.example/w1"     # the cosigner name (key name of its lines)
    key = "witness.key"             # PRIVATE+KEY+name+hash+base64(0x01 || seed), 0600
    state = "witness.db"            # SQLite: the last cosigned checkpoint per log
    listen = "127.0.0.1:8710"
    tls_cert = "" ; tls_key = ""    # optional: serve HTTPS
    max_body_bytes = 65536

    [[log]]
    origin = "symbolsvc.local/access-log"
    vkeys = ["symbolsvc.local/access-log+abcd1234+AQ..."]
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import ConfigError
from ..hostlimits import check_secret_modes
from ..log.checkpoint import NoteError, VerifierKey, parse_signer_key, parse_vkey

_KEYS: dict[str, tuple[type, object]] = {
    "name": (str, None), "key": (str, None), "state": (str, None),
    "listen": (str, "127.0.0.1:8710"), "tls_cert": (str, ""), "tls_key": (str, ""),
    "max_body_bytes": (int, 65536), "log": (list, None),
}
_LOG_KEYS = {"origin": str, "vkeys": list}


@dataclass(frozen=True)
class WitnessConfig:
    path: Path
    name: str
    private_key: Ed25519PrivateKey
    state: Path
    host: str
    port: int
    tls_cert: Path | None
    tls_key: Path | None
    max_body_bytes: int
    logs: dict[str, tuple[VerifierKey, ...]]  # origin -> the log's note keys


def _fail(path: Path, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message}")


def load_witness_config(path: Path) -> WitnessConfig:
    """Read and validate ``witness.toml``; raise :class:`ConfigError` naming the key."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise _fail(path, f"cannot read: {exc}") from None
    for key, value in data.items():
        if key not in _KEYS:
            raise _fail(path, f"unknown key {key!r} (known: {', '.join(sorted(_KEYS))})")
        kind = _KEYS[key][0]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _fail(path, f"{key} must be {kind.__name__}")
    values = {k: data.get(k, default) for k, (_, default) in _KEYS.items()}
    for key in ("name", "key", "state", "log"):
        if values[key] is None:
            raise _fail(path, f"{key} is required")
    base = path.parent
    check_secret_modes([base / values["key"]])  # the witness key: 0600, like the log's
    try:
        name, private_key = parse_signer_key(
            (base / values["key"]).read_text(encoding="ascii").strip())
    except (OSError, UnicodeDecodeError, NoteError) as exc:
        raise _fail(path, f"key: cannot load the witness key: {exc}") from None
    if name != values["name"]:
        raise _fail(path, f"key is for {name!r}, not the configured name {values['name']!r}")
    host, sep, port = str(values["listen"]).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise _fail(path, "listen must be HOST:PORT")
    if not 256 <= values["max_body_bytes"] <= 16 * 1024 * 1024:
        raise _fail(path, "max_body_bytes must be from 256 to 16777216")
    tls = (values["tls_cert"], values["tls_key"])
    if bool(tls[0]) != bool(tls[1]):
        raise _fail(path, "tls_cert and tls_key go together")
    return WitnessConfig(
        path=path, name=name, private_key=private_key, state=base / values["state"],
        host=host.strip("[]") or "127.0.0.1", port=int(port),
        tls_cert=base / tls[0] if tls[0] else None, tls_key=base / tls[1] if tls[1] else None,
        max_body_bytes=values["max_body_bytes"], logs=_logs(path, values["log"]))


def _logs(path: Path, tables: list[Any]) -> dict[str, tuple[VerifierKey, ...]]:
    logs: dict[str, tuple[VerifierKey, ...]] = {}
    for i, table in enumerate(tables):
        where = f"log[{i}]"
        if not isinstance(table, dict):
            raise _fail(path, f"{where} must be a table")
        for key, value in table.items():
            if key not in _LOG_KEYS or not isinstance(value, _LOG_KEYS[key]):
                raise _fail(path, f"{where}.{key}: unknown key or wrong type "
                            "(origin: string, vkeys: list of strings)")
        origin, vkeys = table.get("origin"), table.get("vkeys")
        if not origin or not vkeys:
            raise _fail(path, f"{where} needs origin and vkeys")
        if origin in logs:
            raise _fail(path, f"{where}: origin {origin!r} appears twice")
        try:
            logs[origin] = tuple(parse_vkey(v) for v in vkeys)
        except NoteError as exc:
            raise _fail(path, f"{where}.vkeys: {exc}") from None
    return logs
