"""The command line (CONTRACT §9): ``symbolsvc init`` writes a complete deployment with its
secrets protected; ``symbolsvc serve`` refuses a wrong passphrase clearly; ``symbolsvc policy
check`` and ``symbolctl`` work against the real files and server."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from helpers import (
    AGENCIES,
    Clients,
    NumberSource,
    ServerProcess,
    init_deployment_cli,
    wrong_check_digit,
)

from symbolsvc.config import load_config
from symbolsvc.errors import KeyringError
from symbolsvc.keys import Keyring
from symbolsvc.policy import Policy

SERVICE_PRINCIPALS = ("broker", "portal", "auditor")
TRUST = "spiffe://symbolsvc.local"


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          input=stdin, timeout=timeout, env={**os.environ, **(env or {})})


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_init_writes_every_file_of_the_spec(deployment_template: Path) -> None:
    """The template deployment was written by the real ``symbolsvc init`` (conftest)."""
    d, pki = deployment_template, deployment_template / "pki"
    names = ["server", *SERVICE_PRINCIPALS, *AGENCIES]
    for f in [d / "config.toml", d / "policy.toml", pki / "ca.crt", pki / "log.vkey",
              *(pki / f"{n}.crt" for n in names), *(pki / f"{n}.key" for n in names)]:
        assert f.is_file() and f.stat().st_size > 0, f
    for key in [*pki.glob("*.key"), d / "keys" / "keyring.json", d / "secrets" / "passphrase"]:
        assert mode(key) == 0o600, key
    # and the CA's, and each agency's HPKE private key (blind translation, 0600 above)
    assert len(list(pki.glob("*.key"))) == len(names) + 1 + len(AGENCIES)
    for a in AGENCIES:
        assert (pki / f"{a}.hpke.key").read_text().startswith("symbolsvc-hpke-v1 mlkem768-x25519 ")
        assert (pki / f"{a}.hpke.pub").read_text().startswith("symbolsvc-hpke-v1 mlkem768-x25519 ")
        assert mode(pki / f"{a}.hpke.pub") == 0o644

    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    for n in names:
        cert = x509.load_pem_x509_certificate((pki / f"{n}.crt").read_bytes())
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uri = f"{TRUST}/agency/{n}" if n in AGENCIES else f"{TRUST}/{n}"
        assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [uri]
        if n == "server":
            assert "localhost" in sans.get_values_for_type(x509.DNSName)
            assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}

    config = load_config(d / "config.toml")
    roles = {p.name: set(p.roles) for p in config.principals.values()}
    assert roles == {"broker": {"broker"}, "portal": {"portal", "agency"},
                     "auditor": {"auditor"}, **{a: {"agency"} for a in AGENCIES}}
    assert {p.identity for p in config.principals.values()} == \
        {f"{TRUST}/{n}" for n in SERVICE_PRINCIPALS} | {f"{TRUST}/agency/{a}" for a in AGENCIES}
    assert config.storage_url.startswith("sqlite:")


def test_log_vkey_is_a_signed_note_verifier_key_for_the_keyring(
        deployment_template: Path) -> None:
    vkey = (deployment_template / "pki" / "log.vkey").read_text().strip()
    name, key_id, encoded = vkey.split("+", 2)  # base64 may itself contain '+'
    assert len(key_id) == 8
    blob = base64.b64decode(encoded, validate=True)
    assert blob[0] == 0x01 and len(blob) == 33  # Ed25519 type byte and 32-byte key
    # C2SP signed-note key ID: SHA-256(name || "\n" || 0x01 || key)[:4].
    assert key_id == hashlib.sha256(name.encode() + b"\n" + blob).digest()[:4].hex()
    assert name == load_config(deployment_template / "config.toml").log_origin
    passphrase = (deployment_template / "secrets" / "passphrase").read_bytes().strip()
    keyring = Keyring.unseal((deployment_template / "keys" / "keyring.json").read_bytes(),
                             passphrase)
    public: Ed25519PublicKey = keyring.log_signing_key().public_key()
    assert public.public_bytes(Encoding.Raw, PublicFormat.Raw) == blob[1:]


def test_keyring_holds_no_secret_in_clear(deployment_template: Path) -> None:
    keyring_file = deployment_template / "keys" / "keyring.json"
    data = keyring_file.read_bytes()
    passphrase = (deployment_template / "secrets" / "passphrase").read_bytes().strip()
    keyring = Keyring.unseal(data, passphrase)
    secrets = [keyring.root, keyring.log_signing_seed, *keyring.symbol_keys.values()]
    assert all(len(s) == 32 for s in secrets)
    forms = [f for s in secrets for f in (s, base64.b64encode(s), s.hex().encode(),
                                          base64.b32encode(s))]
    # Not in the keyring file, nor anywhere else in the deployment directory.
    for path in deployment_template.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for f in forms:
                assert f not in content, f"a master secret is in clear in {path}"
    assert json.loads(data)["format"] == "symbolsvc-keyring/v1"
    for wrong in (passphrase + b"x", b"not the passphrase"):
        with pytest.raises(KeyringError):
            Keyring.unseal(data, wrong)


def test_init_refuses_a_directory_that_holds_a_deployment(tmp_path: Path) -> None:
    d = tmp_path / "dep"
    first = init_deployment_cli(d, ["alpha", "beta-2"])
    assert f"symbolsvc serve --config {d / 'config.toml'}" in first.stdout
    sample = Policy.load(d / "policy.toml")
    assert sample.rules >= 1
    assert {"alpha", "beta-2"} <= {r for r, _, _ in sample.providers}
    assert (d / "pki" / "alpha.crt").exists() and not (d / "pki" / "city-chiyoda.crt").exists()
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}

    again = init_deployment_cli(d, ["alpha"], check=False)
    assert again.returncode == 2
    assert "already holds a deployment" in again.stderr and "never overwrites" in again.stderr
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before
    # There is no flag that keeps data under new keys.
    forced = init_deployment_cli(d, ["alpha"], "--force", check=False)
    assert forced.returncode == 2
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("agency", ["broker", "City-Chiyoda", "city chiyoda", "ca"])
def test_init_rejects_bad_agency_ids(tmp_path: Path, agency: str) -> None:
    from symbolsvc.deploy import init_deployment
    from symbolsvc.errors import ConfigError

    with pytest.raises(ConfigError, match="invalid or reserved"):
        init_deployment(tmp_path / "dep", [agency])
    assert not (tmp_path / "dep" / "config.toml").exists()


def test_init_cli_reports_bad_agency_id(tmp_path: Path) -> None:
    r = init_deployment_cli(tmp_path / "dep", ["Bad Agency"], check=False)
    assert r.returncode == 2 and "invalid or reserved" in r.stderr
    assert not (tmp_path / "dep" / "config.toml").exists()


def test_serve_with_wrong_passphrase_exits_with_a_clear_message(
        fresh_deployment: Path) -> None:
    wrong = "definitely-not-the-passphrase"
    r = run("symbolsvc", "serve", "--config", str(fresh_deployment / "config.toml"),
            "--listen", "127.0.0.1:0", env={"SYMBOLSVC_PASSPHRASE": wrong})
    assert r.returncode != 0
    assert "serving on" not in r.stdout
    assert "keyring" in r.stderr and "passphrase" in r.stderr
    assert "Traceback" not in r.stderr
    assert wrong not in r.stderr


def test_serve_without_any_passphrase_says_how_to_give_one(fresh_deployment: Path) -> None:
    (fresh_deployment / "secrets" / "passphrase").unlink()
    env = {k: v for k, v in os.environ.items() if k != "SYMBOLSVC_PASSPHRASE"}
    r = subprocess.run([sys.executable, "-m", "symbolsvc", "serve", "--config",
                        str(fresh_deployment / "config.toml"), "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode != 0 and "serving on" not in r.stdout
    assert "passphrase" in r.stderr and "Traceback" not in r.stderr


def test_policy_check(deployment_template: Path, tmp_path: Path) -> None:
    ok = run("symbolsvc", "policy", "check", str(deployment_template / "policy.toml"))
    assert ok.returncode == 0 and "4 rules" in ok.stdout
    bad = tmp_path / "policy.toml"
    bad.write_text('[[allow]]\nrequester = "@nobody"\noffice_work = "x"\ninfo_item = "y"\n'
                   'providers = ["a"]\n')
    r = run("symbolsvc", "policy", "check", str(bad))
    assert r.returncode == 2 and "unknown group" in r.stderr and str(bad) in r.stderr


def test_symbolctl_issue_and_translate(server: ServerProcess, clients: Clients,
                                       numbers: NumberSource) -> None:
    n = numbers.one()
    tax = clients.agency("tax-office").issue(n).symbol
    base = ["symbolsvc_client.cli", "--deployment", str(server.directory),
            "--target", server.address]
    # '-' reads the number from stdin, keeping it out of the process list.
    r = run(*base, "--as", "city-chiyoda", "issue", "-", stdin=n + "\n")
    assert r.returncode == 0, r.stderr
    issued = json.loads(r.stdout)
    assert issued["newly_registered"] is True
    assert issued["symbol"] == clients.agency("city-chiyoda").issue(n).symbol
    r = run(*base, "translate", "--requester", "city-chiyoda", "--symbol", issued["symbol"],
            "--provider", "tax-office", "--office-work", "resident-tax",
            "--info-item", "national-tax-income")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["provider_symbol"] == tax

    bad = wrong_check_digit(numbers.one())
    r = run(*base, "--as", "city-chiyoda", "issue", "-", stdin=bad + "\n")
    assert r.returncode == 1
    assert "INVALID_ARGUMENT" in r.stderr and "BAD_CHECK_DIGIT" in r.stderr
    assert bad not in r.stderr and bad not in r.stdout
