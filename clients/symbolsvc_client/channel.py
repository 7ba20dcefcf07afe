"""Channels: mTLS credentials from a deployment directory, several targets, retries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

if TYPE_CHECKING:
    from .clients import AgencyClient, AuditorClient, BrokerClient, PortalClient

DEFAULT_TARGET = "127.0.0.1:50051"

# Retried only where a repeat cannot change the outcome, on UNAVAILABLE and on a CANCELLED
# that comes from the server: a server shutting down (SIGTERM) cancels the calls it has
# received but not yet started, and those did nothing. (A call the client itself cancels,
# or whose deadline passes, is never retried.)
_IDEMPOTENT = [
    {"service": "symbolsvc.v1.SymbolService", "method": "IssueSymbol"},
    {"service": "symbolsvc.v1.SymbolService", "method": "BatchIssueSymbols"},
    {"service": "symbolsvc.v1.SymbolService", "method": "ReleaseSymbol"},
    {"service": "symbolsvc.v1.SymbolService", "method": "UpgradeSymbols"},
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
            "maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "2s",
            "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", "CANCELLED"],
        },
    }],
})


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


def open_channel(identity: Identity, targets: str | Sequence[str],
                 options: Sequence[tuple[str, object]] = ()) -> grpc.Channel:
    """A secure channel; several ``HOST:PORT`` targets are load-balanced round-robin."""
    if isinstance(targets, str):
        targets = [targets]
    if len(targets) == 1:
        target = targets[0]
    else:
        # The ipv4: resolver takes a comma-separated list of literal addresses.
        target = "ipv4:" + ",".join(targets)
    opts = [("grpc.service_config", _SERVICE_CONFIG), ("grpc.enable_retries", 1), *options]
    if len(targets) > 1:
        # The server certificate names localhost/127.0.0.1; check against that.
        opts.append(("grpc.ssl_target_name_override", "localhost"))
    return grpc.secure_channel(target, identity.credentials(), options=opts)


class Deployment:
    """A deployment directory written by ``symbolsvc init``: one client per principal."""

    def __init__(self, directory: Path | str) -> None:
        self.dir = Path(directory)
        self.pki = self.dir / "pki"

    def identity(self, name: str) -> Identity:
        return Identity.from_files(self.pki / "ca.crt", self.pki / f"{name}.crt",
                                   self.pki / f"{name}.key")

    def channel(self, name: str, targets: str | Sequence[str] = DEFAULT_TARGET) -> grpc.Channel:
        return open_channel(self.identity(name), targets)

    def agency(self, name: str, targets: str | Sequence[str] = DEFAULT_TARGET) -> AgencyClient:
        from .clients import AgencyClient

        return AgencyClient(self.channel(name, targets))

    def broker(self, targets: str | Sequence[str] = DEFAULT_TARGET,
               name: str = "broker") -> BrokerClient:
        from .clients import BrokerClient

        return BrokerClient(self.channel(name, targets))

    def portal(self, targets: str | Sequence[str] = DEFAULT_TARGET,
               name: str = "portal") -> PortalClient:
        from .clients import PortalClient

        return PortalClient(self.channel(name, targets))

    def auditor(self, targets: str | Sequence[str] = DEFAULT_TARGET,
                name: str = "auditor") -> AuditorClient:
        from .clients import AuditorClient

        return AuditorClient(self.channel(name, targets))
