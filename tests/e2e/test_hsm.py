"""The master secrets in a PKCS#11 token (SoftHSM2; docs/KEYS.md, "HSM").

A deployment whose keyring holds a recognisable test root is served with the file
provider, moved into a token with `symbolsvc keys import-to-hsm`, and served again with
`[keys] provider = "pkcs11"`: the core cases (issue, translate, resolve, release) answer
with the very same symbols, a rotation generates the new key inside the token, and a scan
of the server's memory (/proc/PID/mem over its readable maps) and of the deployment's files
finds none of the masters' bytes. The same scan finds the root in a file-provider server,
so the scan itself is shown to work.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import StartServer
from helpers import Clients, NumberSource, call_error, config_with
from symbolsvc_client import Deployment
from test_key_rotation import RULE, keys_cli

from symbolsvc.cli import main as symbolsvc_main
from symbolsvc.keys import hkdf_extract, load_keyring, save_keyring
from symbolsvc.v1 import broker_service_pb2 as broker_pb

MODULES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
           "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"]
ROOT = b"TEST-ROOT:recognisable-32-bytes!"
SYMBOL_KEY = b"TEST-SYMBOL-KEY-V1:recognisable!"
PIN = "4711-test-pin"
LABEL = "symbolsvc-test"


@pytest.fixture
def token(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A fresh SoftHSM2 token in a test-owned directory; the environment that reaches it."""
    module = next((m for m in MODULES if Path(m).exists()), None)
    assert module is not None and shutil.which("softhsm2-util"), \
        "SoftHSM2 is missing: .ci/run installs Debian's softhsm2"
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\n")
    env = {"SOFTHSM2_CONF": str(conf), "SYMBOLSVC_HSM_PIN": PIN, "SYMBOLSVC_TEST_MODULE": module}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", LABEL, "--pin", PIN,
                    "--so-pin", "0000-so-pin"], env={**os.environ, **env}, check=True,
                   capture_output=True)
    yield env


def memory_contains(pid: int, needles: list[bytes]) -> set[bytes]:
    """Which of ``needles`` occur anywhere in the readable memory of process ``pid``."""
    found: set[bytes] = set()
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
            if not m or m.group(3)[0] != "r" or "[vvar]" in line or "[vsyscall]" in line:
                continue
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                continue
            found.update(n for n in needles if n in data)
    return found


def files_contain(directory: Path, needles: list[bytes]) -> set[bytes]:
    found: set[bytes] = set()
    for path in directory.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found.update(n for n in needles if n in data)
    return found


