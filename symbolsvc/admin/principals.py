"""Principals over time: add agencies and service principals, reissue and revoke their
certificates, remove an agency (docs/OPERATIONS.md).

A principal is a certificate identity (URI SAN) in config.toml plus a key pair under
``pki/`` issued by the deployment CA. Nothing here touches the keyring, so no existing
symbol changes; a running server takes the new configuration up on SIGHUP.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from tomlkit.toml_document import TOMLDocument

from .. import revoked as revocation
from ..config import Config, load_config
from ..deploy import SERVICE_PRINCIPALS, check_principal_name
from ..errors import ConfigError
from ..pki import issue_leaf, load_ca, spiffe_id, write_hpke_pair, write_pair, write_public
from ..sealing import DEFAULT_SUITE, KeyFileError, public_key
from .editing import add_principal, edit_config, remove_principal, set_revoked

SERVER = "server"
DEFAULT_REVOKED = "pki/revoked.txt"


@dataclass(frozen=True)
class Issued:
    name: str
    identity: str
    cert: Path
    key: Path


def _pki(config: Config) -> Path:
    """The directory of the CA and the principals' pairs: where [tls] ca lives."""
    return config.tls_ca.parent


def _issue(config: Config, name: str, identity: str) -> Issued:
    pki = _pki(config)
    try:
        ca = load_ca(pki)
    except FileNotFoundError as exc:
        raise ConfigError(f"cannot issue a certificate: {exc.filename} is missing (the CA key "
                          "must be present on the machine that issues; see OPERATIONS.md)"
                          ) from None
    if name == SERVER:
        leaf = issue_leaf(ca, "symbolsvc server", identity, server=True,
                          dns=("localhost",), ips=("127.0.0.1", "::1"))
    else:
        leaf = issue_leaf(ca, name, identity)
    write_pair(leaf, pki, name)
    return Issued(name, identity, pki / f"{name}.crt", pki / f"{name}.key")


def _add(config_path: Path, name: str, identity: str, roles: list[str]) -> Issued:
    config = load_config(config_path)
    if name in config.principals:
        raise ConfigError(f"{config.path}: principal {name!r} exists already (to give it a new "
                          "certificate: symbolsvc cert reissue)")
    if identity in config.by_identity():
        raise ConfigError(f"{config.path}: identity {identity} belongs to "
                          f"{config.by_identity()[identity].name!r} already")

    def edit(doc: TOMLDocument) -> None:
        add_principal(doc, name, identity, roles)

    # Validate the edit before issuing anything, so a refusal leaves no stray files.
    edit_config(config.path, edit, dry_run=True)
    issued = _issue(config, name, identity)
    edit_config(config.path, edit)
    return issued


def agency_add(config_path: Path, agencies: list[str], hpke_suite: str = DEFAULT_SUITE
               ) -> list[Issued]:
    """Issue a pair for each new agency and add it to config.toml, one at a time; each gets
    an HPKE key pair for blind translation (pki/ID.hpke.key, .hpke.pub)."""
    for a in agencies:
        check_principal_name(a)
    if len(set(agencies)) != len(agencies):
        raise ConfigError("an agency ID is given twice")
    config = load_config(config_path)
    taken = [a for a in agencies if a in config.principals]
    if taken:
        raise ConfigError(f"{config.path}: already principals: {', '.join(taken)}")
    out = []
    for a in agencies:
        out.append(_add(config_path, a, spiffe_id("agency", a), ["agency"]))
        write_hpke_pair(_pki(config), a, hpke_suite)
    return out


def agency_hpke_key(config_path: Path, agency: str, *, suite: str = DEFAULT_SUITE,
                    public: Path | None = None) -> Path:
    """Replace agency ID's HPKE public key: with a new pair the deployment makes, or with the
    public key the agency made itself (``public``: a ``symbolsvc-hpke-v1`` line), in which
    case no private key stays in pki/. A running server seals to the new key from the next
    translation on (it re-reads the file when it changes). Returns the public key's path."""
    config = load_config(config_path)
    p = config.principals.get(agency)
    if p is None or "agency" not in p.roles:
        raise ConfigError(f"{config.path}: no agency {agency!r}")
    pki = _pki(config)
    if public is None:
        return write_hpke_pair(pki, agency, suite)[1]
    try:
        line = public.read_text(encoding="ascii").strip() + "\n"
        public_key(line)
    except (OSError, UnicodeDecodeError, KeyFileError) as exc:
        raise ConfigError(f"{public}: not an HPKE public key: {exc}") from None
    write_public(pki / f"{agency}.hpke.pub", line.encode())
    (pki / f"{agency}.hpke.key").unlink(missing_ok=True)  # it belongs to the old public key
    return pki / f"{agency}.hpke.pub"


