"""Channels: mTLS credentials from a deployment directory, targets, balancing, retries.

Targets: one ``HOST:PORT``; a gRPC target URI (``dns:///sym.example.org:50051`` resolves
every address of the name and balances round-robin over them, re-resolving as they
change; ``ipv4:`` / ``ipv6:`` lists); or several ``HOST:PORT`` (host names, IPv4 or
bracketed IPv6 literals), balanced round-robin. Host names in a list are resolved once
when the channel is made. The TLS name checked against the server certificate is the
targets' host name, or ``server_name`` when given (required when several targets name
different hosts, since one channel checks one name).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import grpc.aio

if TYPE_CHECKING:
    from . import aio
    from .clients import AgencyClient, AuditorClient, BrokerClient, PortalClient

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT = 10.0  # seconds, every unary call
DEFAULT_STREAM_TIMEOUT = 3600.0  # seconds, every stream (a bulk load, a watch)

# Retried only where a repeat cannot change the outcome: issue, release and upgrade
# (the same number gives the same symbol), the exchanges (a repeated exchange_id returns
# the first answer, record and receipt: docs/EXCHANGES.md) and the read-only calls.
# Retried on UNAVAILABLE (also a stream the server refused before reading it), on a
# CANCELLED that comes from the server (a server shutting down cancels the calls it has
# received but not yet started, and those did nothing), and on RESOURCE_EXHAUSTED when
# the server's pushback says when (a per-principal limit; a full disk says "do not
# retry"). A call the client itself cancels, or whose deadline passes, is never retried;
# retries stop while more than about one call in eleven fails (retryThrottling).
_IDEMPOTENT = [
    {"service": "symbolsvc.v1.SymbolService", "method": "IssueSymbol"},
    {"service": "symbolsvc.v1.SymbolService", "method": "BatchIssueSymbols"},
    {"service": "symbolsvc.v1.SymbolService", "method": "ReleaseSymbol"},
    {"service": "symbolsvc.v1.SymbolService", "method": "UpgradeSymbols"},
    {"service": "symbolsvc.v1.BrokerService", "method": "TranslateSymbol"},
    {"service": "symbolsvc.v1.BrokerService", "method": "BatchTranslateSymbols"},
    {"service": "symbolsvc.v1.BrokerService", "method": "ResolveProviders"},
    {"service": "symbolsvc.v1.DisclosureService", "method": "ListAccessRecords"},
    {"service": "symbolsvc.v1.DisclosureService", "method": "GetRecordProof"},
    {"service": "symbolsvc.v1.AuditService"},
    {"service": "grpc.health.v1.Health", "method": "Check"},
]
_SERVICE_CONFIG = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": _IDEMPOTENT,
        "retryPolicy": {
            "maxAttempts": 5, "initialBackoff": "0.1s", "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED", "RESOURCE_EXHAUSTED"],
        },
    }],
    "retryThrottling": {"maxTokens": 100, "tokenRatio": 0.1},
})
_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:")


@dataclass(frozen=True)
class Identity:
    """A client's TLS material: the deployment CA and one principal's certificate and key."""

    ca: bytes
    cert: bytes
    key: bytes

    @classmethod
    def from_files(cls, ca: Path | str, cert: Path | str, key: Path | str) -> Identity:
        return cls(Path(ca).read_bytes(), Path(cert).read_bytes(), Path(key).read_bytes())

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(self.ca, self.key, self.cert)


def _split(hostport: str) -> tuple[str, int]:
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"target {hostport!r} is not HOST:PORT")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def resolve_target(targets: str | Sequence[str]) -> tuple[str, str | None]:
    """The gRPC target string for ``targets`` and the TLS name to check (None: gRPC's own).

    >>> resolve_target(["127.0.0.1:1", "127.0.0.1:2"])
    ('ipv4:127.0.0.1:1,127.0.0.1:2', '127.0.0.1')
    """
    if isinstance(targets, str):
        targets = [targets]
    if not targets:
        raise ValueError("no target given")
    if len(targets) == 1:
        only = targets[0]
        if only.startswith(_SCHEMES):
            return only, None
        _split(only)
        return only, None
    if any(t.startswith(_SCHEMES) for t in targets):
        raise ValueError("a target URI (dns:, ipv4:, ...) must be the only target")
    hosts = [_split(t) for t in targets]
    names = {h for h, _ in hosts}
    tls_name = names.pop() if len(names) == 1 else None
    v4: list[str] = []
    v6: list[str] = []
    for host, port in hosts:
        literal = _literal(host)
        if literal is not None:
            (v4 if literal.version == 4 else v6).append(f"{literal}:{port}"
                                                        if literal.version == 4
                                                        else f"[{literal}]:{port}")
            continue
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ValueError(f"cannot resolve {host!r}: {exc}") from None
        addrs = {(info[0], info[4][0]) for info in infos}
        for family, addr in sorted(addrs, key=str):
            if family == socket.AF_INET:
                v4.append(f"{addr}:{port}")
            elif family == socket.AF_INET6:
                v6.append(f"[{addr}]:{port}")
    # One channel balances over one address family (gRPC's ipv4:/ipv6: resolvers); IPv4
    # wins when every target has an IPv4 address (localhost resolves to both).
    if v4 and (not v6 or len(v4) >= len(hosts)):
        return "ipv4:" + ",".join(dict.fromkeys(v4)), tls_name
    if v6 and not v4:
        return "ipv6:" + ",".join(dict.fromkeys(v6)), tls_name
    raise ValueError("targets mix IPv4-only and IPv6-only addresses; use one family or a "
                     "dns:/// name")


def _channel_args(targets: str | Sequence[str], server_name: str | None,
                  options: Sequence[tuple[str, object]]) -> tuple[str, list[tuple[str, object]]]:
    target, tls_name = resolve_target(targets)
    opts: list[tuple[str, object]] = [
        ("grpc.service_config", _SERVICE_CONFIG), ("grpc.enable_retries", 1), *options]
    name = server_name or tls_name
    if name:
        opts.append(("grpc.ssl_target_name_override", name))
    return target, opts


def open_channel(identity: Identity, targets: str | Sequence[str],
                 options: Sequence[tuple[str, object]] = (), *,
                 server_name: str | None = None) -> grpc.Channel:
    """A secure channel; several targets or a ``dns:///`` name are balanced round-robin."""
    target, opts = _channel_args(targets, server_name, options)
    return grpc.secure_channel(target, identity.credentials(), options=opts)


def open_aio_channel(identity: Identity, targets: str | Sequence[str],
                     options: Sequence[tuple[str, object]] = (), *,
                     server_name: str | None = None) -> grpc.aio.Channel:
    """The asyncio form of :func:`open_channel`."""
    target, opts = _channel_args(targets, server_name, options)
    return grpc.aio.secure_channel(target, identity.credentials(), options=opts)


def deployment_target(directory: Path | str) -> str:
    """The address ``DIR/config.toml`` serves on (a wildcard host becomes loopback)."""
    path = Path(directory) / "config.toml"
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return DEFAULT_TARGET
    server = doc.get("server")
    listen = server.get("listen") if isinstance(server, dict) else None
    if not isinstance(listen, str) or ":" not in listen:
        return DEFAULT_TARGET
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", ""):  # a wildcard listen: reach it on loopback
        host = "127.0.0.1"
    elif host in ("[::]", "::"):
        host = "[::1]"
    return f"{host}:{port}"


class Deployment:
    """A deployment directory written by ``symbolsvc init``: one client per principal.

    ``targets`` defaults to the address the deployment's ``config.toml`` listens on;
    ``timeout`` and ``stream_timeout`` are the default deadlines of unary calls and
    streams; ``server_name`` overrides the TLS name checked against the server's
    certificate.
    """

    def __init__(self, directory: Path | str, *, server_name: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT,
                 stream_timeout: float = DEFAULT_STREAM_TIMEOUT) -> None:
        self.dir = Path(directory)
        self.pki = self.dir / "pki"
        self.server_name = server_name
        self.timeout = timeout
        self.stream_timeout = stream_timeout

    @property
    def default_target(self) -> str:
        return deployment_target(self.dir)

    def identity(self, name: str) -> Identity:
        return Identity.from_files(self.pki / "ca.crt", self.pki / f"{name}.crt",
                                   self.pki / f"{name}.key")

    def channel(self, name: str, targets: str | Sequence[str] | None = None) -> grpc.Channel:
        return open_channel(self.identity(name), targets or self.default_target,
                            server_name=self.server_name)

    def aio_channel(self, name: str,
                    targets: str | Sequence[str] | None = None) -> grpc.aio.Channel:
        return open_aio_channel(self.identity(name), targets or self.default_target,
                                server_name=self.server_name)

    def agency(self, name: str, targets: str | Sequence[str] | None = None) -> AgencyClient:
        from .clients import AgencyClient

        return AgencyClient(self.channel(name, targets), self.timeout, self.stream_timeout)

    def broker(self, targets: str | Sequence[str] | None = None,
               name: str = "broker") -> BrokerClient:
        from .clients import BrokerClient

        return BrokerClient(self.channel(name, targets), self.timeout, self.stream_timeout)

    def portal(self, targets: str | Sequence[str] | None = None,
               name: str = "portal") -> PortalClient:
        from .clients import PortalClient

        return PortalClient(self.channel(name, targets), self.timeout, self.stream_timeout)

    def auditor(self, targets: str | Sequence[str] | None = None,
                name: str = "auditor") -> AuditorClient:
        from .clients import AuditorClient

        return AuditorClient(self.channel(name, targets), self.timeout, self.stream_timeout)

    def aio_agency(self, name: str,
                   targets: str | Sequence[str] | None = None) -> aio.AgencyClient:
        from . import aio

        return aio.AgencyClient(self.aio_channel(name, targets), self.timeout,
                                self.stream_timeout)

    def aio_broker(self, targets: str | Sequence[str] | None = None,
                   name: str = "broker") -> aio.BrokerClient:
        from . import aio

        return aio.BrokerClient(self.aio_channel(name, targets), self.timeout,
                                self.stream_timeout)

    def aio_portal(self, targets: str | Sequence[str] | None = None,
                   name: str = "portal") -> aio.PortalClient:
        from . import aio

        return aio.PortalClient(self.aio_channel(name, targets), self.timeout,
                                self.stream_timeout)

    def aio_auditor(self, targets: str | Sequence[str] | None = None,
                    name: str = "auditor") -> aio.AuditorClient:
        from . import aio

        return aio.AuditorClient(self.aio_channel(name, targets), self.timeout,
                                 self.stream_timeout)
