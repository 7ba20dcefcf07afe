"""The server's HTTP/2 limits, seen on the wire by a client holding a valid certificate.

The server's SETTINGS frame advertises the configured per-connection stream limit and
header list size; a PING flood is answered with GOAWAY (other connections go on);
bad ``[server]`` limit values are one-line configuration errors.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from helpers import SERVING, Clients, ServerProcess, StartServer
from symbolsvc_client import Deployment

from symbolsvc.errors import ConfigError
from symbolsvc.server_options import ConnectionLimits

LIMITS = {"max_concurrent_streams": 8, "max_header_list_bytes": 8192,
          "min_ping_interval_ms": 60_000, "max_ping_strikes": 2}


class RawH2:
    """An HTTP/2 connection over the deployment's mutual TLS, driven frame by frame."""

    def __init__(self, server: ServerProcess, name: str = "tax-office") -> None:
        pki = server.directory / "pki"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(pki / "ca.crt")
        ctx.load_cert_chain(pki / f"{name}.crt", pki / f"{name}.key")
        ctx.check_hostname = False  # the chain is verified; the name is the test's
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection((server.host, server.port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.events: list[h2.events.Event] = []

    def read_until(self, kind: type, timeout: float = 15) -> h2.events.Event | None:
        """Events until one of ``kind`` (returned), EOF or the deadline (None)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self.events:
                if isinstance(ev, kind):
                    return ev
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ssl.SSLError, OSError):
                continue
            if not data:
                return None
            self.events += self.conn.receive_data(data)
            out = self.conn.data_to_send()
            if out:
                self.sock.sendall(out)
        return None

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def limited(fresh_deployment: Path, start_server: StartServer) -> ServerProcess:
    return start_server(fresh_deployment, {"server": LIMITS})


def test_settings_advertise_the_configured_limits(limited: ServerProcess) -> None:
    h = RawH2(limited)
    try:
        ev = h.read_until(h2.events.RemoteSettingsChanged)
        assert ev is not None
        got = {int(k): v.new_value for k, v in ev.changed_settings.items()}
        S = h2.settings.SettingCodes
        assert got[S.MAX_CONCURRENT_STREAMS] == LIMITS["max_concurrent_streams"]
        # grpc.http2.max_frame_size is set, but grpcio 1.85 advertises 4 MiB whatever it
        # is (docs/HARDENING.md): not asserted here.
        assert got[S.MAX_HEADER_LIST_SIZE] == LIMITS["max_header_list_bytes"]
    finally:
        h.close()


def test_a_ping_flood_is_answered_with_goaway(limited: ServerProcess) -> None:
    h = RawH2(limited)
    try:
        assert h.read_until(h2.events.RemoteSettingsChanged) is not None
        for i in range(50):
            h.conn.ping(struct.pack(">Q", i))
        h.sock.sendall(h.conn.data_to_send())
        ev = h.read_until(h2.events.ConnectionTerminated)
        assert ev is not None and ev.error_code == 11  # ENHANCE_YOUR_CALM
    finally:
        h.close()
    # Other connections are unaffected.
    c = Clients(Deployment(limited.directory), limited.address)
    assert c.auditor().health("") == SERVING
    c.close()


@pytest.mark.parametrize("key,value", [
    ("max_concurrent_streams", 0), ("max_concurrent_streams", "100"),
    ("max_frame_bytes", 1000), ("max_frame_bytes", 2**24), ("max_header_list_bytes", 100),
    ("handshake_timeout_ms", True), ("max_connection_age_ms", -1)])
def test_bad_limits_are_configuration_errors(key: str, value: object) -> None:
    with pytest.raises(ConfigError) as info:
        ConnectionLimits.from_table({key: value}, "config.toml")
    assert key in str(info.value) and "\n" not in str(info.value)
