"""The reference portal for tests: a real ``symbolsvc portal serve`` process, a headless
Chromium driving it, and a proxy that tampers with proofs in transit.

* :class:`PortalProcess` — starts the portal on a free port, learns the port from its
  ``symbolsvc portal serving on URL`` line, stops it with SIGTERM.
* :func:`chromium` — ``bench.browser.chromium``: a selenium driver for Debian's chromium and
  chromedriver, nothing downloaded.
* :class:`TamperingProxy` — forwards GETs to the portal, flipping one byte of every record
  proof it carries (and answering the event stream with 204, so the page stays quiet).
"""

from __future__ import annotations

import base64
import json
import queue
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.browser import chromium

__all__ = ["PortalProcess", "TamperingProxy", "chromium", "get"]

READY = "symbolsvc portal serving on "


class PortalProcess:
    def __init__(self, config: Path, log_path: Path) -> None:
        self.config = config
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 60.0) -> PortalProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "symbolsvc", "portal", "serve", "--config",
                 str(self.config), "--listen", "127.0.0.1:0"],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL)
        lines: queue.Queue[str | None] = queue.Queue()

        def read(proc: subprocess.Popen[bytes]) -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                lines.put(raw.decode(errors="replace"))
            lines.put(None)

        threading.Thread(target=read, args=(self.proc,), daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                self.proc.kill()
                raise RuntimeError(f"portal not ready after {timeout} s:\n"
                                   f"{self.log_path.read_text()[-4000:]}") from None
            if line is None:
                raise RuntimeError(f"portal exited before it was ready:\n"
                                   f"{self.log_path.read_text()[-4000:]}")
            if line.startswith(READY):
                self.url = line[len(READY):].strip()
                return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def link(self, symbol: str) -> str:
        """The person's page, from the real ``symbolsvc portal link`` (its path, on our URL)."""
        out = subprocess.run(
            [sys.executable, "-m", "symbolsvc", "portal", "link", "--config", str(self.config),
             symbol], capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        return self.url + out[out.index("/p/"):]


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a GET (error statuses included)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:  # noqa: S310 (http on loopback)
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def _flip(b64: str) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[0] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


class TamperingProxy:
    """An HTTP proxy in front of the portal that alters every proof it forwards."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.tampered = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0].endswith("/events"):
                    self.send_response(204)
                    self.end_headers()
                    return
                status, headers, body = get(proxy.upstream + self.path)
                if "/proof/" in self.path and status == 200:
                    proof = json.loads(body)
                    if proof["hashes"]:
                        proof["hashes"][0] = _flip(proof["hashes"][0])
                    else:
                        proof["leaf"] = _flip(proof["leaf"])
                    body = json.dumps(proof).encode()
                    proxy.tampered += 1
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding",
                                            "connection", "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TamperingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