def principal_add(config_path: Path, role: str, name: str) -> Issued:
    """A further broker, portal or auditor (roles as ``init`` gives that kind)."""
    if role not in SERVICE_PRINCIPALS:
        raise ConfigError(f"role {role!r}: expected one of {', '.join(SERVICE_PRINCIPALS)}")
    if name not in SERVICE_PRINCIPALS:
        check_principal_name(name, "principal name")
    return _add(config_path, name, spiffe_id(name, name), SERVICE_PRINCIPALS[role])


def _revoked_list(config: Config) -> Path:
    """The revocation list, adding ``[tls] revoked`` to a config written before it existed."""
    if config.revoked is not None:
        return config.revoked
    edit_config(config.path, lambda doc: set_revoked(doc, DEFAULT_REVOKED))
    return config.base / DEFAULT_REVOKED


def _current(config: Config, name: str) -> x509.Certificate:
    if name != SERVER and name not in config.principals:
        raise ConfigError(f"{config.path}: no principal {name!r}")
    path = _pki(config) / f"{name}.crt"
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def cert_revoke(config_path: Path, name: str, why: str = "revoked") -> tuple[str, str]:
    """Put NAME's current certificate on the revocation list; its entries."""
    config = load_config(config_path)
    if name == SERVER:
        raise ConfigError("the revocation list names client certificates; the server's own "
                          "certificate is replaced with `symbolsvc cert reissue` and a restart")
    cert = _current(config, name)
    return revocation.append(_revoked_list(config), cert, name, why)


def cert_reissue(config_path: Path, name: str) -> tuple[Issued, tuple[str, str]]:
    """A new key and certificate for the same identity; the old certificate is revoked."""
    config = load_config(config_path)
    old = _current(config, name)
    identity = (config.principals[name].identity if name != SERVER
                else next(iter(_uris(old)), spiffe_id(SERVER, SERVER)))
    _retire(config, name, old)
    issued = _issue(config, name, identity)
    entries = revocation.append(_revoked_list(config), old, name, "reissued")
    return issued, entries


def _retire(config: Config, name: str, cert: x509.Certificate) -> None:
    """Keep a replaced certificate under pki/retired/ (public): the signed inquiries its key
    made stay checkable by ``audit verify --agency-certs``."""
    from cryptography.hazmat.primitives import serialization

    write_public(_pki(config) / "retired" / f"{name}-{cert.serial_number:x}.crt",
                 cert.public_bytes(serialization.Encoding.PEM))


def _uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def agency_remove(config_path: Path, agency: str, *, release_all: bool) -> int:
    """Remove an agency: refused while it holds symbols unless ``release_all`` (which ends
    every holding first). Its certificate is revoked and its key deleted. Returns the number
    of holdings released."""
    from ..registry.copies import live_holdings, release_agency

    config = load_config(config_path)
    p = config.principals.get(agency)
    if p is None or "agency" not in p.roles:
        raise ConfigError(f"{config.path}: no agency {agency!r}")
    held = live_holdings(config.storage_url, config.base, agency)
    released = 0
    if held:
        if not release_all:
            raise ConfigError(
                f"agency {agency!r} still holds {held} symbols; it must release them first "
                "(or, to end every holding now, --release-all)")
        released = release_agency(config.storage_url, config.base, agency)
    try:
        cert_revoke(config.path, agency, "agency removed")
    except ConfigError:
        pass  # no certificate file left: nothing to revoke
    edit_config(config.path, lambda doc: remove_principal(doc, agency))
    for suffix in ("key", "hpke.key", "hpke.pub"):
        (_pki(config) / f"{agency}.{suffix}").unlink(missing_ok=True)
    return released
