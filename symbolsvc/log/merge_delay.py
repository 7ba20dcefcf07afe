"""The maximum merge delay, watched: integration lag, a stalled lease, quarantined rows.

Every server process's sequencer reads the log's status each interval
(:meth:`~symbolsvc.registry.LogStore.log_status`), whether or not it holds the lease,
and hands it to :class:`LogWatch`, which

* measures the **integration lag** (seconds since the oldest queued record was
  appended; 0 when the queue is empty) as ``symbolsvc_log_integration_lag_seconds``;
* reports when the lag exceeds ``[access_log] max_merge_delay`` and when it is back
  within it (security-log events ``merge_delay_exceeded`` / ``merge_delay_restored``);
  meanwhile the server's health of ``symbolsvc.v1.BrokerService`` is NOT_SERVING, since
  the receipts it signs promise integration within the delay;
* reports a **stalled lease**: another holder keeps the sequencer lease unexpired
  while the oldest queued record waits longer than a whole lease term
  (``sequencer_lease_stalled`` / ``sequencer_lease_resumed``,
  ``symbolsvc_log_lease_stalls_total``, ``symbolsvc_log_lease_stalled``), so a lease
  parked for a made-up holder is never waited on silently;
* reports **quarantined rows** (docs/QUEUE_AUTH.md): every row the sequencer refused
  (``queued_record_quarantined``, ``symbolsvc_log_quarantined_records_total``) and,
  from the database, how many no operator has reviewed
  (``symbolsvc_log_quarantine_unreviewed``); while any is unreviewed the log is
  *degraded* (health ``symbolsvc.access_log`` NOT_SERVING).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from prometheus_client import Counter, Gauge

from ..registry import Integration, LogStatus

security_log = logging.getLogger("symbolsvc.security")

LAG = Gauge("symbolsvc_log_integration_lag_seconds", "Seconds since the oldest access record "
            "still waiting for integration was appended (0: none waits).",
            multiprocess_mode="max")
QUARANTINED = Counter("symbolsvc_log_quarantined_records_total", "Queued access records the "
                      "sequencer refused to integrate (failed authentication) and quarantined.")
UNREVIEWED = Gauge("symbolsvc_log_quarantine_unreviewed", "Quarantined queued records no "
                   "operator has reviewed yet (the log is degraded while any is).",
                   multiprocess_mode="max")
STALLS = Counter("symbolsvc_log_lease_stalls_total", "Times another holder kept the sequencer "
                 "lease past a whole term without integrating the queued records.")
STALLED = Gauge("symbolsvc_log_lease_stalled", "1 while another holder keeps the sequencer "
                "lease without integrating.", multiprocess_mode="max")


class LogWatch:
    """The merge-delay, lease and quarantine state of one process; see the module doc."""

    def __init__(self, max_merge_delay: float, lease_ms: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.max_merge_delay = max_merge_delay
        self.lease_ms = lease_ms
        self._clock = clock
        self.lag = 0.0
        self.exceeded = False
        self.stalled_by: str | None = None
        self.unreviewed = 0
        self._since: float | None = None  # when this process saw the queue stop draining
        self._size = -1

    @property
    def broker_serving(self) -> bool:
        """False while the lag exceeds the maximum merge delay."""
        return not self.exceeded

    @property
    def log_serving(self) -> bool:
        """False while the log is degraded (lag, stalled lease, unreviewed quarantine)."""
        return not (self.exceeded or self.stalled_by or self.unreviewed)

    def observe(self, status: LogStatus, me: str) -> None:
        """Take in the status read at the start of a sequencer step by holder ``me``."""
        now = self._clock()
        oldest = status.oldest_queued_us
        # Two measures, the larger wins: the stored append time of the oldest queued row,
        # and how long this process has seen rows queued without the tree growing (which
        # no edit of a row's queued_us can hide).
        if oldest is None:
            self._since = None
        elif self._since is None or status.tree_size != self._size:
            self._since = now
        self._size = status.tree_size
        stored = 0.0 if oldest is None else max(0.0, now - oldest / 1e6)
        self.lag = max(stored, 0.0 if self._since is None else now - self._since)
        LAG.set(self.lag)
        self._merge_delay(status.tree_size)
        other = status.lease_holder not in (None, me) and status.lease_expires_us > now * 1e6
        stalled = other and self.lag * 1000 > self.lease_ms
        self._stall(status.lease_holder if stalled else None, status)
        if status.quarantined != self.unreviewed:
            self.unreviewed = status.quarantined
            UNREVIEWED.set(status.quarantined)

    def integrated(self, result: Integration) -> None:
        """Take in one integration step's result (the quarantined rows it moved)."""
        if result.quarantined:
            QUARANTINED.inc(result.quarantined)
            security_log.error(
                "queued access records failed authentication and were quarantined, not "
                "integrated (docs/QUEUE_AUTH.md): someone wrote to the access log's queue",
                extra={"event": "queued_record_quarantined", "count": result.quarantined,
                       "tree_size": result.tree_size})

    def _merge_delay(self, tree_size: int) -> None:
        exceeded = self.lag > self.max_merge_delay
        if exceeded == self.exceeded:
            return
        self.exceeded = exceeded
        if exceeded:
            security_log.error(
                "access log integration lag exceeds the maximum merge delay: receipts may be "
                "broken; BrokerService health NOT_SERVING",
                extra={"event": "merge_delay_exceeded", "lag_seconds": round(self.lag, 3),
                       "max_merge_delay": self.max_merge_delay, "tree_size": tree_size})
        else:
            security_log.warning(
                "access log integration lag is back within the maximum merge delay",
                extra={"event": "merge_delay_restored", "max_merge_delay": self.max_merge_delay,
                       "tree_size": tree_size})

    def _stall(self, holder: str | None, status: LogStatus) -> None:
        if holder == self.stalled_by:
            return
        if holder is not None:
            STALLS.inc()
            security_log.error(
                "another holder keeps the sequencer lease without integrating the queued "
                "records",
                extra={"event": "sequencer_lease_stalled", "holder": shown(holder),
                       "lease_expires_us": status.lease_expires_us,
                       "lag_seconds": round(self.lag, 3)})
        else:
            security_log.warning(
                "the sequencer lease is no longer stalled",
                extra={"event": "sequencer_lease_resumed", "holder": shown(self.stalled_by)})
        self.stalled_by = holder
        STALLED.set(1 if holder else 0)


def shown(holder: str | None) -> str | None:
    """A lease holder as logged: it is whatever the row says (someone with database access
    may have written it), so long digit runs are masked and the length bounded."""
    return None if holder is None else re.sub(r"[0-9\uff10-\uff19]{8,}", "<digits>", holder)[:128]


__all__ = ["LogWatch", "shown"]
