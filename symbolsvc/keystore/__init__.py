"""Where the master secrets live: the keyring file, or a PKCS#11 token (docs/KEYS.md).

``[keys] provider = "file"`` (the default) keeps the root and the symbol keys
inside the passphrase-wrapped keyring. ``provider = "pkcs11"`` keeps them in a
token as non-extractable HMAC keys: the server asks the token for each HKDF
derivation (HKDF-Expand is one HMAC-SHA256, CKM_SHA256_HMAC), so the masters
never exist in the server's memory; only the derived keys do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError, KeyringError
from ..keys import Keyring, KeySource
from .config import DEFAULT_PIN_ENV, HsmConfig

PROVIDERS = ("file", "pkcs11")
__all__ = ["DEFAULT_PIN_ENV", "PROVIDERS", "HsmConfig", "key_source", "parse_provider",
           "pkcs11_module"]


def parse_provider(keys: dict[str, Any], path: Path) -> HsmConfig | None:
    """The ``[keys]`` provider settings of config file ``path``: None for the file provider."""
    provider = keys.get("provider", "file")
    if provider not in PROVIDERS:
        raise ConfigError(f"{path}: [keys] provider must be one of {', '.join(PROVIDERS)}")
    if provider == "file":
        return None

    def text(key: str, default: str | None = None) -> str:
        value = keys.get(key, default)
        if not isinstance(value, str) or not value:
            raise ConfigError(
                f"{path}: [keys] {key} is required with provider = \"pkcs11\" (a non-empty string)")
        return value

    pin_file = keys.get("pin_file")
    if pin_file is not None and (not isinstance(pin_file, str) or not pin_file):
        raise ConfigError(f"{path}: [keys] pin_file must be a non-empty string")
    return HsmConfig(
        module=path.parent / text("pkcs11_module"),
        token_label=text("token_label"),
        pin_env=text("pin_env", DEFAULT_PIN_ENV),
        pin_file=path.parent / pin_file if pin_file else None,
    )


def key_source(keyring: Keyring, hsm: HsmConfig | None) -> KeySource:
    """The :class:`KeySource` for a loaded keyring: the keyring itself, or its token."""
    if not keyring.hsm_masters:
        if hsm is not None:
            raise KeyringError(
                "[keys] provider is \"pkcs11\" but the keyring still holds its master secrets: "
                "run `symbolsvc keys import-to-hsm --config CONFIG` first")
        return keyring
    if hsm is None:
        raise KeyringError(
            "the keyring's master secrets are in a PKCS#11 token: set [keys] provider = "
            "\"pkcs11\" with pkcs11_module and token_label")
    return pkcs11_module().TokenSource.open(hsm, keyring.hsm_masters)


def pkcs11_module() -> Any:
    """:mod:`symbolsvc.keystore.pkcs11`, or a one-line error when its binding is missing."""
    try:
        from . import pkcs11
    except ImportError as exc:
        raise KeyringError(
            f"[keys] provider = \"pkcs11\" needs python-pkcs11 (pip install "
            f"'symbolsvc[pkcs11]'): {exc}") from None
    return pkcs11
