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
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
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


def hkdf_extract(secret: bytes) -> bytes:
    """HKDF-Extract with the project's salt: the pseudorandom key an HSM holds in place of
    ``secret`` (HKDF-Expand is one HMAC under it, so a token derives with CKM_SHA256_HMAC)."""
    h = hmac.HMAC(_HKDF_SALT, hashes.SHA256())
    h.update(secret)
    return h.finalize()


def hkdf_expand(prk: bytes, info: bytes) -> bytes:
    """HKDF-Expand for one 32-byte block: HMAC-SHA256(prk, info || 0x01)."""
    h = hmac.HMAC(prk, hashes.SHA256())
    h.update(info + b"\x01")
    return h.finalize()


ROOT = "root"
"""The master-secret name of the root (subject ids, sealing, log pseudonyms)."""


def symbol_master(version: int) -> str:
    """The master-secret name of symbol-key version ``version``."""
    return f"symbol-v{version}"


class KeySource(Protocol):
    """Where the master secrets live: ``derive(master, info)`` is HKDF-SHA256 of the named
    master with ``info`` (32 bytes), computed wherever the master is kept."""

    def derive(self, master: str, info: bytes) -> bytes: ...


@dataclass
class Keyring:
    """The secrets and key metadata, held in memory only by the server process.

    ``root`` and ``symbol_keys`` are empty when the masters live in a PKCS#11
    token (``hsm_masters`` then names them); the rest is always here.
    """

    root: bytes
    symbol_keys: dict[int, bytes]
    current_version: int
    log_signing_seed: bytes
    extra: dict[str, str] = field(default_factory=dict)
    retired: set[int] = field(default_factory=set)
    # The log key being rotated away from: checkpoints carry its signature too
    # until `keys rotate-log --finish` drops it (docs/KEYS.md).
    previous_log_seed: bytes | None = None
    # Masters ("root", "symbol-v<n>") that live in the HSM rather than here.
    hsm_masters: list[str] = field(default_factory=list)

    @classmethod
    def generate(cls) -> Keyring:
        """Fresh random secrets with symbol key version 1."""
        return cls(
            root=os.urandom(32),
            symbol_keys={1: os.urandom(32)},
            current_version=1,
            log_signing_seed=os.urandom(32),
        )

    @property
    def versions(self) -> list[int]:
        """Every symbol-key version that is not retired, oldest first."""
        held = set(self.symbol_keys) | {
            int(m.removeprefix("symbol-v")) for m in self.hsm_masters if m.startswith("symbol-v")
        }
        return sorted(held - self.retired)

    def log_signing_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.log_signing_seed)

    def log_signing_keys(self) -> list[Ed25519PrivateKey]:
        """The keys that sign the next checkpoint: the previous one first while a log-key
        rotation is in its transition, then the current one."""
        seeds = [self.previous_log_seed] if self.previous_log_seed else []
        return [Ed25519PrivateKey.from_private_bytes(s) for s in [*seeds, self.log_signing_seed]]

    def derive(self, master: str, info: bytes) -> bytes:
        """:class:`KeySource` over the masters in this keyring (the file provider)."""
        if master == ROOT and self.root:
            return hkdf(self.root, info)
        if master.startswith("symbol-v"):
            key = self.symbol_keys.get(int(master.removeprefix("symbol-v")))
            if key is not None:
                return hkdf(key, info)
        raise KeyringError(f"the keyring does not hold the master secret {master!r}")

    def _plaintext(self) -> bytes:
        b64 = base64.b64encode
        doc: dict[str, object] = {
            "root": b64(self.root).decode(),
            "symbol_keys": {str(v): b64(k).decode() for v, k in self.symbol_keys.items()},
            "current_version": self.current_version,
            "log_signing_seed": b64(self.log_signing_seed).decode(),
        }
        if self.retired:
            doc["retired_versions"] = sorted(self.retired)
        if self.previous_log_seed:
            doc["previous_log_signing_seed"] = b64(self.previous_log_seed).decode()
        if self.hsm_masters:
            doc["hsm_masters"] = sorted(self.hsm_masters)
        return json.dumps(doc, sort_keys=True).encode()

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
        prev = secrets.get("previous_log_signing_seed")
        return cls(
            root=b64d(secrets["root"]),
            symbol_keys={int(v): b64d(k) for v, k in secrets["symbol_keys"].items()},
            current_version=int(secrets["current_version"]),
            log_signing_seed=b64d(secrets["log_signing_seed"]),
            retired={int(v) for v in secrets.get("retired_versions", [])},
            previous_log_seed=b64d(prev) if prev else None,
            hsm_masters=[str(m) for m in secrets.get("hsm_masters", [])],
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


def save_keyring(path: Path, keyring: Keyring, passphrase: bytes) -> None:
    """Replace the keyring file atomically (a crash leaves the old or the new file), 0600."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, keyring.seal(passphrase))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def load_keyring(path: Path, passphrase: bytes) -> Keyring:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyringError(f"cannot read the keyring {path}: {exc.strerror}") from None
    return Keyring.unseal(data, passphrase)
