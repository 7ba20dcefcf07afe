"""``symbolsvc init``: write a complete, ready-to-serve deployment directory (CONTRACT §9).

    DIR/config.toml          server configuration (docs/CONFIG.md)
    DIR/policy.toml          a sample permission table over the given agencies
    DIR/pki/ca.crt, ca.key   the deployment CA (keep ca.key offline in production)
    DIR/pki/NAME.crt, .key   server, broker, portal, auditor and each agency
    DIR/pki/log.vkey         the access log's verifier key (signed-note vkey)
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
from .pki import TRUST_DOMAIN, issue_leaf, make_ca, spiffe_id, write_pair, write_private
from .policy import is_ident

DEFAULT_AGENCIES = ("city-chiyoda", "city-minato", "pension-service", "tax-office")
SERVICE_PRINCIPALS = {"broker": ["broker"], "portal": ["portal", "agency"], "auditor": ["auditor"]}
LOG_ORIGIN = "symbolsvc.local/access-log"


def init_deployment(
    directory: Path, agencies: list[str], *, listen: str = DEFAULT_LISTEN, force: bool = False
) -> Path:
    """Create the deployment; return the path of its config.toml."""
    agencies = list(dict.fromkeys(agencies or DEFAULT_AGENCIES))
    for a in agencies:
        if not is_ident(a) or a in SERVICE_PRINCIPALS or a in ("server", "ca", "log"):
            raise ConfigError(
                f"agency ID {a!r} is invalid or reserved (use lower-case ASCII letters, digits, "
                "'.', '_', '-'; not server, broker, portal, auditor, ca or log)"
            )
    config_path = directory / "config.toml"
    if config_path.exists() and not force:
        raise ConfigError(f"{config_path} exists; refusing to overwrite a deployment (--force)")
    pki = directory / "pki"
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

    keyring = Keyring.generate()
    passphrase = secrets.token_urlsafe(32).encode()
    write_private(directory / "secrets" / "passphrase", passphrase + b"\n")
    write_private(directory / "keys" / "keyring.json", keyring.seal(passphrase))
    (pki / "log.vkey").write_text(
        vkey_string(LOG_ORIGIN, keyring.log_signing_key().public_key()) + "\n"
    )
    (directory / "data").mkdir(exist_ok=True)
    (directory / "logs").mkdir(exist_ok=True)
    (directory / "policy.toml").write_text(_policy(agencies))
    config_path.write_text(_config(listen, principals))
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
