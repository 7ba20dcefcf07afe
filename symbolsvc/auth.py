"""Who may call what (CONTRACT §3): identities from client certificates, roles from config.toml.

The role table is keyed by gRPC service; one interceptor
(:mod:`symbolsvc.interceptor`) applies it to every call, so no servicer
repeats a role check. Servicers learn the caller from :func:`principal`.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Mapping, Sequence
from functools import lru_cache

from .config import Principal
from .errors import PermissionDenied, Unauthenticated
from .pki import uri_sans

ANY_PRINCIPAL = "*"
# Service full name -> the role a caller needs. Health and reflection are open
# to any principal the deployment knows; nothing is open to an unknown one.
SERVICE_ROLES: Mapping[str, str] = {
    "symbolsvc.v1.SymbolService": "agency",
    "symbolsvc.v1.BrokerService": "broker",
    "symbolsvc.v1.DisclosureService": "portal",
    "symbolsvc.v1.AuditService": "auditor",
    "grpc.health.v1.Health": ANY_PRINCIPAL,
    "grpc.reflection.v1alpha.ServerReflection": ANY_PRINCIPAL,
    "grpc.reflection.v1.ServerReflection": ANY_PRINCIPAL,
}
# Methods open to other roles than their service's (full method name -> roles).
METHOD_ROLES: Mapping[str, frozenset[str]] = {
    # The published permission tables are for the person and for the auditor alike.
    "/symbolsvc.v1.DisclosureService/GetPolicy": frozenset({"portal", "auditor"}),
}

security_log = logging.getLogger("symbolsvc.security")
_current: contextvars.ContextVar[Principal] = contextvars.ContextVar("symbolsvc_principal")


def principal() -> Principal:
    """The authenticated caller of the current RPC."""
    return _current.get()


def set_principal(p: Principal) -> contextvars.Token[Principal]:
    return _current.set(p)


@lru_cache(maxsize=4096)
def _cert_uris(pem: bytes) -> tuple[str, ...]:
    return tuple(uri_sans(pem))


def identify(auth_context: Mapping[str, Sequence[bytes]], principals: Mapping[str, Principal],
             method: str) -> Principal:
    """Map a verified peer to a principal by its URI SAN; never by the CN."""
    uris: tuple[str, ...] = ()
    spiffe = auth_context.get("peer_spiffe_id")
    if spiffe:
        uris = (spiffe[0].decode(),)
    else:
        pem = auth_context.get("x509_pem_cert")
        if pem:
            uris = _cert_uris(pem[0])
    for uri in uris:
        p = principals.get(uri)
        if p is not None:
            return p
    security_log.warning(
        "call from an unknown identity refused",
        extra={"event": "unknown_identity", "identities": list(uris), "method": method},
    )
    raise Unauthenticated(
        "UNKNOWN_IDENTITY",
        "the client certificate's identity is not a principal of this deployment",
    )


def authorize(p: Principal, method: str) -> None:
    """Raise PermissionDenied (and log it) unless ``p`` may call ``method``."""
    roles = METHOD_ROLES.get(method)
    if roles is not None:
        if roles & p.roles:
            return
        role: str | None = "|".join(sorted(roles))  # logged as "auditor|portal"
        needs = " or ".join(repr(r) for r in sorted(roles))
    else:
        service = method[1:].rsplit("/", 1)[0] if method.startswith("/") else ""
        role = SERVICE_ROLES.get(service)
        if role == ANY_PRINCIPAL or (role is not None and role in p.roles):
            return
        needs = repr(role)
    security_log.warning(
        "call refused: missing role",
        extra={"event": "role_denied", "principal": p.name, "method": method,
               "needs_role": role or "none"},
    )
    raise PermissionDenied(
        "MISSING_ROLE",
        f"principal {p.name!r} may not call {method}"
        + (f" (needs role {needs})" if role else ""),
    )
