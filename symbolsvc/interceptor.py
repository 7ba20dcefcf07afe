"""The one server interceptor: authenticate, authorise, map errors, count — for every RPC.

A grpc.aio interceptor sees only the method name, not the servicer context,
so it wraps the RpcMethodHandler that ``continuation`` returns; the wrapper
runs inside the call, where ``context.auth_context()`` is available, and
hands the principal to the servicer through a contextvar (:mod:`.auth`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import grpc
from prometheus_client import Counter, Histogram

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

RPCS = Counter("symbolsvc_rpcs_total", "RPCs handled, by method and status code",
               ["method", "code"])
LATENCY = Histogram("symbolsvc_rpc_seconds", "RPC handling time, by method", ["method"],
                    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))


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
        # Pre-bound per method so the per-call path does no look-ups.
        latency = LATENCY.labels(method)
        ok = RPCS.labels(method, "OK")

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
                RPCS.labels(method, exc.code.name).inc()
                status = to_status(exc)
                await context.abort(status.code, status.details, status.trailing_metadata)
            log.exception("unexpected error in %s", method)
            RPCS.labels(method, "INTERNAL").inc()
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; the operator has "
                                "been alerted (see the server log)")

        if not handler.request_streaming and not handler.response_streaming:
            inner = cast(_Unary, handler.unary_unary)

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                start = time.perf_counter()
                try:
                    enter(context)
                    reply = await inner(request, context)
                except Exception as exc:
                    await fail(context, exc)
                    raise
                finally:
                    latency.observe(time.perf_counter() - start)
                ok.inc()
                return reply

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer)

        if handler.request_streaming and not handler.response_streaming:
            inner_su = cast(_Unary, handler.stream_unary)

            async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    enter(context)
                    reply = await inner_su(requests, context)
                except Exception as exc:
                    await fail(context, exc)
                    raise
                ok.inc()
                return reply

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
            ok.inc()

        return factory(streamed, handler.request_deserializer, handler.response_serializer)
