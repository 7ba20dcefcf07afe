"""Publishing the permission table (docs/DISCLOSURE.md): before the server allows any
exchange under a table, the table is a POLICY record in the access log.

At start and on every SIGHUP the loaded table's canonical form is appended as a
POLICY record and its version registered, in one transaction; a version already
published (the same table again, another worker, a restart) writes nothing. Only
then does the server swap the table in, so every record that names a version
follows that version's POLICY record in the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .newrecords import policy_record
from .policy import Policy, PolicyHolder
from .registry import HoldingsStore, PublishedPolicy

log = logging.getLogger("symbolsvc.server")


def _now_us() -> int:
    return time.time_ns() // 1000


async def publish(registry: HoldingsStore, policy: Policy,
                  clock_us: Callable[[], int] = _now_us) -> PublishedPolicy:
    """Publish ``policy`` (idempotent per version); returns its publication."""
    now = clock_us()
    published = await registry.publish_policy(policy.version, policy_record(policy, now), now)
    log.info("permission table %s published (record %d, %d rules)", policy.version.hex(),
             published.record_id, policy.rules)
    return published


async def reload_and_publish(holder: PolicyHolder, registry: HoldingsStore) -> Policy:
    """SIGHUP: read the file (ConfigError keeps the old table), publish it, then swap it in."""
    table = holder.read()
    await publish(registry, table)
    holder.current = table
    return table
