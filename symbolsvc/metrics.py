"""Prometheus metrics: gRPC server metrics under go-grpc-prometheus names, and domain metrics.

Why the ``grpc_server_*`` family (go-grpc-prometheus, also what grpc-ecosystem's Java and
Python exporters and the common Grafana gRPC dashboards use) rather than OpenTelemetry's
``rpc.server.call.duration``: the service already exposes a Prometheus scrape endpoint,
and prometheus-client's multiprocess mode (needed for ``--workers``) has no OpenTelemetry
counterpart; dashboards for gRPC services query exactly these names and labels:

- ``grpc_server_started_total``, ``grpc_server_handled_total`` (+ ``grpc_code``),
  ``grpc_server_msg_received_total``, ``grpc_server_msg_sent_total``,
  ``grpc_server_handling_seconds`` (histogram), labelled ``grpc_type`` (unary,
  client_stream, server_stream, bidi_stream), ``grpc_service``, ``grpc_method``.

Domain metrics (``symbolsvc_*``) count outcomes read from the replies (never a number or
a symbol: labels are method names, record kinds and status codes only) and sample the
access log's state once a second. Refusals by a configured limit are counted
where they happen, in ``symbolsvc_limit_rejections_total{principal,limit}`` (:mod:`.limits`).

:class:`MetricsInterceptor` is the outermost interceptor, so it sees every call,
including those the guard refuses, with its final status code.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc
from prometheus_client import Counter, Gauge, Histogram

from . import requestctx
from .log.sequencer import LogNotifier, Sequencer
from .policy import PolicyHolder

_LABELS = ("grpc_type", "grpc_service", "grpc_method")
STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", _LABELS)
HANDLED = Counter("grpc_server_handled_total", "RPCs completed on the server, regardless of "
                  "success or failure.", (*_LABELS, "grpc_code"))
MSG_RECEIVED = Counter("grpc_server_msg_received_total", "RPC stream messages received on "
                       "the server.", _LABELS)
MSG_SENT = Counter("grpc_server_msg_sent_total", "gRPC stream messages sent on the server.",
                   _LABELS)
HANDLING = Histogram("grpc_server_handling_seconds", "Histogram of response latency "
                     "(seconds) of gRPC that had been application-level handled by the server.",
                     _LABELS, buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25, 0.5, 1, 2.5, 5, 10, 30, 60))

HOLDINGS_REGISTERED = Counter("symbolsvc_holdings_registered_total",
                              "Holdings created (or re-created after a release) by issue calls.")
HOLDINGS_EXISTING = Counter("symbolsvc_holdings_existing_total",
                            "Issue items answered from a holding that already existed.")
HOLDINGS_RELEASED = Counter("symbolsvc_holdings_released_total",
                            "Holdings ended by ReleaseSymbol.")
ITEMS_FAILED = Counter("symbolsvc_items_failed_total", "Batch and stream items that failed, "
                       "by method and status code.", ("grpc_method", "grpc_code"))
RECORDS_APPENDED = Counter("symbolsvc_access_records_appended_total",
                           "Access records durably appended, by kind.", ("kind",))
LOG_TREE_SIZE = Gauge("symbolsvc_access_log_tree_size", "Size of the access log's latest "
                      "signed checkpoint (integrated records).", multiprocess_mode="max")
LOG_PENDING = Gauge("symbolsvc_access_log_pending_records", "Records this process appended "
                    "that the tree does not include yet (integration lag, in records).",
                    multiprocess_mode="max")
LOG_GROWN_AT = Gauge("symbolsvc_access_log_last_growth_timestamp_seconds", "When this process "
                     "last saw the tree grow (integration lag: now minus this, while records "
                     "are pending).", multiprocess_mode="max")
SEQUENCER_LEADER = Gauge("symbolsvc_sequencer_leader", "1 while this process holds the "
                         "sequencer lease (the sum over a deployment's processes is 1).",
                         multiprocess_mode="livesum")
POLICY_RULES = Gauge("symbolsvc_policy_rules", "Rules in the permission table in force.",
                     multiprocess_mode="max")
POLICY_LOADED = Gauge("symbolsvc_policy_loaded_timestamp_seconds", "When the permission "
                      "table in force was loaded (changes on each successful SIGHUP reload).",
                      multiprocess_mode="max")
POLICY_VERSION = Gauge("symbolsvc_policy_version", "Version of the permission table in force, "
                       "where the table carries one.", multiprocess_mode="max")

_max_record_id = -1
# The behaviours of a grpc.aio RpcMethodHandler: coroutines and async generators (grpc's
# type stubs describe only the synchronous server's plain functions).
_Unary = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
_Streaming = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]


def _kind(handler: grpc.RpcMethodHandler) -> str:
    if handler.request_streaming:
        return "bidi_stream" if handler.response_streaming else "client_stream"
    return "server_stream" if handler.response_streaming else "unary"


def _count_reply(method: str, reply: Any) -> None:
    """Domain counters from one reply message (numbers and symbols are never read)."""
    global _max_record_id
    name = type(reply).__name__
    if name == "IssueSymbolResponse":
        (HOLDINGS_REGISTERED if reply.newly_registered else HOLDINGS_EXISTING).inc()
    elif name in ("BatchIssueSymbolsResponse", "StreamIssueSymbolsResponse"):
        new = old = 0
        for r in reply.results:
            if r.WhichOneof("outcome") == "issued":
                if r.issued.newly_registered:
                    new += 1
                else:
                    old += 1
            else:
                ITEMS_FAILED.labels(method, _code_name(r.error.code)).inc()
        HOLDINGS_REGISTERED.inc(new)
        HOLDINGS_EXISTING.inc(old)
    elif name == "ReleaseSymbolResponse" and reply.was_held:
        HOLDINGS_RELEASED.inc()
    elif name in ("TranslateSymbolResponse", "ResolveProvidersResponse"):
        RECORDS_APPENDED.labels("translation" if name[0] == "T" else "resolution").inc()
        _max_record_id = max(_max_record_id, reply.record_id)
    elif name == "BatchTranslateSymbolsResponse":
        n = 0
        for r in reply.results:
            if r.WhichOneof("outcome") == "translated":
                n += 1
                _max_record_id = max(_max_record_id, r.translated.record_id)
            else:
                ITEMS_FAILED.labels(method, _code_name(r.error.code)).inc()
        RECORDS_APPENDED.labels("translation").inc(n)


_CODES = {c.value[0]: c.name for c in grpc.StatusCode}


def _code_name(code: int) -> str:
    return _CODES.get(code, str(code))


def _final_code(context: grpc.aio.ServicerContext, exc: BaseException | None) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int):
        return _code_name(code)
    if exc is None:
        return "OK"
    if isinstance(exc, asyncio.CancelledError):
        return "CANCELLED"
    return "UNKNOWN"


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts and times every RPC; sets the per-call logging context (:mod:`.requestctx`).

    ``count=False`` (no ``metrics_listen``: nothing would read them) keeps only the
    logging context, so a deployment without metrics pays nothing for them."""

    def __init__(self, count: bool = True) -> None:
        self._count = count
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails],
                               Awaitable[grpc.RpcMethodHandler | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        cached = self._wrapped.get(details.method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = _wrap(details.method, handler) if self._count else _context_only(handler)
        self._wrapped[details.method] = (handler, wrapped)
        return wrapped


def _wrap(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    service, _, name = method[1:].rpartition("/")
    kind = _kind(handler)
    labels = (kind, service, name)
    started, latency = STARTED.labels(*labels), HANDLING.labels(*labels)
    received, sent = MSG_RECEIVED.labels(*labels), MSG_SENT.labels(*labels)

    def finish(context: grpc.aio.ServicerContext, start: float,
               exc: BaseException | None) -> None:
        latency.observe(time.perf_counter() - start)
        HANDLED.labels(*labels, _final_code(context, exc)).inc()

    async def counted(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for r in requests:
            received.inc()
            yield r

    if kind in ("unary", "client_stream"):
        inner = cast(_Unary, handler.unary_unary if kind == "unary" else handler.stream_unary)

        async def unary_reply(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            started.inc()
            requestctx.begin(context)
            if kind == "unary":
                received.inc()
            else:
                request = counted(request)
            try:
                reply = await inner(request, context)
            except BaseException as exc:
                finish(context, start, exc)
                raise
            sent.inc()
            finish(context, start, None)
            with contextlib.suppress(AttributeError, ValueError):
                _count_reply(name, reply)
            return reply

        factory = (grpc.unary_unary_rpc_method_handler if kind == "unary"
                   else grpc.stream_unary_rpc_method_handler)
        return factory(unary_reply, handler.request_deserializer, handler.response_serializer)

    if _writes(handler):
        writer = cast(_Unary, handler.unary_stream)

        async def written(request: Any, context: grpc.aio.ServicerContext) -> None:
            start = time.perf_counter()
            started.inc()
            requestctx.begin(context)
            received.inc()
            try:
                await writer(request, context)
            except BaseException as exc:
                finish(context, start, exc)
                raise
            finish(context, start, None)

        return grpc.unary_stream_rpc_method_handler(
            written, handler.request_deserializer, handler.response_serializer)

    streaming = cast(_Streaming, handler.unary_stream if kind == "server_stream"
                     else handler.stream_stream)

    async def streamed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        start = time.perf_counter()
        started.inc()
        requestctx.begin(context)
        if kind == "server_stream":
            received.inc()
        else:
            request = counted(request)
        try:
            async for reply in streaming(request, context):
                sent.inc()
                with contextlib.suppress(AttributeError, ValueError):
                    _count_reply(name, reply)
                yield reply
        except BaseException as exc:
            finish(context, start, exc)
            raise
        finish(context, start, None)

    factory = (grpc.unary_stream_rpc_method_handler if kind == "server_stream"
               else grpc.stream_stream_rpc_method_handler)
    return factory(streamed, handler.request_deserializer, handler.response_serializer)


def _writes(handler: grpc.RpcMethodHandler) -> bool:
    """A server-streaming handler that writes with ``context.write()`` and returns instead of
    yielding (grpc's health Watch): it must be awaited, not iterated."""
    return bool(handler.unary_stream) and not inspect.isasyncgenfunction(handler.unary_stream)


def _context_only(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    kind = _kind(handler)
    if kind in ("unary", "client_stream"):
        inner = cast(_Unary, handler.unary_unary if kind == "unary" else handler.stream_unary)

        async def unary_reply(request: Any, context: grpc.aio.ServicerContext) -> Any:
            requestctx.begin(context)
            return await inner(request, context)

        factory = (grpc.unary_unary_rpc_method_handler if kind == "unary"
                   else grpc.stream_unary_rpc_method_handler)
        return factory(unary_reply, handler.request_deserializer, handler.response_serializer)
    if _writes(handler):
        writer = cast(_Unary, handler.unary_stream)

        async def written(request: Any, context: grpc.aio.ServicerContext) -> None:
            requestctx.begin(context)
            await writer(request, context)

        return grpc.unary_stream_rpc_method_handler(
            written, handler.request_deserializer, handler.response_serializer)
    streaming = cast(_Streaming, handler.unary_stream if kind == "server_stream"
                     else handler.stream_stream)

    async def streamed(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        requestctx.begin(context)
        async for reply in streaming(request, context):
            yield reply

    factory = (grpc.unary_stream_rpc_method_handler if kind == "server_stream"
               else grpc.stream_stream_rpc_method_handler)
    return factory(streamed, handler.request_deserializer, handler.response_serializer)


async def sample_domain(notifier: LogNotifier, sequencer: Sequencer | None,
                        policies: PolicyHolder, interval: float = 1.0) -> None:
    """Sample the access log's and the permission table's state every ``interval`` s."""
    last_size, policy = -1, None
    while True:
        size = notifier.size
        LOG_TREE_SIZE.set(size)
        if size != last_size:
            LOG_GROWN_AT.set(time.time())
            last_size = size
        LOG_PENDING.set(max(0, _max_record_id + 1 - size))
        SEQUENCER_LEADER.set(1 if sequencer is not None and sequencer.leader else 0)
        if policies.current is not policy:
            policy = policies.current
            POLICY_RULES.set(policy.rules)
            POLICY_LOADED.set(time.time())
            version = getattr(policy, "version", None)
            if isinstance(version, int):
                POLICY_VERSION.set(version)
        await asyncio.sleep(interval)
