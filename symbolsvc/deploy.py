"""``symbolsvc init``: write a complete, ready-to-serve deployment directory (CONTRACT §9).

    DIR/config.toml          server configuration (docs/CONFIG.md)
    DIR/policy.toml          a sample permission table over the given agencies
    DIR/pki/ca.crt, ca.key   the deployment CA (keep ca.key offline in production)
    DIR/pki/NAME.crt, .key   server, broker, portal, auditor and each agency
    DIR/pki/AGENCY.hpke.key, .hpke.pub  each agency's HPKE pair (blind translation)
    DIR/pki/log.vkey         the access log's verifier key (signed-note vkey)
    DIR/pki/revoked.txt      the certificate revocation list (empty; ``cert revoke``)
    DIR/keys/keyring.json    master secrets, wrapped under the passphrase
    DIR/secrets/passphrase   the dev passphrase (mode 0600; production keeps it
                             elsewhere and sets SYMBOLSVC_PASSPHRASE instead)
"""

from __future__ import annotations

import secrets
from pathlib import Path

from .config import DEFAULT_LISTEN
from .errors import ConfigError
from .keys import Keyring
from .log.checkpoint import vkey_string
from .pki import (
    TRUST_DOMAIN,
    issue_leaf,
    make_ca,
    private_dir,
    spiffe_id,
    write_hpke_pair,
    write_pair,
    write_private,
    write_public,
)
from .policy import is_ident
from .sealing import DEFAULT_SUITE

DEFAULT_AGENCIES = ("city-chiyoda", "city-minato", "pension-service", "tax-office")
SERVICE_PRINCIPALS = {"broker": ["broker"], "portal": ["portal", "agency"], "auditor": ["auditor"]}
LOG_ORIGIN = "symbolsvc.local/access-log"
RESERVED = ("server", "ca", "log", "revoked")
# What makes a directory a deployment that init must never overwrite.
DEPLOYMENT_MARKERS = ("config.toml", "keys/keyring.json", "pki/ca.key", "secrets/passphrase")


def check_principal_name(name: str, what: str = "agency ID") -> str:
    if not is_ident(name) or name in SERVICE_PRINCIPALS or name in RESERVED:
        raise ConfigError(
            f"{what} {name!r} is invalid or reserved (use lower-case ASCII letters, digits, "
            "'.', '_', '-'; not server, broker, portal, auditor, ca, log or revoked)"
        )
    return name


def existing_deployment(directory: Path) -> list[str]:
    """What in ``directory`` holds keys or data (relative names); empty when nothing does."""
    found = [m for m in DEPLOYMENT_MARKERS if (directory / m).exists()]
    data = directory / "data"
    if data.is_dir():
        found += [f"data/{p.name}" for p in sorted(data.iterdir())]
    return found


def init_deployment(directory: Path, agencies: list[str], *, listen: str = DEFAULT_LISTEN
                    ) -> Path:
    """Create the deployment; return the path of its config.toml. Never overwrites one:
    new keys over old data would orphan every holding and break the log's signatures."""
    agencies = list(dict.fromkeys(agencies or DEFAULT_AGENCIES))
    for a in agencies:
        check_principal_name(a)
    found = existing_deployment(directory)
    if found:
        raise ConfigError(
            f"{directory} already holds a deployment ({', '.join(found[:4])}); init never "
            "overwrites keys or data: add agencies with `symbolsvc agency add`, reissue "
            "certificates with `symbolsvc cert reissue`, or init a new, empty directory")
    config_path = directory / "config.toml"
    private_dir(directory)
    pki = private_dir(directory / "pki")
    ca = make_ca()
    write_pair(ca, pki, "ca")
    server = issue_leaf(ca, "symbolsvc server", f"spiffe://{TRUST_DOMAIN}/server", server=True,
                        dns=("localhost",), ips=("127.0.0.1", "::1"))
    write_pair(server, pki, "server")
    principals: list[tuple[str, str, list[str]]] = []
    for name, roles in SERVICE_PRINCIPALS.items():
        principals.append((name, spiffe_id(name, name), roles))
    for a in agencies:
        principals.append((a, spiffe_id("agency", a), ["agency"]))
    for name, uri, _ in principals:
        write_pair(issue_leaf(ca, name, uri), pki, name)
    for a in agencies:
        write_hpke_pair(pki, a, DEFAULT_SUITE)

    keyring = Keyring.generate()
    passphrase = secrets.token_urlsafe(32).encode()
    write_private(directory / "secrets" / "passphrase", passphrase + b"\n")
    write_private(directory / "keys" / "keyring.json", keyring.seal(passphrase))
    write_public(pki / "log.vkey", (
        vkey_string(LOG_ORIGIN, keyring.log_signing_key().public_key()) + "\n").encode())
    write_public(pki / "revoked.txt", b"")  # format: docs/CONFIG.md, [tls] revoked
    private_dir(directory / "data")
    private_dir(directory / "logs")
    write_public(directory / "policy.toml", _policy(agencies).encode())
    write_private(config_path, _config(listen, principals).encode())  # may hold a DB password
    return config_path


def _config(listen: str, principals: list[tuple[str, str, list[str]]]) -> str:
    lines = [
        "# symbolsvc deployment configuration (docs/CONFIG.md). Paths are relative to this file.",
        "",
        "[server]",
        f'listen = "{listen}"',
        '# health_listen = "127.0.0.1:50052"  # plaintext, loopback-only health for probes',
        '# metrics_listen = "127.0.0.1:9464"  # Prometheus /metrics (single-process mode)',
        "max_concurrent_rpcs = 2000",
        "max_message_bytes = 4194304",
        "grace_seconds = 10",
        "",
        "[tls]",
        'ca = "pki/ca.crt"',
        'cert = "pki/server.crt"',
        'key = "pki/server.key"',
        'revoked = "pki/revoked.txt"  # certificates refused although they chain to the CA',
        "",
        "[storage]",
        'url = "sqlite:data/registry.db"',
        "",
        "[keys]",
        'keyring = "keys/keyring.json"',
        "# The passphrase comes from $SYMBOLSVC_PASSPHRASE when set, else from this file.",
        'passphrase_env = "SYMBOLSVC_PASSPHRASE"',
        'passphrase_file = "secrets/passphrase"',
        "",
        "[policy]",
        'file = "policy.toml"',
        "",
        "[access_log]",
        f'origin = "{LOG_ORIGIN}"',
        'security_log = "logs/security.jsonl"',
        "# Keep records at least this long; nothing deletes a leaf (docs/ACCESS_LOG.md).",
        "retention_years = 7",
        "",
        "# Certificate identity (URI SAN) -> principal name and roles. An agency's ID is its name.",
    ]
    for name, uri, roles in principals:
        role_list = ", ".join(f'"{r}"' for r in roles)
        lines += ["", f"[principals.{name}]", f'identity = "{uri}"', f"roles = [{role_list}]"]
    return "\n".join(lines) + "\n"


def _policy(agencies: list[str]) -> str:
    members = ", ".join(f'"{a}"' for a in [*agencies, "portal"])
    return f"""# The permission table (CONTRACT §9): which requester, for which office work, may
# obtain which info item from which providers. Reloaded on SIGHUP.

[groups]
agencies = [{members}]

# Sample rule: every agency may ask every agency for the demo item.
[[allow]]
requester   = "@agencies"
office_work = "demo-exchange"
info_item   = "demo-record"
providers   = ["@agencies"]
"""
