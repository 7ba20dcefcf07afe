"""Master secrets in a PKCS#11 token, through python-pkcs11.

Each master is a token object (CKO_SECRET_KEY, CKK_GENERIC_SECRET, labelled
``symbolsvc-<master>``: ``symbolsvc-root``, ``symbolsvc-symbol-v2``) with
CKA_SENSITIVE true, CKA_EXTRACTABLE false and CKA_SIGN true. Its value is the
HKDF-SHA256 *pseudorandom key* of the master (HKDF-Extract with the project's
salt): then HKDF-Expand, one HMAC, is a CKM_SHA256_HMAC signature by the token,
and a file keyring's root moved into a token (``keys import-to-hsm``) derives
exactly the keys it derived before. A master generated inside the token is a
random 32-byte pseudorandom key from the start and never leaves it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import PKCS11Error, UserAlreadyLoggedIn

from ..errors import KeyringError
from ..keys import hkdf_extract
from .config import HsmConfig

LABEL_PREFIX = "symbolsvc-"


def _label(master: str) -> str:
    return LABEL_PREFIX + master


def _template(master: str) -> dict[Any, Any]:
    return {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.SIGN: True,
        Attribute.VERIFY: False,
        Attribute.ENCRYPT: False,
        Attribute.DECRYPT: False,
        Attribute.WRAP: False,
        Attribute.UNWRAP: False,
        Attribute.DERIVE: False,
        Attribute.LABEL: _label(master),
    }


def open_session(hsm: HsmConfig, *, rw: bool = False) -> Any:
    """A logged-in session on the configured token; :class:`KeyringError` if impossible."""
    try:
        lib = pkcs11.lib(str(hsm.module))
        token = lib.get_token(token_label=hsm.token_label)
        try:
            return token.open(user_pin=hsm.pin(), rw=rw)
        except UserAlreadyLoggedIn:  # PKCS#11 logins are per process: a reload's session
            return token.open(rw=rw)  # joins the login of the sessions still open
    except (PKCS11Error, RuntimeError, OSError) as exc:
        raise KeyringError(
            f"cannot open PKCS#11 token {hsm.token_label!r} with {hsm.module}: "
            f"{type(exc).__name__} {exc}".rstrip()) from None


def _find(session: Any, master: str) -> Any | None:
    found = list(session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                      Attribute.LABEL: _label(master)}))
    if len(found) > 1:
        raise KeyringError(f"the token holds {len(found)} keys labelled {_label(master)!r}")
    return found[0] if found else None


class TokenSource:
    """:class:`symbolsvc.keys.KeySource` over a token: every derivation is a token HMAC."""

    def __init__(self, session: Any, keys: dict[str, Any]) -> None:
        self._session = session
        self._keys = keys
        self._lock = threading.Lock()  # one session: operations one at a time

    @classmethod
    def open(cls, hsm: HsmConfig, masters: Iterable[str]) -> TokenSource:
        session = open_session(hsm)
        keys = {}
        for master in masters:
            key = _find(session, master)
            if key is None:
                raise KeyringError(
                    f"the token {hsm.token_label!r} has no key {_label(master)!r}")
            keys[master] = key
        return cls(session, keys)

    def derive(self, master: str, info: bytes) -> bytes:
        key = self._keys.get(master)
        if key is None:
            raise KeyringError(f"the token holds no master secret {master!r}")
        with self._lock:
            return bytes(key.sign(info + b"\x01", mechanism=Mechanism.SHA256_HMAC))

    def close(self) -> None:
        self._session.close()


def import_master(session: Any, master: str, secret: bytes) -> None:
    """Store ``master``'s pseudorandom key (HKDF-Extract of ``secret``) as a non-extractable
    token key. Refuses when the token already holds a key under that label."""
    if _find(session, master) is not None:
        raise KeyringError(f"the token already holds a key labelled {_label(master)!r}")
    session.create_object({
        Attribute.CLASS: ObjectClass.SECRET_KEY,
        Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
        Attribute.VALUE: hkdf_extract(secret),
        **_template(master),
    })


def generate_master(session: Any, master: str) -> None:
    """A fresh random master generated inside the token (it never leaves it)."""
    if _find(session, master) is not None:
        raise KeyringError(f"the token already holds a key labelled {_label(master)!r}")
    template = _template(master)
    label = template.pop(Attribute.LABEL)
    session.generate_key(KeyType.GENERIC_SECRET, 256, label=label, store=True,
                         template=template)


def destroy_master(session: Any, master: str) -> bool:
    """Destroy ``master``'s token key (retirement); False if it was not there."""
    key = _find(session, master)
    if key is None:
        return False
    key.destroy()
    return True
