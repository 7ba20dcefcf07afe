"""config.toml: the deployment's configuration (docs/CONFIG.md is the reference).

Paths in the file are relative to the file's directory. Principals map a
certificate identity (a SPIFFE-style URI SAN) to a name and roles; an
agency's ID is its principal name.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .policy import is_ident
from .server_options import ConnectionLimits

ROLES = frozenset({"agency", "broker", "portal", "auditor"})
DEFAULT_LISTEN = "127.0.0.1:50051"


@dataclass(frozen=True)
class Principal:
    name: str
    identity: str
    roles: frozenset[str]


@dataclass(frozen=True)
class Config:
    path: Path
    listen: str
    health_listen: str
    metrics_listen: str
    max_concurrent_rpcs: int
    max_message_bytes: int
    grace_seconds: float
    tls_ca: Path
    tls_cert: Path
    tls_key: Path
    storage_url: str
    keyring: Path
    passphrase_file: Path | None
    passphrase_env: str
    policy_file: Path
    log_origin: str
    security_log: Path | None
    principals: dict[str, Principal] = field(default_factory=dict)
    # The access log's sequencer (docs/ACCESS_LOG.md): integrate every
    # log_integrate_interval_ms up to log_integrate_batch records; the sequencer
    # lease lasts log_lease_ms without renewal.
    log_integrate_interval_ms: int = 200
    log_integrate_batch: int = 10_000
    log_lease_ms: int = 5_000
    # Observability (docs/OBSERVABILITY.md): the server log's format ("json" or "text");
    # OpenTelemetry tracing, off unless [tracing] otlp_endpoint is set.
    log_format: str = "json"
    otlp_endpoint: str = ""
    trace_service_name: str = "symbolsvc"
    # HTTP/2 and connection limits of the gRPC server (server_options.py).
    connection_limits: ConnectionLimits = field(default_factory=ConnectionLimits)

    @property
    def base(self) -> Path:
        return self.path.parent

    def by_identity(self) -> dict[str, Principal]:
        return {p.identity: p for p in self.principals.values()}

    def sqlite_path(self) -> Path:
        """The registry file of a ``sqlite:PATH`` storage URL."""
        if not self.storage_url.startswith("sqlite:"):
            raise ConfigError(f"{self.path}: [storage] url must start with 'sqlite:'")
        return self.base / self.storage_url.removeprefix("sqlite:").removeprefix("//")


def load_config(path: Path) -> Config:
    path = path.resolve()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    base = path.parent

    def section(name: str) -> dict:
        value = doc.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        return value

    def req(sec: dict, key: str, where: str) -> str:
        value = sec.get(key)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{path}: [{where}] {key} is required (a non-empty string)")
        return value

    server, tls, storage = section("server"), section("tls"), section("storage")
    keys, policy, access_log = section("keys"), section("policy"), section("access_log")
    tracing = section("tracing")
    log_format = str(server.get("log_format", "json"))
    if log_format not in ("json", "text"):
        raise ConfigError(f"{path}: [server] log_format must be \"json\" or \"text\"")
    principals: dict[str, Principal] = {}
    for name, p in section("principals").items():
        if not is_ident(name) or not isinstance(p, dict):
            raise ConfigError(f"{path}: principal {name!r}: invalid name or not a table")
        identity = req(p, "identity", f"principals.{name}")
        roles = p.get("roles", [])
        if not isinstance(roles, list) or not roles or not set(roles) <= ROLES:
            raise ConfigError(
                f"{path}: principals.{name}.roles must be a non-empty subset of {sorted(ROLES)}"
            )
        principals[name] = Principal(name, identity, frozenset(roles))
    identities = [p.identity for p in principals.values()]
    if len(set(identities)) != len(identities):
        raise ConfigError(f"{path}: two principals share one identity")
    passphrase_file = keys.get("passphrase_file")
    security_log = access_log.get("security_log")

    def positive(sec: dict, key: str, where: str, default: int) -> int:
        value = sec.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{path}: [{where}] {key} must be a positive integer")
        return value

    interval_ms = positive(access_log, "integrate_interval_ms", "access_log", 200)
    batch = positive(access_log, "integrate_batch", "access_log", 10_000)
    lease_ms = positive(access_log, "lease_ms", "access_log", 5_000)
    if lease_ms < 2 * interval_ms:
        raise ConfigError(f"{path}: [access_log] lease_ms must be at least twice "
                          "integrate_interval_ms, or the sequencer loses its lease between steps")
    return Config(
        path=path,
        listen=str(server.get("listen", DEFAULT_LISTEN)),
        health_listen=str(server.get("health_listen", "")),
        metrics_listen=str(server.get("metrics_listen", "")),
        max_concurrent_rpcs=int(server.get("max_concurrent_rpcs", 2000)),
        max_message_bytes=int(server.get("max_message_bytes", 4 * 1024 * 1024)),
        grace_seconds=float(server.get("grace_seconds", 10)),
        tls_ca=base / req(tls, "ca", "tls"),
        tls_cert=base / req(tls, "cert", "tls"),
        tls_key=base / req(tls, "key", "tls"),
        storage_url=req(storage, "url", "storage"),
        keyring=base / req(keys, "keyring", "keys"),
        passphrase_file=base / passphrase_file if passphrase_file else None,
        passphrase_env=str(keys.get("passphrase_env", "SYMBOLSVC_PASSPHRASE")),
        policy_file=base / req(policy, "file", "policy"),
        log_origin=str(access_log.get("origin", "symbolsvc.local/access-log")),
        security_log=base / security_log if security_log else None,
        principals=principals,
        log_integrate_interval_ms=interval_ms,
        log_integrate_batch=batch,
        log_lease_ms=lease_ms,
        log_format=log_format,
        otlp_endpoint=str(tracing.get("otlp_endpoint", "")),
        trace_service_name=str(tracing.get("service_name", "symbolsvc")),
        connection_limits=ConnectionLimits.from_table(server, str(path)),
    )
