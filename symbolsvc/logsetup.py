"""Logging: the server log on stderr (JSON Lines, or text) and the JSON-lines security log.

Every record made during a call carries the call's ``request_id``, ``peer`` and
``principal`` (:mod:`.requestctx`).

The security log receives every denial (missing role, unknown identity,
permission-table refusal) with the structured fields the code attaches via
``extra=``. Nothing logged anywhere contains an individual number: the core
never passes one to a logger or an exception.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import TextIO

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        doc.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        return json.dumps(doc, ensure_ascii=False, default=str)


def setup_logging(security_log: Path | None, level: int = logging.INFO,
                  fmt: str = "json", stream: TextIO | None = None) -> None:
    from .requestctx import ContextFilter

    root = logging.getLogger()
    root.setLevel(level)
    stderr = logging.StreamHandler(stream or sys.stderr)
    stderr.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    stderr.addFilter(ContextFilter())
    root.handlers[:] = [stderr]
    if security_log is not None:
        security_log.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(security_log, encoding="utf-8")
        handler.setFormatter(JsonFormatter())
        handler.addFilter(ContextFilter())
        logging.getLogger("symbolsvc.security").addHandler(handler)
