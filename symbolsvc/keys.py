"""The keyring: master secrets, stored only wrapped, and the keys derived from them.

Data (docs/KEYS.md has the whole picture):

* ``root`` — 32 random bytes. HKDF-SHA256 derives from it the subject-id key,
  the subject-reference sealing key and the log-pseudonym key.
* ``symbol_keys`` — versioned 32-byte master secrets. HKDF-SHA256 derives
  from version *v* one HMAC key per agency; a symbol carries its version.
* ``log_signing_key`` — the Ed25519 seed that signs access-log checkpoints.

On disk the plaintext exists only inside an AES-256-GCM envelope whose key is
derived from a passphrase with scrypt (RFC 7914). A copy of the deployment
directory without the passphrase reveals none of the secrets.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import KeyringError

KEYRING_FORMAT = "symbolsvc-keyring/v1"
_HKDF_SALT = b"symbolsvc/v1"
# scrypt cost: 2^15 x 8 x 1 is 32 MiB and ~0.1 s, paid once at start-up.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1


def hkdf(secret: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869) with the project's fixed salt."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=_HKDF_SALT, info=info).derive(
        secret
    )


@dataclass
class Keyring:
    """The plaintext secrets, held in memory only by the server process."""

    root: bytes
    symbol_keys: dict[int, bytes]
    current_version: int
    log_signing_seed: bytes
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def generate(cls) -> Keyring:
        """Fresh random secrets with symbol key version 1."""
        return cls(
            root=os.urandom(32),
            symbol_keys={1: os.urandom(32)},
            current_version=1,
            log_signing_seed=os.urandom(32),
        )

    def log_signing_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.log_signing_seed)

    def _plaintext(self) -> bytes:
        b64 = base64.b64encode
        return json.dumps(
            {
                "root": b64(self.root).decode(),
                "symbol_keys": {str(v): b64(k).decode() for v, k in self.symbol_keys.items()},
                "current_version": self.current_version,
                "log_signing_seed": b64(self.log_signing_seed).decode(),
            },
            sort_keys=True,
        ).encode()

    def seal(self, passphrase: bytes) -> bytes:
        """Return the keyring file's bytes: the secrets wrapped under the passphrase."""
        salt, nonce = os.urandom(16), os.urandom(12)
        kek = _kek(passphrase, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
        ct = AESGCM(kek).encrypt(nonce, self._plaintext(), KEYRING_FORMAT.encode())
        b64 = base64.b64encode
        doc = {
            "format": KEYRING_FORMAT,
            "kdf": {"name": "scrypt", "salt": b64(salt).decode(), "n": _SCRYPT_N,
                    "r": _SCRYPT_R, "p": _SCRYPT_P},
            "aead": "AES-256-GCM",
            "nonce": b64(nonce).decode(),
            "ciphertext": b64(ct).decode(),
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    @classmethod
    def unseal(cls, data: bytes, passphrase: bytes) -> Keyring:
        """Open a keyring file; :class:`KeyringError` on a wrong passphrase or damage."""
        try:
            doc = json.loads(data)
            if (not isinstance(doc, dict) or doc.get("format") != KEYRING_FORMAT
                    or doc["kdf"]["name"] != "scrypt"):
                raise KeyringError(f"keyring format is not {KEYRING_FORMAT}")
            kdf = doc["kdf"]
            kek = _kek(passphrase, base64.b64decode(kdf["salt"]), kdf["n"], kdf["r"], kdf["p"])
            pt = AESGCM(kek).decrypt(
                base64.b64decode(doc["nonce"]), base64.b64decode(doc["ciphertext"]),
                KEYRING_FORMAT.encode(),
            )
        except InvalidTag:
            raise KeyringError(
                "cannot open the keyring: wrong passphrase or damaged file"
            ) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyringError(f"keyring file is malformed: {exc}") from None
        secrets = json.loads(pt)
        b64d = base64.b64decode
        return cls(
            root=b64d(secrets["root"]),
            symbol_keys={int(v): b64d(k) for v, k in secrets["symbol_keys"].items()},
            current_version=int(secrets["current_version"]),
            log_signing_seed=b64d(secrets["log_signing_seed"]),
        )


def _kek(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    if not passphrase:
        raise KeyringError("the keyring passphrase is empty")
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


def read_passphrase(env_name: str | None, file: Path | None) -> bytes:
    """The passphrase from the named environment variable, else from the file."""
    if env_name and os.environ.get(env_name):
        return os.environ[env_name].encode()
    if file is not None:
        try:
            return file.read_bytes().strip()
        except OSError as exc:
            raise KeyringError(f"cannot read the passphrase file {file}: {exc.strerror}") from None
    raise KeyringError(
        f"no keyring passphrase: set ${env_name or 'SYMBOLSVC_PASSPHRASE'} "
        "or [keys] passphrase_file in config.toml"
    )


def load_keyring(path: Path, passphrase: bytes) -> Keyring:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyringError(f"cannot read the keyring {path}: {exc.strerror}") from None
    return Keyring.unseal(data, passphrase)
