"""What SIGHUP reloads besides the permission table and the revocation list (revocation.py):
the principals of config.toml.

The interceptor holds the identity -> principal mapping by reference; a reload replaces
its contents in one step on the event loop (no call sees a half-updated mapping). A file
that no longer loads is refused and the previous principals stay in force. Only principals
are taken up this way; other settings need a restart.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .config import Principal, agencies_without_principal, load_config
from .errors import ConfigError
from .policy import Policy

log = logging.getLogger("symbolsvc.server")


def reload_principals(path: Path, identities: dict[str, Principal], policy: Policy) -> None:
    try:
        config = load_config(path)
    except ConfigError as exc:
        log.error("principals NOT reloaded; keeping the previous ones: %s", exc)
        return
    fresh = config.by_identity()
    identities.clear()
    identities.update(fresh)
    log.info("principals reloaded: %d", len(fresh))
    warn_unknown_agencies(policy, path)


def warn_unknown_agencies(policy: Policy, path: Path) -> None:
    try:
        unknown = agencies_without_principal(policy, load_config(path))
    except ConfigError:
        return
    if unknown:
        log.warning("the permission table names agency IDs no principal has: %s",
                    ", ".join(unknown))
