"""Request bodies that do not decode: INVALID_ARGUMENT after authentication, logged quietly.

gRPC decodes a request before any interceptor code runs, and a deserializer
that raises makes grpcio answer UNKNOWN/INTERNAL and log a traceback. The
interceptor therefore wraps every method's deserializer with :func:`lenient`,
which turns a body that does not decode into the :data:`UNDECODABLE` marker;
the call is then authenticated like any other and answered
``INVALID_ARGUMENT`` (reason ``MALFORMED_REQUEST``) by :meth:`BadBodies.reject`,
which writes at most one security-log event per principal per interval (with
the count of the ones it did not write), never the bytes and never a
traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError

from .errors import InvalidArgument

security_log = logging.getLogger("symbolsvc.security")

LOG_INTERVAL_S = 10.0


class _Undecodable:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<undecodable request body>"


UNDECODABLE: Any = _Undecodable()
"""What :func:`lenient` returns for a body that does not decode."""


def lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except (DecodeError, ValueError, RecursionError, UnicodeDecodeError):
            return UNDECODABLE

    return decode


class BadBodies:
    """Answers undecodable bodies; remembers when it last logged each principal."""

    def __init__(self, interval: float = LOG_INTERVAL_S) -> None:
        self._interval = interval
        self._logged: dict[str, tuple[float, int]] = {}

    def reject(self, principal: str, method: str) -> InvalidArgument:
        now = time.monotonic()
        last, suppressed = self._logged.get(principal, (-self._interval, 0))
        if now - last >= self._interval:
            security_log.warning(
                "request body does not decode",
                extra={"event": "malformed_request", "principal": principal, "method": method,
                       "suppressed_since_last": suppressed})
            self._logged[principal] = (now, 0)
        else:
            self._logged[principal] = (last, suppressed + 1)
        return InvalidArgument("MALFORMED_REQUEST", "the request body is not a valid "
                               f"protobuf message for {method}")
