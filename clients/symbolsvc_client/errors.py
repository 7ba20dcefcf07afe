"""The one error a call raises: :class:`CallError`, with the server's machine-readable reason."""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import grpc
import grpc.aio
from google.protobuf import any_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class CallError(Exception):
    """A call failed: ``code`` (grpc.StatusCode), ``reason`` (UPPER_SNAKE), ``message``."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str, field: str = "") -> None:
        super().__init__(f"{code.name}: {message}" + (f" [{reason}]" if reason else ""))
        self.code = code
        self.reason = reason
        self.message = message
        self.field = field

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> CallError:
        reason = field = ""
        status = None
        if isinstance(err, grpc.Call | grpc.aio.AioRpcError):
            # The asyncio error has the same accessors as a grpc.Call.
            status = rpc_status.from_call(cast(grpc.Call, err))
        details: Sequence[any_pb2.Any] = status.details if status else ()
        for detail in details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason = info.reason
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                if bad.field_violations:
                    field = bad.field_violations[0].field
        return cls(err.code(), reason, err.details() or "", field)
