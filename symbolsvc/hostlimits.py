"""The host's side of isolation: file modes and the file-descriptor budget (docs/ISOLATION.md).

* Every file symbolsvc creates (database, WAL, logs, keys, certificates) is
  0600 and every directory 0700, whatever umask it was started with:
  :func:`restrict_umask` runs before any command does anything.
* A secret file (the keyring, the passphrase file, the server's TLS key) that
  the group or others may read is refused at start (:func:`check_secret_modes`),
  as ssh refuses a private key with loose permissions.
* :func:`check_fd_budget` raises the soft ``RLIMIT_NOFILE`` toward the hard
  limit and warns when it is still below what the configured limits need.
"""

from __future__ import annotations

import logging
import os
import resource
import stat
from collections.abc import Iterable
from pathlib import Path

from .errors import ConfigError

log = logging.getLogger("symbolsvc.server")

FD_BASE = 64
"""Descriptors a process needs besides connections: listeners, database, logs, epoll."""


def restrict_umask() -> None:
    os.umask(0o077)


def check_secret_modes(paths: Iterable[Path | None]) -> None:
    """Refuse a secret file that is readable or writable by anyone but its owner."""
    for path in paths:
        if path is None:
            continue
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            continue  # the code that reads it names the missing file
        if mode & 0o077:
            raise ConfigError(f"{path} is accessible by others (mode {stat.S_IMODE(mode):04o}); "
                              f"run: chmod 600 {path}")


def fd_need(max_calls: int, health_reserve: int, pool: int) -> int:
    """Descriptors the configured limits may use: in the worst case every call in
    flight arrives on its own connection, plus probes, the database pool and the base."""
    return max_calls + health_reserve + pool + FD_BASE


def check_fd_budget(need: int) -> tuple[int, int]:
    """Raise the soft limit toward ``need`` (up to the hard limit); warn if still short.
    Returns the (soft, hard) limits in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < need:
        log.warning("file-descriptor limit %d is below the %d the configured limits need "
                    "([server] max_concurrent_rpcs and probes); raise `ulimit -n` or lower "
                    "max_concurrent_rpcs, or connections will be refused under load",
                    soft, need)
    return soft, hard
