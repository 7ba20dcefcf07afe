"""Which client certificates are identities: issued directly by the deployment CA, not revoked.

TLS (gRPC's handshake) already checked that the peer's chain ends at the
deployment CA. This module adds what the handshake cannot know:

* only a leaf certificate signed *directly* by the deployment CA (no
  intermediate), that is not itself a CA, is an identity;
* a certificate on the revocation list is not.

The revocation list (``[tls] revoked``, written by ``symbolsvc cert revoke``)
is a text file, one entry per line::

    # comment
    sha256:<64 lowercase hex>     SHA-256 of the certificate's DER
    serial:<lowercase hex, no leading zeros>

A missing file revokes nothing. The list is read at start-up and on SIGHUP; a
malformed file is refused (the previous list stays in force). Verdicts are
cached per certificate, so a call costs one dictionary look-up; the cache is
cleared when the list changes.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from .errors import ConfigError, Unauthenticated

log = logging.getLogger("symbolsvc.server")
security_log = logging.getLogger("symbolsvc.security")

_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_SERIAL = re.compile(r"serial:(0|[1-9a-f][0-9a-f]*)")
_CACHE_MAX = 65_536


@dataclass(frozen=True)
class RevocationList:
    fingerprints: frozenset[str]  # lowercase hex SHA-256 of DER
    serials: frozenset[int]

    def revokes(self, cert: x509.Certificate) -> bool:
        if cert.serial_number in self.serials:
            return True
        der = cert.public_bytes(serialization.Encoding.DER)
        return hashlib.sha256(der).hexdigest() in self.fingerprints


EMPTY = RevocationList(frozenset(), frozenset())


def parse_revocations(text: str, source: str) -> RevocationList:
    """Parse the list format above; raise :class:`ConfigError` naming the first bad line."""
    fingerprints: set[str] = set()
    serials: set[int] = set()
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if _SHA256.fullmatch(line):
            fingerprints.add(line.removeprefix("sha256:"))
        elif _SERIAL.fullmatch(line):
            serials.add(int(line.removeprefix("serial:"), 16))
        else:
            raise ConfigError(f"{source}:{n}: not 'sha256:<64 lowercase hex>' or "
                              "'serial:<lowercase hex, no leading zeros>'")
    return RevocationList(frozenset(fingerprints), frozenset(serials))


def load_revocations(path: Path | None) -> RevocationList:
    if path is None:
        return EMPTY
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return EMPTY
    except OSError as exc:
        raise ConfigError(f"cannot read the revocation list {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return parse_revocations(text, str(path))


class PeerCheck:
    """Verdicts on peer certificates (PEM bytes from the TLS auth context)."""

    def __init__(self, ca_pem: bytes, revoked_path: Path | None) -> None:
        self._ca = x509.load_pem_x509_certificate(ca_pem)
        self._path = revoked_path
        self._list = load_revocations(revoked_path)
        self._verdicts: dict[bytes, str] = {}  # pem -> "" (accepted) or a refusal reason

    @property
    def revoked_count(self) -> int:
        return len(self._list.fingerprints) + len(self._list.serials)

    def reload(self) -> int:
        """Read the list again (SIGHUP); on a bad file raise ConfigError and keep the old."""
        self._list = load_revocations(self._path)
        self._verdicts.clear()
        return self.revoked_count

    def check(self, pem: bytes, method: str) -> None:
        """Raise :class:`Unauthenticated` unless ``pem`` is an identity certificate."""
        verdict = self._verdicts.get(pem)
        if verdict is None:
            verdict = self._judge(pem)
            if len(self._verdicts) >= _CACHE_MAX:
                self._verdicts.clear()
            self._verdicts[pem] = verdict
        if verdict:
            security_log.warning(
                "call refused: certificate not accepted as an identity",
                extra={"event": "certificate_refused", "reason": verdict, "method": method})
            raise Unauthenticated(verdict, _MESSAGES[verdict])

    def _judge(self, pem: bytes) -> str:
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError:
            return "BAD_CERTIFICATE"
        try:
            cert.verify_directly_issued_by(self._ca)
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = constraints.ca
        except x509.ExtensionNotFound:
            is_ca = False
        except (ValueError, TypeError, InvalidSignature):
            return "NOT_ISSUED_BY_DEPLOYMENT_CA"
        if is_ca:
            return "NOT_ISSUED_BY_DEPLOYMENT_CA"
        if self._list.revokes(cert):
            return "CERTIFICATE_REVOKED"
        return ""


_MESSAGES = {
    "BAD_CERTIFICATE": "the client certificate cannot be parsed",
    "NOT_ISSUED_BY_DEPLOYMENT_CA": "only leaf certificates issued directly by the deployment "
                                   "CA are identities; intermediate CAs are not accepted",
    "CERTIFICATE_REVOKED": "the client certificate has been revoked; ask the operator for a "
                           "new one",
}
