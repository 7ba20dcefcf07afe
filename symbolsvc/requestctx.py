"""Per-call logging context: request id, peer address and principal on every log line.

:func:`begin` runs at the start of each call (from :class:`.metrics.MetricsInterceptor`,
the outermost interceptor) and keeps the call's servicer context in a contextvar; nothing
else is done per call. The first log record made inside the call reads the request id (the
caller's ``x-request-id`` metadata when it is a short token, else a fresh random one) and
the peer address, and keeps them for the call's later records; the principal comes from
:mod:`.auth`. :class:`ContextFilter` puts them on every log record made while the call
runs, so the JSON log lines and the security log carry them. Most calls log nothing, and
pay for none of it (a fresh uuid4 per call was about 5 % of the event loop's busy time in
the soak's profile).
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

import grpc

from . import auth

_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class _Call:
    """One call's logging context, read from the servicer context when first needed."""

    __slots__ = ("_context", "_ids")

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context
        self._ids: tuple[str, str] | None = None

    def ids(self) -> tuple[str, str]:
        """(request id, peer address)."""
        if self._ids is None:
            rid = peer = ""
            try:
                for key, value in self._context.invocation_metadata() or ():
                    if key == "x-request-id" and isinstance(value, str) and \
                            _TOKEN.fullmatch(value):
                        rid = value
                        break
                peer = self._context.peer() or ""
            except (RuntimeError, ValueError):  # a record made after the call ended
                pass
            self._ids = (rid or uuid.uuid4().hex, peer)
        return self._ids


_call: contextvars.ContextVar[_Call] = contextvars.ContextVar("symbolsvc_call")


def begin(context: grpc.aio.ServicerContext) -> None:
    _call.set(_Call(context))


def request_id() -> str | None:
    call = _call.get(None)
    return None if call is None else call.ids()[0]


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``peer`` and ``principal`` to records made inside a call."""

    def filter(self, record: logging.LogRecord) -> bool:
        call = _call.get(None)
        if call is not None:
            record.request_id, record.peer = call.ids()
            if not hasattr(record, "principal"):
                try:
                    record.principal = auth.principal().name
                except LookupError:
                    pass
        return True
