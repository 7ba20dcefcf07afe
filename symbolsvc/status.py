"""Core errors as gRPC statuses: rich ``google.rpc.Status`` with ErrorInfo and BadRequest.

Clients read the details with ``grpc_status.rpc_status.from_call(call)``.

A ``RESOURCE_EXHAUSTED`` status also carries gRPC's own retry pushback trailer
(``grpc-retry-pushback-ms``, gRFC A6), which a channel with a retry policy obeys
without reading the details: the ``RetryInfo`` delay when the server says when to
retry within a second (a per-principal limit), ``-1`` ("do not retry") otherwise
(a full disk, or a wait the caller should decide on).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from .errors import SymbolsvcError
from .v1 import common_pb2

ERROR_DOMAIN = "symbolsvc.local"
PUSHBACK = "grpc-retry-pushback-ms"
PUSHBACK_MAX_S = 1.0
"""Longer waits are not pushed back: the caller reads ``RetryInfo`` and decides."""


class _Status(NamedTuple("_Status", [("code", grpc.StatusCode), ("details", str),
                                      ("trailing_metadata", tuple[tuple[str, Any], ...])]),
              grpc.Status):
    """A ``grpc.Status`` (as ``rpc_status.to_status`` makes) with more trailing metadata."""


def to_status(err: SymbolsvcError) -> grpc.Status:
    details = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=err.reason, domain=ERROR_DOMAIN))
    details.append(info)
    if err.field:
        bad = any_pb2.Any()
        bad.Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(
                field=err.field, description=err.message, reason=err.reason)
        ]))
        details.append(bad)
    retry_after: float | None = getattr(err, "retry_after", None)
    if retry_after is not None:
        retry = any_pb2.Any()
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_after * 1e9))
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        details.append(retry)
    status = rpc_status.to_status(
        status_pb2.Status(code=err.code.value[0], message=err.message, details=details)
    )
    if err.code is not grpc.StatusCode.RESOURCE_EXHAUSTED:
        return status
    pushback = "-1" if retry_after is None or retry_after > PUSHBACK_MAX_S \
        else str(max(1, round(retry_after * 1000)))
    return _Status(status.code, status.details,
                   (*status.trailing_metadata, (PUSHBACK, pushback)))


def item_error(err: SymbolsvcError) -> common_pb2.ItemError:
    return common_pb2.ItemError(
        code=err.code.value[0], reason=err.reason, message=err.message, field=err.field
    )


