"""The guard interceptor: authenticate, authorise, limit, map errors — for every RPC.

A grpc.aio interceptor sees only the method name, not the servicer context,
so it wraps the RpcMethodHandler that ``continuation`` returns; the wrapper
runs inside the call, where ``context.auth_context()`` is available, and
hands the principal to the servicer through a contextvar (:mod:`.auth`).

The wrapper is composed of small pieces, each its own module: the peer
certificate check (:mod:`.revocation`), identity and role (:mod:`.auth`),
undecodable bodies (:mod:`.bodies`), per-principal limits (:mod:`.limits`) and
stream bounds (:mod:`.streams`), then status mapping here. Metrics and the per-call
logging context are their own interceptor (:mod:`.metrics`), composed outside this one
in :mod:`.server`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import grpc

from . import auth
from .bodies import UNDECODABLE, BadBodies, lenient
from .config import Principal
from .errors import SymbolsvcError, Unauthenticated
from .limits import Lease, Limiter, LimitsConfig
from .revocation import PeerCheck
from .status import to_status
from .streams import bounded_replies, bounded_requests

log = logging.getLogger("symbolsvc.server")

# The behaviours of a grpc.aio RpcMethodHandler: coroutines and async generators (grpc's
# type stubs describe only the synchronous server's plain functions).
_Unary = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
_Streaming = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]
_AuthContext = Mapping[str, Sequence[bytes]]

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
"""Never counted against any limit: probes must answer under any load."""


def _counter(request: Any) -> Callable[[Any], int]:
    """How many items a request of this type carries: the lengths of its repeated
    fields (a batch's numbers or translations), at least 1."""
    names = [f.name for f in type(request).DESCRIPTOR.fields
             if f.is_repeated]
    if not names:
        return lambda _m: 1
    return lambda m: max(1, sum(len(getattr(m, n)) for n in names))


class GuardInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, principals: Mapping[str, Principal], *, limiter: Limiter | None = None,
                 peers: PeerCheck | None = None, bodies: BadBodies | None = None) -> None:
        self._principals = principals  # identity (URI SAN) -> principal
        self._limiter = limiter
        self._peers = peers
        self._bodies = bodies or BadBodies()
        self._bounds = limiter.config if limiter is not None else LimitsConfig({}, {})
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
        limiter = None if method == HEALTH_CHECK else self._limiter
        bodies, peers, bounds = self._bodies, self._peers, self._bounds
        count: list[Callable[[Any], int]] = []
        deserializer = lenient(handler.request_deserializer)

        def items(request: Any) -> int:
            if not count:
                count.append(_counter(request))
            return count[0](request)

        def enter(context: grpc.aio.ServicerContext) -> Principal:
            # grpc.aio's stubs promise an iterable per key; it is a list of bytes
            ac = cast(_AuthContext, context.auth_context())
            if peers is not None:
                pem = ac.get("x509_pem_cert")
                if not pem:
                    raise Unauthenticated("NO_CLIENT_CERTIFICATE", "a client certificate "
                                          "issued by the deployment CA is required")
                peers.check(pem[0], method)
            p = auth.identify(ac, self._principals, method)
            auth.authorize(p, method)
            auth.set_principal(p)
            return p

        def admit(p: Principal, request: Any, *, stream: bool) -> Lease | None:
            if request is UNDECODABLE:
                raise bodies.reject(p.name, method)
            if limiter is None:
                return None
            n = 1 if request is None else items(request)
            return limiter.admit(p.name, p.roles, method, stream=stream, items=n)

        def guarded(p: Principal, requests: Any) -> Any:
            async def check(message: Any) -> None:
                if message is UNDECODABLE:
                    raise bodies.reject(p.name, method)
                if limiter is not None:
                    await limiter.pace(p.name, p.roles, items(message))

            return bounded_requests(requests, idle=bounds.stream_idle_seconds,
                                    lifetime=bounds.stream_max_seconds, check=check)

        async def fail(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
            if isinstance(exc, grpc.aio.AbortError):
                raise exc  # the servicer already chose a status
            if isinstance(exc, SymbolsvcError):
                status = to_status(exc)
                await context.abort(status.code, status.details, status.trailing_metadata)
            if isinstance(exc, NotImplementedError):
                # A generated servicer base method nobody overrides (health's List).
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not "
                                    "implemented by this server")
            log.exception("unexpected error in %s", method)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; the operator has "
                                "been alerted (see the server log)")

        if not handler.request_streaming and not handler.response_streaming:
            inner = cast(_Unary, handler.unary_unary)

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                lease = None
                try:
                    lease = admit(enter(context), request, stream=False)
                    return await inner(request, context)
                except Exception as exc:
                    await fail(context, exc)
                    raise
                finally:
                    if lease is not None:
                        lease.release()

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, deserializer, handler.response_serializer)

        if handler.request_streaming and not handler.response_streaming:
            inner_su = cast(_Unary, handler.stream_unary)

            async def stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
                lease = None
                try:
                    p = enter(context)
                    lease = admit(p, None, stream=False)
                    return await inner_su(guarded(p, requests), context)
                except Exception as exc:
                    await fail(context, exc)
                    raise
                finally:
                    if lease is not None:
                        lease.release()

            return grpc.stream_unary_rpc_method_handler(
                stream_unary, deserializer, handler.response_serializer)

        if handler.unary_stream and not inspect.isasyncgenfunction(handler.unary_stream):
            # A handler that writes with context.write() and returns (grpc's health Watch).
            inner_writer = cast(_Unary, handler.unary_stream)

            async def unary_writer(request: Any, context: grpc.aio.ServicerContext) -> None:
                lease = None
                try:
                    lease = admit(enter(context), request, stream=True)
                    await inner_writer(request, context)
                except Exception as exc:
                    await fail(context, exc)
                    raise
                finally:
                    if lease is not None:
                        lease.release()

            return grpc.unary_stream_rpc_method_handler(
                unary_writer, deserializer, handler.response_serializer)

        if handler.unary_stream:
            inner_us = cast(_Streaming, handler.unary_stream)
            lifetime = bounds.watch_max_seconds

            async def unary_stream(request: Any,
                                   context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                lease = None
                try:
                    lease = admit(enter(context), request, stream=True)
                    async for reply in bounded_replies(inner_us(request, context), lifetime):
                        yield reply
                except Exception as exc:
                    await fail(context, exc)
                    raise
                finally:
                    if lease is not None:
                        lease.release()

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, deserializer, handler.response_serializer)

        inner_ss = cast(_Streaming, handler.stream_stream)

        async def stream_stream(requests: Any,
                                context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            lease = None
            try:
                p = enter(context)
                lease = admit(p, None, stream=True)
                async for reply in inner_ss(guarded(p, requests), context):
                    yield reply
            except Exception as exc:
                await fail(context, exc)
                raise
            finally:
                if lease is not None:
                    lease.release()

        return grpc.stream_stream_rpc_method_handler(
            stream_stream, deserializer, handler.response_serializer)
