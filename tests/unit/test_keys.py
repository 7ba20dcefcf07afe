"""The keyring: wrapped master secrets (symbolsvc.keys)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

import symbolsvc.keys
from symbolsvc.errors import ConfigError, KeyringError
from symbolsvc.keys import KEYRING_FORMAT, Keyring, hkdf, load_keyring, read_passphrase

PASS = b"correct horse battery staple"


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    kr = Keyring.generate()
    kr.symbol_keys[2] = Keyring.generate().symbol_keys[1]
    kr.current_version = 2
    return kr


@pytest.fixture(scope="module")
def sealed(keyring: Keyring) -> bytes:
    """Sealed with a cheap scrypt cost (the file records its parameters, so unseal follows)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(symbolsvc.keys, "_SCRYPT_N", 2**10)
        return keyring.seal(PASS)


def test_default_cost_round_trip(keyring: Keyring) -> None:
    data = keyring.seal(PASS)
    assert json.loads(data)["kdf"]["n"] == 2**15
    assert _same(Keyring.unseal(data, PASS), keyring)


def _same(a: Keyring, b: Keyring) -> bool:
    return (a.root, a.symbol_keys, a.current_version, a.log_signing_seed) == (
        b.root, b.symbol_keys, b.current_version, b.log_signing_seed)


def test_generate_is_random() -> None:
    a, b = Keyring.generate(), Keyring.generate()
    assert a.current_version == 1 and set(a.symbol_keys) == {1}
    assert len(a.root) == len(a.symbol_keys[1]) == len(a.log_signing_seed) == 32
    assert len({a.root, b.root, a.symbol_keys[1], b.symbol_keys[1], a.log_signing_seed}) == 5


def test_seal_unseal_round_trip(keyring: Keyring, sealed: bytes, tmp_path: Path) -> None:
    opened = Keyring.unseal(sealed, PASS)
    assert _same(opened, keyring)
    path = tmp_path / "keyring.json"
    path.write_bytes(sealed)
    assert _same(load_keyring(path, PASS), keyring)
    doc = json.loads(sealed)
    assert doc["format"] == KEYRING_FORMAT
    assert doc["kdf"]["name"] == "scrypt" and doc["aead"] == "AES-256-GCM"
    # the signing key survives the trip too
    assert opened.log_signing_key().public_key().public_bytes_raw() == (
        keyring.log_signing_key().public_key().public_bytes_raw())


def test_sealing_twice_differs(keyring: Keyring, sealed: bytes) -> None:
    again = keyring.seal(PASS)
    assert again != sealed  # fresh salt and nonce
    assert json.loads(again)["kdf"]["salt"] != json.loads(sealed)["kdf"]["salt"]


def _encodings(secret: bytes) -> list[bytes]:
    b64 = base64.b64encode(secret)
    return [secret, b64, b64.rstrip(b"="), base64.urlsafe_b64encode(secret).rstrip(b"="),
            secret.hex().encode(), secret.hex().upper().encode(), base64.b32encode(secret),
            b64[:16], secret[:12]]


def test_file_contains_no_secret(keyring: Keyring, sealed: bytes) -> None:
    secrets = [keyring.root, keyring.log_signing_seed, *keyring.symbol_keys.values()]
    # and the keys derived from them
    secrets += [hkdf(keyring.root, b"subject-id"), hkdf(keyring.root, b"log-pseudonym"),
                hkdf(keyring.root, b"seal subject-ref v1")]
    for secret in secrets:
        for enc in _encodings(secret):
            assert enc not in sealed
    assert PASS not in sealed


def test_wrong_passphrase(sealed: bytes) -> None:
    with pytest.raises(KeyringError) as info:
        Keyring.unseal(sealed, b"wrong passphrase")
    assert "passphrase" in str(info.value)
    assert PASS.decode() not in str(info.value)
    with pytest.raises(KeyringError):
        Keyring.unseal(sealed, b"")


def _edit(sealed: bytes, **changes: object) -> bytes:
    doc = json.loads(sealed)
    for key, value in changes.items():
        if value is None:
            del doc[key]
        else:
            doc[key] = value
    return json.dumps(doc).encode()


def _flip_b64(value: str, index: int) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_damaged_file(sealed: bytes) -> None:
    doc = json.loads(sealed)
    ct, nonce, salt = doc["ciphertext"], doc["nonce"], doc["kdf"]["salt"]
    damaged = [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b"[]",
        b'"a string"',
        b"42",
        b"null",
        sealed[: len(sealed) // 2],
        _edit(sealed, format="symbolsvc-keyring/v0"),
        _edit(sealed, format=None),
        _edit(sealed, kdf=None),
        _edit(sealed, kdf="scrypt"),
        _edit(sealed, kdf={**doc["kdf"], "name": "pbkdf2"}),
        _edit(sealed, kdf={**doc["kdf"], "n": 3}),
        _edit(sealed, nonce=None),
        _edit(sealed, nonce="***"),
        _edit(sealed, nonce=base64.b64encode(b"short").decode()),
        _edit(sealed, ciphertext=None),
        _edit(sealed, ciphertext=ct[:-8]),
        _edit(sealed, ciphertext=_flip_b64(ct, 0)),
        _edit(sealed, ciphertext=_flip_b64(ct, len(base64.b64decode(ct)) - 1)),
        _edit(sealed, nonce=_flip_b64(nonce, 3)),
        _edit(sealed, kdf={**doc["kdf"], "salt": _flip_b64(salt, 0)}),
    ]
    for data in damaged:
        with pytest.raises(KeyringError):
            Keyring.unseal(data, PASS)


def test_load_keyring_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyringError) as info:
        load_keyring(tmp_path / "absent.json", PASS)
    assert "absent.json" in str(info.value)
    assert issubclass(KeyringError, ConfigError)


def test_read_passphrase_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "passphrase"
    file.write_bytes(b"from-file\n")
    monkeypatch.setenv("TEST_SYMBOLSVC_PASS", "from-env")
    assert read_passphrase("TEST_SYMBOLSVC_PASS", file) == b"from-env"
    assert read_passphrase("TEST_SYMBOLSVC_PASS", None) == b"from-env"
    # an empty variable counts as unset: the file is used
    monkeypatch.setenv("TEST_SYMBOLSVC_PASS", "")
    assert read_passphrase("TEST_SYMBOLSVC_PASS", file) == b"from-file"
    monkeypatch.delenv("TEST_SYMBOLSVC_PASS")
    assert read_passphrase("TEST_SYMBOLSVC_PASS", file) == b"from-file"
    assert read_passphrase(None, file) == b"from-file"
    with pytest.raises(KeyringError) as info:
        read_passphrase("TEST_SYMBOLSVC_PASS", None)
    assert "TEST_SYMBOLSVC_PASS" in str(info.value)
    with pytest.raises(KeyringError) as info:
        read_passphrase(None, tmp_path / "missing")
    assert "missing" in str(info.value)
