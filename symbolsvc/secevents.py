"""Security events: one line in the security log and one count, by event name.

``symbolsvc_security_events_total{event}`` counts what the security log reports
about stored data and callers that the operator must look at (a record whose
sealed subject does not belong to it, an exchange id reused with other content,
an individual number in a free-form field). Labels are event names only: never a
number, a symbol or an agency's request.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import Counter

security_log = logging.getLogger("symbolsvc.security")

SECURITY_EVENTS = Counter(
    "symbolsvc_security_events_total",
    "Security events reported in the security log, by event name.", ("event",))


def report(event: str, message: str, **extra: Any) -> None:
    """Log ``message`` at WARNING in the security log with ``event`` and ``extra``, and
    count it. ``extra`` must hold no individual number and no symbol."""
    SECURITY_EVENTS.labels(event).inc()
    security_log.warning(message, extra={"event": event, **extra})