def test_root_in_a_token_same_symbols_and_nowhere_in_memory(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource,
        token: dict[str, str]) -> None:
    dep = fresh_deployment
    passphrase = (dep / "secrets" / "passphrase").read_bytes().strip()
    keyring = load_keyring(dep / "keys" / "keyring.json", passphrase)
    keyring.root, keyring.symbol_keys = ROOT, {1: SYMBOL_KEY}
    save_keyring(dep / "keys" / "keyring.json", keyring, passphrase)
    secrets = [ROOT, SYMBOL_KEY]
    token_values = [hkdf_extract(ROOT), hkdf_extract(SYMBOL_KEY)]

    # The file provider: symbols to compare with, and the scan finds the root in memory.
    server = start_server(dep)
    c = Clients(Deployment(dep), server.address)
    n, released = numbers.one(), numbers.one()
    before = {a: c.agency(a).issue(n).symbol for a in (RULE[0], RULE[1])}
    before_released = c.agency(RULE[1]).issue(released).symbol
    assert ROOT in memory_contains(server.proc.pid, secrets)  # type: ignore[union-attr]
    c.close()
    server.stop()

    hsm = {"keys": {"provider": "pkcs11", "pkcs11_module": token["SYMBOLSVC_TEST_MODULE"],
                    "token_label": LABEL}}
    config = config_with(dep / "config.toml", hsm, "hsm")
    env = {**os.environ, **token}
    moved = subprocess.run([sys.executable, "-m", "symbolsvc", "keys", "import-to-hsm",
                            "--config", str(config)], env=env, capture_output=True, text=True)
    assert moved.returncode == 0, moved.stderr
    assert load_keyring(dep / "keys" / "keyring.json", passphrase).root == b""
    again = subprocess.run([sys.executable, "-m", "symbolsvc", "keys", "import-to-hsm",
                            "--config", str(config)], env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "already in a token" in again.stderr
    # Without the token's settings the server refuses to start, saying why.
    broken = subprocess.run([sys.executable, "-m", "symbolsvc", "serve", "--config",
                             str(dep / "config.toml"), "--listen", "127.0.0.1:0"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 2 and "PKCS#11 token" in broken.stderr

    server = start_server(dep, hsm, env=token)
    c = Clients(Deployment(dep), server.address)
    # Issue: the same symbols, holdings not new.
    for agency, symbol in before.items():
        issued = c.agency(agency).issue(n)
        assert (issued.symbol, issued.newly_registered) == (symbol, False)
    # Translate and resolve.
    assert c.broker().translate(RULE[0], before[RULE[0]], RULE[1], RULE[2], RULE[3],
                                "hsm-1").provider_symbol == before[RULE[1]]
    r = c.broker().resolve(RULE[0], before[RULE[0]], RULE[2], RULE[3], "hsm-2")
    assert list(r.provider_agencies) == [RULE[1]]
    # Release, then the provider no longer answers.
    assert c.agency(RULE[1]).release(before_released) is True
    m = c.agency(RULE[0]).issue(released).symbol
    err = call_error(c.broker().translate, RULE[0], m, RULE[1], RULE[2], RULE[3], "hsm-3")
    assert err.reason == "PROVIDER_NOT_HOLDING"

    # Batch issue and batch translate; the portal sees the subject's records; the log verifies.
    batch = numbers.many(3)
    issued = c.agency(RULE[0]).issue_batch(batch)
    c.agency(RULE[1]).issue_batch(batch)
    reqs = [broker_pb.TranslateSymbolRequest(
        requester_agency=RULE[0], symbol=r.issued.symbol, provider_agency=RULE[1],
        office_work=RULE[2], info_item=RULE[3], exchange_id=f"hsm-b{i}")
        for i, r in enumerate(issued)]
    assert all(r.WhichOneof("outcome") == "translated" for r in c.broker().translate_batch(reqs))
    portal_symbol = c.agency("portal").issue(n).symbol
    kinds = [r.kind for r in c.portal().all_records(portal_symbol)]
    # the translation and the resolution about n (1, 2), and its three ISSUE records (3)
    assert sorted(kinds) == [1, 2, 3, 3, 3]
    assert symbolsvc_main(["audit", "verify", "--deployment", str(dep), "--target",
                           server.address]) == 0

    # No master's bytes in the server's memory, nor anywhere in the deployment's files: neither
    # the root and symbol key nor the pseudorandom keys the token holds in their place.
    pid = server.proc.pid  # type: ignore[union-attr]
    assert memory_contains(pid, secrets + token_values) == set()
    assert files_contain(dep, secrets + token_values) == set()

    # A rotation generates the new symbol key inside the token.
    rotated = keys_cli(config, "rotate", env=token)
    assert rotated.returncode == 0, rotated.stderr
    mark = server.log_size()
    server.signal(signal.SIGHUP)
    server.wait_for_log("keyring reloaded: symbol key version 2 current", since=mark)
    up = c.agency(RULE[0]).issue(n)
    assert up.symbol.startswith("k2.") and not up.newly_registered
    assert c.broker().translate(RULE[0], before[RULE[0]], RULE[1], RULE[2], RULE[3],
                                "hsm-4").provider_symbol == before[RULE[1]]
    status = keys_cli(config, "status", env=token)
    assert [ln.split()[-1] for ln in status.stdout.splitlines()[1:3]] == ["hsm", "hsm"]
    c.close()
