"""The revocation list (``[tls] revoked``, default ``pki/revoked.txt``).

One entry per line: ``sha256:<64 lower-case hex>``, the SHA-256 of a certificate's DER,
and/or ``serial:<lower-case hex, no leading zeros>``, its serial number; ``#`` starts a
comment. ``cert revoke`` and ``cert reissue`` append both forms for the certificate being
retired; the server refuses a listed certificate after SIGHUP (:func:`refuses`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .errors import ConfigError

ENTRY_RE = re.compile(r"(sha256:[0-9a-f]{64}|serial:[1-9a-f][0-9a-f]*|serial:0)")


def entries_for(cert: x509.Certificate) -> tuple[str, str]:
    der = cert.public_bytes(serialization.Encoding.DER)
    return f"sha256:{hashlib.sha256(der).hexdigest()}", f"serial:{cert.serial_number:x}"


def read_entries(path: Path) -> frozenset[str]:
    """Every entry of the list; ConfigError naming the line for anything malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return frozenset()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the revocation list {path}: {exc}") from None
    out: set[str] = set()
    for n, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        if not ENTRY_RE.fullmatch(entry):
            raise ConfigError(f"{path}:{n}: expected sha256:<64 lower-case hex> or "
                              f"serial:<lower-case hex>, got {entry[:80]!r}")
        out.add(entry)
    return frozenset(out)


def append(path: Path, cert: x509.Certificate, name: str, why: str) -> tuple[str, str]:
    """Append ``cert``'s two entries (durably), with a comment saying whose and why."""
    entries = entries_for(cert)
    if set(entries) <= read_entries(path):
        return entries
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"# {name}: {why}, {when}\n" + "".join(f"{e}\n" for e in entries)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return entries


@lru_cache(maxsize=4096)
def _pem_entries(pem: bytes) -> tuple[str, ...]:
    try:
        return entries_for(x509.load_pem_x509_certificate(pem))
    except ValueError:
        return ()


def refuses(entries: frozenset[str], pem: bytes) -> bool:
    """Whether the certificate ``pem`` is on the list ``entries`` (cached per certificate)."""
    return bool(entries) and not entries.isdisjoint(_pem_entries(pem))
