"""gRPC core's own log lines, turned into JSON log records; handshake failures into the
security log.

gRPC's C core writes its diagnostics (absl format: ``I1206 04:17:29.298174 12527
ssl_transport_security.cc:2563] Handshake failed with error ...``) straight to file
descriptor 2, beside Python's logging. grpcio gives Python no hook for a refused TLS
handshake: no callback, no peer address, no certificate; the only trace is that line.
:func:`install` points descriptor 2 at a pipe, keeps Python's own ``sys.stderr`` on
the real stderr (so tracebacks never depend on the bridge), and a thread turns each
core line into a record of logger ``grpc`` (level from its first letter), and each
handshake failure also into a ``tls_handshake_failed`` event of the security log, with
gRPC's reason. What it cannot say: which peer (gRPC core does not log the address), and
anything gRPC logs below its verbosity (``GRPC_VERBOSITY``; handshake failures are logged
at INFO, which is on by default in the grpcio versions this project pins).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from typing import TextIO

_ABSL = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ ([^\]]+)\] (.*)$")
_LEVELS = {"I": logging.INFO, "W": logging.WARNING, "E": logging.ERROR, "F": logging.CRITICAL}
log = logging.getLogger("grpc")
security_log = logging.getLogger("symbolsvc.security")
_installed: TextIO | None = None


def install() -> TextIO:
    """Redirect descriptor 2 through the bridge (once per process); return a text stream
    on the real stderr for the log handlers."""
    global _installed
    if _installed is not None:
        return _installed
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    stream = os.fdopen(real, "w", buffering=1, encoding="utf-8", errors="replace")
    sys.stderr = stream
    threading.Thread(target=_pump, args=(read_end,), name="grpc-stderr", daemon=True).start()
    _installed = stream
    return stream


def _pump(fd: int) -> None:
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            forward(line.rstrip("\n"))


def forward(line: str) -> None:
    """One line from descriptor 2 as a log record (and a security event, for handshakes)."""
    if not line.strip():
        return
    m = _ABSL.match(line)
    if m is None:
        log.warning("%s", line, extra={"source": "stderr"})
        return
    level, where, message = m.groups()
    log.log(_LEVELS[level], "%s", message, extra={"source": where})
    if "Handshake failed" in message:
        security_log.warning("TLS handshake refused", extra={
            "event": "tls_handshake_failed", "reason": message, "source": where})
