"""OpenTelemetry tracing: off by default; spans exported over OTLP when configured.

``[tracing] otlp_endpoint = "http://collector:4317"`` (OTLP/gRPC; ``https://`` for TLS)
turns it on; the SDK's standard ``OTEL_*`` variables (sampler, headers, batch sizes)
apply. The spans come from the maintained ``opentelemetry-instrumentation-grpc`` server
interceptor, one per RPC, with the RPC semantic-convention attributes (``rpc.system``,
``rpc.service``, ``rpc.method``, ``rpc.grpc.status_code``, the peer's address). It
records no message content, so no span attribute carries an individual number or a
symbol (tests/e2e/test_observability.py checks every attribute received by a collector).
"""

from __future__ import annotations

from typing import Any

import grpc

from .config import Config
from .errors import ConfigError


class Tracing:
    """The tracer provider of a server process (None when tracing is off)."""

    def __init__(self, config: Config) -> None:
        self.provider: Any = None
        self.interceptors: list[grpc.aio.ServerInterceptor] = []
        if not config.otlp_endpoint:
            return
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
            from opentelemetry.instrumentation.grpc import aio_server_interceptor
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            raise ConfigError("[tracing] otlp_endpoint is set, but OpenTelemetry is not "
                              "installed: pip install 'symbolsvc[tracing]'") from None
        endpoint = config.otlp_endpoint
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": config.trace_service_name}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
            endpoint=endpoint, insecure=endpoint.startswith("http://"))))
        self.interceptors = [aio_server_interceptor(tracer_provider=self.provider)]

    def shutdown(self) -> None:
        """Export what is buffered, then stop."""
        if self.provider is not None:
            self.provider.shutdown()
