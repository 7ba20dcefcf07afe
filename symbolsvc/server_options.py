"""The gRPC server's channel options: every HTTP/2 and connection limit in one place.

grpc core reads these as channel arguments (``include/grpc/impl/channel_arg_names.h``).
Each bounds one thing an authenticated but hostile client could otherwise grow without
limit (docs/HARDENING.md says what each one bounds and what none of them can):

* ``max_concurrent_streams`` — HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: calls in flight on
  one connection (the server-wide cap is ``max_concurrent_rpcs``). The default, 512, is
  twice the broker's 256-call budget: grpc counts a finished stream until the application
  has released it, so a connection kept busy at its principal's budget would otherwise see
  REFUSED_STREAM (UNAVAILABLE) before its own limit answers RESOURCE_EXHAUSTED.
* ``max_header_list_bytes`` — request metadata (HEADERS plus CONTINUATION frames) per call;
  a larger header block is refused, so header buffering per stream is bounded.
* ``max_frame_bytes`` — SETTINGS_MAX_FRAME_SIZE the server accepts.
* ``min_ping_interval_ms`` / ``max_ping_strikes`` — pings without data more often than
  the interval are strikes; after the strikes, GOAWAY (ENHANCE_YOUR_CALM).
* ``keepalive_time_ms`` / ``keepalive_timeout_ms`` — the server's own pings find dead peers.
* ``max_connection_idle_ms`` — a connection with no call for this long is closed.
* ``max_connection_age_ms`` / ``max_connection_age_grace_ms`` — every connection is
  drained (GOAWAY) after this age, so none keeps state or a worker forever, and clients
  rebalance over ``--workers`` and replicas; calls in flight get the grace period.
* ``handshake_timeout_ms`` — a TCP connection must finish the TLS handshake this fast
  (grpc's default is 120 s: cheap slow-loris).
* ``max_connections`` — incoming connections held at once per process (0: no limit).
* ``max_rss_mib`` — not a channel argument: the process's memory bound (:mod:`.memguard`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .errors import ConfigError

HTTP2_MIN_FRAME = 16_384  # RFC 9113 §4.2: the smallest SETTINGS_MAX_FRAME_SIZE
HTTP2_MAX_FRAME = 16_777_215


@dataclass(frozen=True)
class ConnectionLimits:
    """``[server]`` keys bounding connections and HTTP/2 (defaults: docs/CONFIG.md)."""

    max_concurrent_streams: int = 512
    max_header_list_bytes: int = 16_384
    max_frame_bytes: int = HTTP2_MIN_FRAME
    min_ping_interval_ms: int = 10_000
    max_ping_strikes: int = 2
    keepalive_time_ms: int = 60_000
    keepalive_timeout_ms: int = 20_000
    max_connection_idle_ms: int = 15 * 60_000
    max_connection_age_ms: int = 30 * 60_000
    max_connection_age_grace_ms: int = 30_000
    handshake_timeout_ms: int = 10_000
    max_connections: int = 0  # 0: unlimited
    max_rss_mib: int = 0  # past it the process drains and exits 3 (memguard.py); 0: off

    @classmethod
    def from_table(cls, server: dict[str, Any], where: str) -> ConnectionLimits:
        """The limits of a config file's ``[server]`` table; ConfigError names a bad key."""
        values: dict[str, int] = {}
        for f in fields(cls):
            if f.name not in server:
                continue
            value = server[f.name]
            floor = 0 if f.name in ("max_connections", "max_ping_strikes", "max_rss_mib") \
                else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < floor \
                    or value > 2**31 - 1:
                raise ConfigError(f"{where}: [server] {f.name} must be an integer from "
                                  f"{floor} to {2**31 - 1}")
            values[f.name] = value
        limits = cls(**values)
        if not HTTP2_MIN_FRAME <= limits.max_frame_bytes <= HTTP2_MAX_FRAME:
            raise ConfigError(f"{where}: [server] max_frame_bytes must be from "
                              f"{HTTP2_MIN_FRAME} to {HTTP2_MAX_FRAME} (RFC 9113)")
        if limits.max_header_list_bytes < 1024:
            raise ConfigError(f"{where}: [server] max_header_list_bytes must be at least 1024")
        return limits


def server_options(limits: ConnectionLimits, max_message_bytes: int, *,
                   reuseport: bool = False) -> list[tuple[str, int]]:
    """The channel arguments of the mTLS server (``grpc.aio.server(options=...)``)."""
    options = [
        # gRPC enables SO_REUSEPORT by default, so a second server on the same port
        # would bind silently and steal calls; only --workers N shares a port on purpose.
        ("grpc.so_reuseport", 1 if reuseport else 0),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_concurrent_streams", limits.max_concurrent_streams),
        # Soft limit = hard limit: no random rejections between the two.
        ("grpc.max_metadata_size", limits.max_header_list_bytes),
        ("grpc.absolute_max_metadata_size", limits.max_header_list_bytes),
        ("grpc.http2.max_frame_size", limits.max_frame_bytes),
        ("grpc.http2.min_ping_interval_without_data_ms", limits.min_ping_interval_ms),
        ("grpc.http2.max_ping_strikes", limits.max_ping_strikes),
        ("grpc.keepalive_time_ms", limits.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", limits.keepalive_timeout_ms),
        # Clients may keep idle connections alive with pings no more often than allowed.
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_connection_idle_ms", limits.max_connection_idle_ms),
        ("grpc.max_connection_age_ms", limits.max_connection_age_ms),
        ("grpc.max_connection_age_grace_ms", limits.max_connection_age_grace_ms),
        ("grpc.server_handshake_timeout_ms", limits.handshake_timeout_ms),
    ]
    if limits.max_connections:
        options.append(("grpc.max_allowed_incoming_connections", limits.max_connections))
    return options


def probe_options() -> list[tuple[str, int]]:
    """The loopback plaintext health port: no sharing, small limits."""
    defaults = ConnectionLimits()
    return [
        ("grpc.so_reuseport", 0),
        ("grpc.max_concurrent_streams", 16),
        ("grpc.max_metadata_size", defaults.max_header_list_bytes),
        ("grpc.absolute_max_metadata_size", defaults.max_header_list_bytes),
        ("grpc.server_handshake_timeout_ms", defaults.handshake_timeout_ms),
        ("grpc.max_connection_idle_ms", 60_000),
    ]
