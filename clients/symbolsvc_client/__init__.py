"""Python client library for symbolsvc: one class per role, mTLS from a deployment directory.

    from symbolsvc_client import Deployment
    dep = Deployment("dev")                       # the directory `symbolsvc init` wrote
    agency = dep.agency("city-chiyoda", "127.0.0.1:50051")
    sym = agency.issue("123456789018").symbol

Every call has a deadline (``timeout``, default 10 s). Only idempotent calls
are retried (by gRPC's retry policy, on UNAVAILABLE, or on CANCELLED from a
server shutting down): issue, release and the read-only disclosure and audit
calls. A failed call raises :class:`CallError` with the status code, the
server's machine-readable reason and its message.
"""

from .channel import Deployment, Identity
from .clients import AgencyClient, AuditorClient, BrokerClient, CallError, PortalClient

__all__ = [
    "AgencyClient", "AuditorClient", "BrokerClient", "CallError", "Deployment", "Identity",
    "PortalClient",
]
