"""X.509 for a deployment: a CA, the server certificate and one client certificate per principal.

Identities are SPIFFE-style URI SANs (``spiffe://TRUST-DOMAIN/PATH``); the
server authorises on the URI SAN only, never on the subject CN. Keys are
ECDSA P-256, which gRPC's TLS stack and every common client accept.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRUST_DOMAIN = "symbolsvc.local"


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "symbolsvc deployment"),
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
    ])


def make_ca(cn: str = "symbolsvc deployment CA", days: int = 3650) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=False, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          key_cert_sign=True, crl_sign=True, encipher_only=False,
                          decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue_leaf(
    ca: Issued, cn: str, uri: str, *, server: bool = False,
    dns: tuple[str, ...] = (), ips: tuple[str, ...] = (), days: int = 825,
) -> Issued:
    """A certificate for one principal (client) or the server, signed by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    sans += [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Issued(cert, key)


def write_pair(issued: Issued, directory: Path, name: str) -> None:
    """Write NAME.crt (PEM) and NAME.key (PKCS#8 PEM, mode 0600), each replaced atomically,
    the key first (a crash in between leaves a new key whose certificate is reissued again)."""
    private_dir(directory)
    write_private(
        directory / f"{name}.key",
        issued.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    write_public(directory / f"{name}.crt", issued.cert.public_bytes(serialization.Encoding.PEM))


def write_hpke_pair(directory: Path, name: str, suite: str) -> tuple[Path, Path]:
    """A new HPKE key pair for agency NAME (blind translation, symbolsvc.sealing):
    NAME.hpke.key (0600, for the agency) first, then NAME.hpke.pub (0644, what the
    server seals to)."""
    from .sealing import generate

    priv, pub = generate(suite)
    write_private(directory / f"{name}.hpke.key", priv.encode())
    write_public(directory / f"{name}.hpke.pub", pub.encode())
    return directory / f"{name}.hpke.key", directory / f"{name}.hpke.pub"


def private_dir(path: Path) -> Path:
    """Make ``path`` (and missing parents) a directory only its owner may enter (0700)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a temporary file of ``mode`` beside ``path``, fsync, rename over it:
    readers see the old or the new file, never a mix; an existing file's looser mode is gone."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode does not apply to a leftover file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_private(path: Path, data: bytes) -> None:
    """Create or replace a file readable by its owner only (0600), whether or not it existed."""
    _replace(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    """Create or replace a non-secret file (a certificate, a verifier key): 0644."""
    _replace(path, data, 0o644)


def load_ca(directory: Path) -> Issued:
    cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return Issued(cert, key)


def uri_sans(cert_pem: bytes) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return ext.value.get_values_for_type(x509.UniformResourceIdentifier)


def spiffe_id(kind: str, name: str) -> str:
    """The identity convention: agencies under /agency/, the other roles at the root."""
    if kind == "agency":
        return f"spiffe://{TRUST_DOMAIN}/agency/{name}"
    return f"spiffe://{TRUST_DOMAIN}/{name}"
