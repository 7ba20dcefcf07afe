"""Python client library for symbolsvc: one class per role, sync and asyncio, mTLS.

    from symbolsvc_client import Deployment
    dep = Deployment("dev")                       # the directory `symbolsvc init` wrote
    agency = dep.agency("city-chiyoda")           # target: dev/config.toml's listen address
    sym = agency.issue("123456789018").symbol

    async with dep.aio_agency("city-chiyoda") as agency:   # asyncio
        sym = (await agency.issue("123456789018")).symbol

Every call has a deadline: ``timeout`` (default 10 s) for unary calls and
``stream_timeout`` (default 1 h) for streams, both set per Deployment or client.
Only idempotent calls are retried (by gRPC's retry policy, on UNAVAILABLE, on
CANCELLED from a server shutting down, and on RESOURCE_EXHAUSTED after the delay
the server's pushback names): issue, release, the exchanges (a repeated
``exchange_id`` returns the first answer) and the read-only disclosure and audit
calls. Several targets, or a ``dns:///name:port`` target, are
balanced round-robin. A failed call raises :class:`CallError` with the status code,
the server's machine-readable reason and its message.
"""

from importlib.metadata import PackageNotFoundError, version

from .channel import (
    Deployment,
    Identity,
    open_aio_channel,
    open_channel,
    resolve_target,
)
from .clients import AgencyClient, AuditorClient, BrokerClient, PortalClient
from .errors import CallError

try:
    __version__ = version("symbolsvc-client")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"

__all__ = [
    "AgencyClient", "AuditorClient", "BrokerClient", "CallError", "Deployment", "Identity",
    "PortalClient", "__version__", "open_aio_channel", "open_channel", "resolve_target",
]
