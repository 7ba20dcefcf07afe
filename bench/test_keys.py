"""Cost of one key derivation: in process (file keyring) vs in a PKCS#11 token (SoftHSM2).

``python -m pytest bench/test_keys.py``. A derivation is HKDF-SHA256 of a master secret
(one per agency and key version, then cached by the deriver), so the token's cost is paid
once per (agency, version) per process, never per call; the symbol HMAC that every issue
and translation computes uses the cached derived key either way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from symbolsvc.keys import Keyring
from symbolsvc.keystore import HsmConfig
from symbolsvc.symbols import Deriver

MODULES = ["/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"]
INFO = b"agency-symbol\x00city-chiyoda"


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    module = next((m for m in MODULES if Path(m).exists()), None)
    assert module is not None and shutil.which("softhsm2-util"), "SoftHSM2 is missing"
    d = tmp_path_factory.mktemp("softhsm")
    (d / "tokens").mkdir()
    (d / "softhsm2.conf").write_text(f"directories.tokendir = {d / 'tokens'}\n"
                                     "objectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(d / "softhsm2.conf")
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin",
                    "1234", "--so-pin", "5678"], check=True, capture_output=True)
    from symbolsvc.keystore.pkcs11 import TokenSource, import_master, open_session

    hsm = HsmConfig(module=Path(module), token_label="bench", pin_env="BENCH_PIN_UNSET",
                    pin_file=d / "pin")
    (d / "pin").write_text("1234")
    session = open_session(hsm, rw=True)
    import_master(session, "symbol-v1", os.urandom(32))
    import_master(session, "root", os.urandom(32))
    source = TokenSource.open(hsm, ["root", "symbol-v1"])
    yield source
    source.close()
    session.close()


def test_keys_derive_file(benchmark) -> None:
    keyring = Keyring.generate()
    assert len(benchmark(keyring.derive, "symbol-v1", INFO)) == 32


def test_keys_derive_token(benchmark, token) -> None:
    assert len(benchmark(token.derive, "symbol-v1", INFO)) == 32


def test_keys_deriver_start_file(benchmark) -> None:
    """Opening the deriver: the root's three derived keys."""
    keyring = Keyring.generate()
    benchmark(Deriver, keyring)


def test_keys_deriver_start_token(benchmark, token) -> None:
    keyring = Keyring(root=b"", symbol_keys={}, current_version=1, log_signing_seed=bytes(32),
                      hsm_masters=["root", "symbol-v1"])
    benchmark(Deriver, keyring, token)
