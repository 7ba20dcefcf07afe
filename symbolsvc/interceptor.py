"""The guard interceptor: authenticate, authorise, map errors — for every RPC.

Metrics and the per-call logging context are their own interceptor
(:mod:`.metrics`), composed outside this one in :mod:`.server`.

A grpc.aio interceptor sees only the method name, not the servicer context,
so it wraps the RpcMethodHandler that ``continuation`` returns; the wrapper
runs inside the call, where ``context.auth_context()`` is available, and
hands the principal to the servicer through a contextvar (:mod:`.auth`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import grpc

from . import auth
from .config import Principal
from .errors import SymbolsvcError
from .status import to_status

log = logging.getLogger("symbolsvc.server")

# The behaviours of a grpc.aio RpcMethodHandler: coroutines and async generators (grpc's
# type stubs describe only the synchronous server's plain functions).
_Unary = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
_Streaming = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]
_AuthContext = Mapping[str, Sequence[bytes]]


class GuardInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, principals: Mapping[str, Principal]) -> None:
        self._principals = principals  # identity (URI SAN) -> principal
        # method -> (the service's handler, our wrapper of it). The wrappers hold no
        # per-call state, so each is built once rather than on every call.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails],
                               Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None  # unknown method: gRPC answers UNIMPLEMENTED
        cached = self._wrapped.get(details.method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(details.method, handler)
        self._wrapped[details.method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        def enter(context: grpc.aio.ServicerContext) -> None:
            # grpc.aio's stubs promise an iterable per key; it is a list of bytes
            p = auth.identify(cast(_AuthContext, context.auth_context()), self._principals,
                              method)
            auth.authorize(p, method)
            auth.set_principal(p)

        async def fail(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
            if isinstance(exc, grpc.aio.AbortError):
                raise exc  # the servicer already chose a status
            if isinstance(exc, SymbolsvcError):
                status = to_status(exc)
                await context.abort(status.code, status.details, status.trailing_metadata)
            log.exception("unexpected error in %s", method)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; the operator has "
                                "been alerted (see the server log)")

        if not handler.request_streaming and not handler.response_streaming:
            inner = cast(_Unary, handler.unary_unary)

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    enter(context)
                    return await inner(request, context)
                except Exception as exc:
                    await fail(context, exc)
                    raise

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer)

        if handler.request_streaming and not handler.response_streaming:
            inner_su = cast(_Unary, handler.stream_unary)

            async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    enter(context)
                    return await inner_su(requests, context)
                except Exception as exc:
                    await fail(context, exc)
                    raise

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, handler.request_deserializer, handler.response_serializer)

        streaming = cast(_Streaming, handler.unary_stream or handler.stream_stream)
        factory = (grpc.unary_stream_rpc_method_handler if handler.unary_stream
                   else grpc.stream_stream_rpc_method_handler)

        async def streamed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                enter(context)
                async for reply in streaming(request, context):
                    yield reply
            except Exception as exc:
                await fail(context, exc)
                raise

        return factory(streamed, handler.request_deserializer, handler.response_serializer)
