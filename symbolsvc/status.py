"""Core errors as gRPC statuses: rich ``google.rpc.Status`` with ErrorInfo and BadRequest.

Clients read the details with ``grpc_status.rpc_status.from_call(call)``.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from .errors import SymbolsvcError
from .v1 import common_pb2

ERROR_DOMAIN = "symbolsvc.local"


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
    return rpc_status.to_status(
        status_pb2.Status(code=err.code.value[0], message=err.message, details=details)
    )


def item_error(err: SymbolsvcError) -> common_pb2.ItemError:
    return common_pb2.ItemError(
        code=err.code.value[0], reason=err.reason, message=err.message, field=err.field
    )


