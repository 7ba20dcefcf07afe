"""Per-call logging context: request id, peer address and principal on every log line.

:func:`begin` runs at the start of each call (from :class:`.metrics.MetricsInterceptor`,
the outermost interceptor) and keeps the call's request id (the caller's ``x-request-id``
metadata when it is a short token, else a fresh one) and peer address in contextvars;
the principal comes from :mod:`.auth`. :class:`ContextFilter` copies them onto every log
record made while the call runs, so the JSON log lines and the security log carry them.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

import grpc

from . import auth

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("symbolsvc_request_id")
_peer: contextvars.ContextVar[str] = contextvars.ContextVar("symbolsvc_peer")
_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def begin(context: grpc.aio.ServicerContext) -> None:
    rid = ""
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and isinstance(value, str) and _TOKEN.fullmatch(value):
            rid = value
            break
    _request_id.set(rid or uuid.uuid4().hex)
    _peer.set(context.peer() or "")


def request_id() -> str | None:
    return _request_id.get(None)


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``peer`` and ``principal`` to records made inside a call."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = _request_id.get(None)
        if rid is not None:
            record.request_id = rid
            record.peer = _peer.get("")
            if not hasattr(record, "principal"):
                try:
                    record.principal = auth.principal().name
                except LookupError:
                    pass
        return True
