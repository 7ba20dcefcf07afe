"""Strict configuration (issue 12, items 2 and 3): config.toml misspellings and bad values stop
every command with one line naming the file, the key and what is expected, exit status 2;
``init`` never overwrites a deployment and leaves secrets 0600 in 0700 directories;
``policy check`` warns about agency IDs no principal has (``--strict``: an error).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import init_deployment_cli

from symbolsvc.cli import main
from symbolsvc.config import SCHEMA, load_config
from symbolsvc.pki import write_private

# (what the operator wrote: old text -> new text, what the one line must say)
# a log-style (0x01) vkey, which a witness's (0x04) must not be confused with
LOG_STYLE_VKEY = "w.example+5c358ecc+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
CASES = [
    ("[access_log]", "[acces_log]",
     "unknown section [acces_log]: did you mean [access_log]?"),
    ('listen = "', 'listn = "', "unknown key in [server] 'listn': did you mean 'listen'?"),
    ("max_message_bytes = 4194304", 'max_message_bytes = "4MiB"',
     "[server] max_message_bytes: expected an integer from 1024 to 2147483647, got '4MiB'"),
    ("max_message_bytes = 4194304", "max_message_bytes = -1",
     "[server] max_message_bytes: expected an integer from 1024 to 2147483647, got -1"),
    ("max_concurrent_rpcs = 2000", "max_concurrent_rpcs = 0",
     "[server] max_concurrent_rpcs: expected an integer from 1 to 1000000, got 0"),
    ("max_concurrent_rpcs = 2000", "max_concurrent_rpcs = true",
     "[server] max_concurrent_rpcs: expected an integer from 1 to 1000000, got True"),
    ("grace_seconds = 10", 'grace_seconds = "ten"',
     "[server] grace_seconds: expected a number from 0 to 3600, got 'ten'"),
    ("grace_seconds = 10", "grace_seconds = -1",
     "[server] grace_seconds: expected a number from 0 to 3600, got -1"),
    ('url = "sqlite:data/registry.db"', "url = 5", "[storage] url: expected a string, got 5"),
    ('url = "sqlite:data/registry.db"', 'url = "mysql://db/x"',
     "[storage] url 'mysql://db/x': expected sqlite:PATH or postgresql://..."),
    ('ca = "pki/ca.crt"', "", "[tls] ca is required: expected a non-empty path string"),
    ('cert = "pki/server.crt"', 'cert = ""',
     "[tls] cert: expected a non-empty path string, got ''"),
    ('passphrase_file = "secrets/passphrase"', "passphrase_file = true",
     "[keys] passphrase_file: expected a non-empty path string, got True"),
    ('security_log = "logs/security.jsonl"', 'security_log = "logs/security.jsonl"\nsecurty = 1',
     "unknown key in [access_log] 'securty': did you mean 'security_log'?"),
    ('origin = "symbolsvc.local/access-log"', "integrate_interval_ms = 1.5",
     "[access_log] integrate_interval_ms: expected an integer from 1 to 3600000, got 1.5"),
    ('origin = "symbolsvc.local/access-log"', "lease_ms = 100",
     "[access_log] lease_ms: expected at least twice integrate_interval_ms"),
    ("retention_years = 7", "retention_years = 0",
     "[access_log] retention_years: expected an integer from 1 to 100, got 0"),
    ("retention_years = 7", 'retention_years = "seven"',
     "[access_log] retention_years: expected an integer from 1 to 100, got 'seven'"),
    ('roles = ["broker"]', 'roles = ["broker", "admin"]',
     "[principals.broker] roles: expected a non-empty subset of ['agency', 'auditor', "
     "'broker', 'portal'], got ['broker', 'admin']"),
    ('roles = ["broker"]', 'role = ["broker"]',
     "unknown key in [principals.broker] 'role': did you mean 'roles'?"),
    ('identity = "spiffe://symbolsvc.local/broker"', "",
     "[principals.broker] identity is required: expected a string"),
    ('identity = "spiffe://symbolsvc.local/broker"', 'identity = "spiffe://symbolsvc.local/portal"',
     "[principals.portal] identity: expected a unique identity, 'broker' has the same"),
    ("[policy]", "policy = 1\n[policyy]", "unknown section [policyy]: did you mean [policy]?"),
    ("[server]", "server = 1\n[serverx]", "unknown section [serverx]"),
    ("[tls]", "[tls\n", "not valid TOML"),
    ("[tls]", '[witness.w1]\nurl = "ftp://w.example"\nvkey = "x"\n[tls]',
     "[witness.w1] url: expected an http:// or https:// submission prefix"),
    ("[tls]", f'[witness.w1]\nurl = "https://w.example"\nvkey = "{LOG_STYLE_VKEY}"\n[tls]',
     "[witness.w1] vkey: witness verifier key is not a 0x04-typed 32-byte Ed25519 key"),
    ("[tls]", '[witness.w1]\nurl = "https://w.example"\n[tls]',
     "[witness.w1] vkey is required"),
    ("[tls]", "[witnessing]\nretry_ms = 0\n[tls]",
     "[witnessing] retry_ms: expected an integer from 1 to 3600000, got 0"),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("strict") / "dep"
    init_deployment_cli(d, ["city-a"])
    return d


def variant(template: Path, tmp_path: Path, old: str, new: str) -> Path:
    d = tmp_path / "dep"
    shutil.copytree(template, d)
    config = d / "config.toml"
    text = config.read_text()
    assert old in text, old
    config.write_text(text.replace(old, new, 1))
    return config


@pytest.mark.parametrize(("old", "new", "expected"), CASES,
                         ids=[f"{i}-{c[1][:20]}" for i, c in enumerate(CASES)])
def test_one_line_naming_file_key_and_expectation(
        template: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        old: str, new: str, expected: str) -> None:
    config = variant(template, tmp_path, old, new)
    for argv in (["db", "check", "--config", str(config)],
                 ["agency", "add", "--config", str(config), "city-b"],
                 ["backup", "--config", str(config), str(tmp_path / "backup")]):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.count("\n") == 1, err
        assert err.startswith(f"symbolsvc: {config}: "), err
        assert expected in err, err
    assert not (tmp_path / "dep" / "pki" / "city-b.crt").exists()
    assert not (tmp_path / "backup").exists()


@pytest.mark.parametrize("command", [
    ["serve", "--listen", "127.0.0.1:0"], ["db", "migrate"], ["db", "create"],
    ["principal", "add", "--role", "auditor", "auditor-2"], ["cert", "revoke", "city-a"],
    ["restore", "nowhere"], ["portal", "serve", "--listen", "127.0.0.1:0"],
    ["portal", "link", "k1." + "a" * 52]])
def test_every_command_stops_without_a_traceback(template: Path, tmp_path: Path,
                                                 command: list[str]) -> None:
    config = variant(template, tmp_path, "[access_log]", "[acces_log]")
    grouped = command[0] in ("db", "principal", "cert", "portal")  # a subcommand, then options
    args = ([*command[:2], "--config", str(config), *command[2:]] if grouped
            else [command[0], "--config", str(config), *command[1:]])
    proc = subprocess.run([sys.executable, "-m", "symbolsvc", *args], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc
    assert proc.stderr == (f"symbolsvc: {config}: unknown section [acces_log]: did you mean "
                           "[access_log]? expected one of [access_log], [broker], [keys], "
                           "[limits], [policy], [portal], [principals], [server], [storage], "
                           "[tls], [tracing], [witness], [witnessing]\n")
    assert "Traceback" not in proc.stderr


def test_every_declared_key_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "CONFIG.md").read_text()
    for section, keys in SCHEMA.items():
        for key in keys:
            assert f"`{section}.{key}`" in doc, f"{section}.{key} is not in docs/CONFIG.md"


def test_policy_check_warns_about_agencies_no_principal_has(template: Path,
                                                             tmp_path: Path) -> None:
    d = tmp_path / "dep"
    shutil.copytree(template, d)
    policy = d / "policy.toml"
    policy.write_text(policy.read_text().replace('"city-a"', '"city-a", "city-typo"'))

    def check(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "symbolsvc", "policy", "check", *extra,
                               str(policy)], capture_output=True, text=True, timeout=60,
                              check=False)

    warned = check()
    assert warned.returncode == 0 and "OK" in warned.stdout
    assert warned.stderr == (f"symbolsvc: warning: {policy}: agency IDs no principal of "
                             f"{d / 'config.toml'} has: city-typo\n")
    strict = check("--strict", "--config", str(d / "config.toml"))
    assert strict.returncode == 2 and "error" in strict.stderr and "city-typo" in strict.stderr
    policy.write_text(policy.read_text().replace(', "city-typo"', ""))
    clean = check("--strict")
    assert clean.returncode == 0 and clean.stderr == ""


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_init_writes_secrets_0600_in_0700_directories(template: Path) -> None:
    for secret in ("keys/keyring.json", "secrets/passphrase", "pki/ca.key", "pki/server.key",
                   "pki/city-a.key", "pki/broker.key"):
        assert _mode(template / secret) == 0o600, secret
    for directory in (".", "pki", "keys", "secrets", "data", "logs"):
        assert _mode(template / directory) == 0o700, directory
    config = load_config(template / "config.toml")
    assert config.revoked == template / "pki" / "revoked.txt"
    assert config.revoked.read_text() == ""


def test_a_secret_that_existed_with_a_loose_mode_ends_up_0600(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"old")
    path.chmod(0o644)
    write_private(path, b"new")
    assert _mode(path) == 0o600 and path.read_bytes() == b"new"


@pytest.mark.parametrize("holds", ["keys/keyring.json", "data/registry.db", "config.toml",
                                   "pki/ca.key"])
def test_init_refuses_a_directory_with_keys_or_data(tmp_path: Path, holds: str) -> None:
    d = tmp_path / "dep"
    (d / holds).parent.mkdir(parents=True)
    (d / holds).write_bytes(b"precious")
    proc = init_deployment_cli(d, ["city-a"], check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and holds in proc.stderr
    assert (d / holds).read_bytes() == b"precious"
    assert sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()) == [holds]


def test_init_into_existing_empty_directories_tightens_their_modes(tmp_path: Path) -> None:
    d = tmp_path / "dep"
    for sub in ("data", "logs"):
        (d / sub).mkdir(parents=True)
        (d / sub).chmod(0o755)
    init_deployment_cli(d, ["city-a"])
    assert _mode(d / "data") == 0o700 and _mode(d / "logs") == 0o700
