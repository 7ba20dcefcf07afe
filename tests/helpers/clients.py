"""Clients of a real server for tests: one cached client per principal, and failed calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from symbolsvc_client import CallError, Deployment
from symbolsvc_client.clients import AgencyClient, AuditorClient, BrokerClient, PortalClient

T = TypeVar("T")


class Clients:
    """Cached clients, one per principal, for one server address."""

    def __init__(self, deployment: Deployment, address: str) -> None:
        self.deployment = deployment
        self.address = address
        self._cache: dict[tuple[str, str], Any] = {}

    def _get(self, kind: str, name: str, make: Callable[[], T]) -> T:
        key = (kind, name)
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def agency(self, name: str) -> AgencyClient:
        return self._get("agency", name, lambda: self.deployment.agency(name, self.address))

    def broker(self, name: str = "broker") -> BrokerClient:
        return self._get("broker", name, lambda: self.deployment.broker(self.address, name))

    def portal(self, name: str = "portal") -> PortalClient:
        return self._get("portal", name, lambda: self.deployment.portal(self.address, name))

    def auditor(self, name: str = "auditor") -> AuditorClient:
        return self._get("auditor", name, lambda: self.deployment.auditor(self.address, name))

    def close(self) -> None:
        for client in self._cache.values():
            client.close()
        self._cache.clear()


def call_error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> CallError:
    """Call ``fn`` and return the :class:`CallError` it raises; fail if it succeeds."""
    try:
        result = fn(*args, **kwargs)
    except CallError as err:
        return err
    raise AssertionError(f"expected the call to fail, but it returned {result!r}")
