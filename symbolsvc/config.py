"""config.toml: the deployment's configuration (docs/CONFIG.md is the reference).

Strict by construction: every known key is declared once, in :data:`SCHEMA`
(one table per section, one row per key: type, default, range). An unknown
section or key, a wrong type or an out-of-range value stops the command with
one line naming the file, the key and what is expected (:class:`ConfigError`,
exit status 2), so a misspelling such as ``[acces_log]`` can never silently
turn a feature off. Adding a key is adding one row.

Paths in the file are relative to the file's directory. Principals map a
certificate identity (a SPIFFE-style URI SAN) to a name and roles; an
agency's ID is its principal name.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .keystore import HsmConfig, parse_provider
from .limits import LimitsConfig, parse_limits
from .log.checkpoint import NoteError
from .log.cosignature import parse_witness_vkey
from .policy import Policy, is_ident
from .registry.backends import backend_for, check_read_url
from .server_options import HTTP2_MAX_FRAME, HTTP2_MIN_FRAME, ConnectionLimits

ROLES = frozenset({"agency", "broker", "portal", "auditor"})
DEFAULT_LISTEN = "127.0.0.1:50051"
REQUIRED = object()  # a key without a default


@dataclass(frozen=True)
class Key:
    """One declared key: its type (``str``, ``int``, ``float``, ``bool``, ``path`` or
    ``str_list``), its default (:data:`REQUIRED` for none) and, for numbers, its range."""

    kind: str
    default: Any = REQUIRED
    lo: float | None = None
    hi: float | None = None

    def expected(self) -> str:
        what = {"str": "a string", "path": "a non-empty path string", "int": "an integer",
                "float": "a number", "bool": "true or false",
                "str_list": "a list of strings"}[self.kind]
        if self.lo is not None and self.hi is not None:
            what += f" from {_num(self.lo)} to {_num(self.hi)}"
        elif self.lo is not None:
            what += f" of at least {_num(self.lo)}"
        return what


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


MIB = 1024 * 1024
I32 = 2**31 - 1
# section -> key -> declaration. THE one place a config.toml key is known.
SCHEMA: dict[str, dict[str, Key]] = {
    "server": {
        "listen": Key("str", DEFAULT_LISTEN),
        "health_listen": Key("str", ""),
        "metrics_listen": Key("str", ""),
        "max_concurrent_rpcs": Key("int", 2000, 1, 1_000_000),
        "max_message_bytes": Key("int", 4 * MIB, 1024, 2**31 - 1),
        "grace_seconds": Key("float", 10.0, 0, 3600),
        # HTTP/2 and connection limits (server_options.ConnectionLimits; docs/HARDENING.md).
        "max_concurrent_streams": Key("int", 512, 1, I32),
        "max_header_list_bytes": Key("int", 16_384, 1024, I32),
        "max_frame_bytes": Key("int", HTTP2_MIN_FRAME, HTTP2_MIN_FRAME, HTTP2_MAX_FRAME),
        "min_ping_interval_ms": Key("int", 10_000, 1, I32),
        "max_ping_strikes": Key("int", 2, 0, I32),
        "keepalive_time_ms": Key("int", 60_000, 1, I32),
        "keepalive_timeout_ms": Key("int", 20_000, 1, I32),
        "max_connection_idle_ms": Key("int", 15 * 60_000, 1, I32),
        "max_connection_age_ms": Key("int", 30 * 60_000, 1, I32),
        "max_connection_age_grace_ms": Key("int", 30_000, 1, I32),
        "handshake_timeout_ms": Key("int", 10_000, 1, I32),
        "max_connections": Key("int", 0, 0, I32),
        "max_rss_mib": Key("int", 0, 0, I32),
        # the server log's format: "json" (JSON Lines) or "text" (docs/OBSERVABILITY.md)
        "log_format": Key("str", "json"),
    },
    "tls": {
        "ca": Key("path"),
        "cert": Key("path"),
        "key": Key("path"),
        "revoked": Key("path", None),
    },
    "storage": {
        "url": Key("str"),
        # portal and auditor reads from a hot standby, at most read_max_lag_ms stale
        # (registry/pg_standby.py; docs/SCALING.md)
        "read_url": Key("str", ""),
        "read_max_lag_ms": Key("int", 1000, 1, I32),
    },
    "keys": {
        "keyring": Key("path"),
        "passphrase_env": Key("str", "SYMBOLSVC_PASSPHRASE"),
        "passphrase_file": Key("path", None),
        # the root secret's home: "file" (the wrapped keyring) or "pkcs11" (docs/KEYS.md),
        # validated together by keystore.parse_provider
        "provider": Key("str", "file"),
        "pkcs11_module": Key("str", None),
        "token_label": Key("str", None),
        "pin_env": Key("str", None),
        "pin_file": Key("str", None),
    },
    "policy": {
        "file": Key("path"),
        # the most days a rule's withhold_days may defer disclosure (docs/DISCLOSURE.md)
        "max_withhold_days": Key("int", 365, 0, 3650),
    },
    "tracing": {
        # OpenTelemetry tracing, off unless an OTLP endpoint is set (docs/OBSERVABILITY.md)
        "otlp_endpoint": Key("str", ""),
        "service_name": Key("str", "symbolsvc"),
    },
    "broker": {
        # issue 14 (docs/SIGNED_INQUIRIES.md, docs/BLIND_TRANSLATION.md): refuse inquiries
        # the requester did not sign; accept signed ones issued at most this long ago (or
        # ahead); seal the provider's symbol to the provider's HPKE key
        "require_signed_inquiries": Key("bool", False),
        "inquiry_window_seconds": Key("int", 300, 1, 86_400),
        "blind_translation": Key("bool", False),
    },
    "access_log": {
        "origin": Key("str", "symbolsvc.local/access-log"),
        "security_log": Key("path", None),
        "integrate_interval_ms": Key("int", 200, 1, 3_600_000),
        "integrate_batch": Key("int", 10_000, 1, 10_000_000),
        "lease_ms": Key("int", 5_000, 1, 86_400_000),
        # how long records must be kept; nothing deletes a leaf (docs/ACCESS_LOG.md, Retention)
        "retention_years": Key("int", 7, 1, 100),
        "max_merge_delay": Key("float", 10.0, 1.0, 86_400.0),
        "watch_poll_ms": Key("int", 30_000, 100, 86_400_000),
    },
    "portal": {
        # the reference portal web app (symbolsvc portal serve; docs/PORTAL.md); unset paths
        # default to the files `symbolsvc init` writes (symbolsvc/portal/settings.py)
        "listen": Key("str", "127.0.0.1:8080"),
        "public_url": Key("str", ""),
        "target": Key("str", ""),
        "cert": Key("path", None),
        "key": Key("path", None),
        "vkey": Key("path", None),
        "link_key": Key("path", None),
        "link_ttl_seconds": Key("int", 3600, 60, 2_592_000),
        "labels": Key("path", None),
        "witness_vkeys": Key("path", None),
        "witness_quorum": Key("int", 0, 0, 100),
    },
    "witnessing": {
        # Submitting checkpoints to the [witness.NAME] witnesses (docs/WITNESS.md): each
        # add-checkpoint call times out after timeout_ms; a failed one is retried after
        # retry_ms (or at the next checkpoint, whichever comes first).
        "timeout_ms": Key("int", 5_000, 1, 600_000),
        "retry_ms": Key("int", 2_000, 1, 3_600_000),
    },
}
# [principals.NAME]: one table per principal.
PRINCIPAL_KEYS: dict[str, Key] = {
    "identity": Key("str"),
    "roles": Key("str_list"),
}


# [witness.NAME]: one table per witness the log submits its checkpoints to.
WITNESS_KEYS: dict[str, Key] = {
    "url": Key("str"),   # the witness's submission prefix (http:// or https://)
    "vkey": Key("str"),  # its cosignature verifier key (type 0x04)
}


@dataclass(frozen=True)
class WitnessPeer:
    """A witness: the local table name, its submission prefix and its verifier key."""

    label: str
    url: str
    vkey: str


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
    max_withhold_days: int = 365  # [policy] max_withhold_days
    # The access log's sequencer (docs/ACCESS_LOG.md): integrate every
    # log_integrate_interval_ms up to log_integrate_batch records; the sequencer
    # lease lasts log_lease_ms without renewal.
    log_integrate_interval_ms: int = 200
    log_integrate_batch: int = 10_000
    log_lease_ms: int = 5_000
    # The retention period operators archive to (never delete from the tree).
    log_retention_years: int = 7
    # The maximum merge delay (seconds): receipts promise integration within it; the
    # broker's health is NOT_SERVING while the integration lag exceeds it.
    log_max_merge_delay: float = 10.0
    # An idle watch re-reads the store this often even if no notification wakes it.
    watch_poll_ms: int = 30_000
    # The certificate revocation list ([tls] revoked; docs/OPERATIONS.md).
    revoked: Path | None = None
    # Per-principal limits and stream bounds ([limits], validated by limits.parse_limits;
    # docs/ISOLATION.md).
    limits: LimitsConfig = field(default_factory=lambda: parse_limits({}, Path()))
    # Every validated value, defaults included: settings[section][key] (paths resolved).
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Observability (docs/OBSERVABILITY.md): the server log's format ("json" or "text");
    # OpenTelemetry tracing, off unless [tracing] otlp_endpoint is set.
    log_format: str = "json"
    otlp_endpoint: str = ""
    trace_service_name: str = "symbolsvc"
    # [storage] read_url / read_max_lag_ms: a hot standby for portal and auditor reads.
    storage_read_url: str = ""
    storage_read_max_lag_ms: int = 1000
    # HTTP/2 and connection limits of the gRPC server (server_options.py).
    connection_limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    # [keys] provider = "pkcs11": where the master secrets live (symbolsvc.keystore).
    hsm: HsmConfig | None = None
    # Witnesses that cosign the access log's checkpoints ([witness.NAME]; docs/WITNESS.md).
    witnesses: tuple[WitnessPeer, ...] = ()

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


def _unknown(path: Path, what: str, name: str, known: list[str], fmt: str = "{!r}"
             ) -> ConfigError:
    near = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {fmt.format(near[0])}? " if near else ""
    return ConfigError(f"{path}: unknown {what} {fmt.format(name)}: {hint}expected one of "
                       f"{', '.join(fmt.format(k) for k in sorted(known))}")


def _value(path: Path, where: str, key: Key, value: Any) -> Any:
    """``value`` checked against ``key``; a one-line ConfigError otherwise."""
    ok = True
    if key.kind in ("str", "path"):
        ok = isinstance(value, str) and (key.kind == "str" or bool(value))
    elif key.kind == "bool":
        ok = isinstance(value, bool)
    elif key.kind == "str_list":
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif key.kind in ("int", "float"):
        types: tuple[type, ...] = (int,) if key.kind == "int" else (int, float)
        ok = isinstance(value, types) and not isinstance(value, bool)
        ok = ok and (key.lo is None or value >= key.lo) and (key.hi is None or value <= key.hi)
        if ok and key.kind == "float":
            value = float(value)
    if not ok:
        raise ConfigError(f"{path}: {where}: expected {key.expected()}, got {value!r}")
    return value


def _section(path: Path, name: str, raw: Any, decl: Mapping[str, Key]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [{name}] must be a table")
    for k in raw:
        if k not in decl:
            raise _unknown(path, f"key in [{name}]", k, list(decl))
    out: dict[str, Any] = {}
    for k, key in decl.items():
        if k not in raw:
            if key.default is REQUIRED:
                raise ConfigError(f"{path}: [{name}] {k} is required: expected {key.expected()}")
            out[k] = key.default
            continue
        out[k] = _value(path, f"[{name}] {k}", key, raw[k])
        if key.kind == "path":
            out[k] = path.parent / out[k]
    return out


def _principals(path: Path, raw: Any) -> dict[str, Principal]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [principals] must be a table of [principals.NAME] tables")
    principals: dict[str, Principal] = {}
    for name, p in raw.items():
        if not is_ident(name):
            raise ConfigError(f"{path}: [principals.{name}]: expected a name of lower-case "
                              "ASCII letters, digits, '.', '_', '-'")
        s = _section(path, f"principals.{name}", p, PRINCIPAL_KEYS)
        roles = s["roles"]
        if not roles or not set(roles) <= ROLES:
            raise ConfigError(f"{path}: [principals.{name}] roles: expected a non-empty "
                              f"subset of {sorted(ROLES)}, got {roles!r}")
        principals[name] = Principal(name, s["identity"], frozenset(roles))
    seen: dict[str, str] = {}
    for p in principals.values():
        if p.identity in seen:
            raise ConfigError(f"{path}: [principals.{p.name}] identity: expected a unique "
                              f"identity, {seen[p.identity]!r} has the same")
        seen[p.identity] = p.name
    return principals


def _witnesses(path: Path, raw: Any) -> tuple[WitnessPeer, ...]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [witness] must be a table of [witness.NAME] tables")
    peers = []
    for label, table in raw.items():
        s = _section(path, f"witness.{label}", table, WITNESS_KEYS)
        if not s["url"].startswith(("http://", "https://")):
            raise ConfigError(f"{path}: [witness.{label}] url: expected an http:// or "
                              "https:// submission prefix")
        try:
            parse_witness_vkey(s["vkey"])
        except NoteError as exc:
            raise ConfigError(f"{path}: [witness.{label}] vkey: {exc}") from None
        peers.append(WitnessPeer(label, s["url"].rstrip("/"), s["vkey"].strip()))
    if len({parse_witness_vkey(p.vkey).name for p in peers}) != len(peers):
        raise ConfigError(f"{path}: [witness]: two witnesses have the same name")
    return tuple(peers)


def parse_config(path: Path, doc: Mapping[str, Any]) -> Config:
    """Validate a parsed config.toml strictly; see the module docstring."""
    for name in doc:
        if name not in SCHEMA and name not in ("principals", "limits", "witness"):
            raise _unknown(path, "section", name, [*SCHEMA, "principals", "limits", "witness"],
                           "[{}]")
    s = {name: _section(path, name, doc.get(name, {}), decl) for name, decl in SCHEMA.items()}
    principals = _principals(path, doc.get("principals", {}))
    try:
        # The backend for the scheme; describe() parses the URL's own options too.
        backend_for(s["storage"]["url"]).describe(s["storage"]["url"], path.parent)
        check_read_url(s["storage"]["url"], s["storage"]["read_url"], path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    log = s["access_log"]
    if log["lease_ms"] < 2 * log["integrate_interval_ms"]:
        raise ConfigError(f"{path}: [access_log] lease_ms: expected at least twice "
                          "integrate_interval_ms, or the sequencer loses its lease between steps")
    if log["max_merge_delay"] * 1000 < 2 * log["integrate_interval_ms"]:
        raise ConfigError(f"{path}: [access_log] max_merge_delay: expected at least twice "
                          "integrate_interval_ms (in seconds), or receipts promise too little")
    server, tls, keys = s["server"], s["tls"], s["keys"]
    if server["log_format"] not in ("json", "text"):
        raise ConfigError(f'{path}: [server] log_format: expected "json" or "text"')
    return Config(
        path=path,
        listen=server["listen"],
        health_listen=server["health_listen"],
        metrics_listen=server["metrics_listen"],
        max_concurrent_rpcs=server["max_concurrent_rpcs"],
        max_message_bytes=server["max_message_bytes"],
        grace_seconds=server["grace_seconds"],
        tls_ca=tls["ca"],
        tls_cert=tls["cert"],
        tls_key=tls["key"],
        storage_url=s["storage"]["url"],
        keyring=keys["keyring"],
        passphrase_file=keys["passphrase_file"],
        passphrase_env=keys["passphrase_env"],
        policy_file=s["policy"]["file"],
        max_withhold_days=s["policy"]["max_withhold_days"],
        log_origin=log["origin"],
        security_log=log["security_log"],
        principals=principals,
        log_integrate_interval_ms=log["integrate_interval_ms"],
        log_integrate_batch=log["integrate_batch"],
        log_lease_ms=log["lease_ms"],
        log_retention_years=log["retention_years"],
        log_max_merge_delay=float(log["max_merge_delay"]),
        watch_poll_ms=log["watch_poll_ms"],
        revoked=tls["revoked"],
        limits=parse_limits(doc.get("limits", {}), path),
        log_format=server["log_format"],
        otlp_endpoint=s["tracing"]["otlp_endpoint"],
        trace_service_name=s["tracing"]["service_name"],
        hsm=parse_provider(doc.get("keys", {}), path),
        settings=s,
        witnesses=_witnesses(path, doc.get("witness", {})),
        connection_limits=ConnectionLimits.from_table(server, str(path)),
        storage_read_url=s["storage"]["read_url"],
        storage_read_max_lag_ms=s["storage"]["read_max_lag_ms"],
    )


def load_config(path: Path) -> Config:
    path = path.resolve()
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid TOML: expected UTF-8 text") from None
    return parse_config(path, doc)


def agencies_without_principal(policy: Policy, config: Config) -> list[str]:
    """Agency IDs the permission table names (as requester or provider) that no principal
    with the agency role has: a typo, or an agency not yet added."""
    named = {r for r, _, _ in policy.providers}
    for providers in policy.providers.values():
        named |= providers
    agencies = {p.name for p in config.principals.values() if "agency" in p.roles}
    return sorted(named - agencies)
