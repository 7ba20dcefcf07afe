"""Blind translation on the server (docs/BLIND_TRANSLATION.md): each provider agency's HPKE
public key (``pki/PROVIDER.hpke.pub``, re-read when replaced) and sealing its symbol to it."""

from __future__ import annotations

from pathlib import Path

from . import sealing
from .errors import FailedPrecondition
from .filecache import FileCache


def _key(data: bytes) -> sealing.SealKey:
    return sealing.public_key(data.decode("ascii", errors="replace"))


class Blinder:
    """``key_for`` runs before anything is written (a provider without a usable key fails
    the item alone); ``seal`` after the record is durable, with the key ``key_for`` gave."""

    def __init__(self, pki: Path) -> None:
        self.pki = pki
        self._keys: FileCache[sealing.SealKey] = FileCache(_key)

    def key_for(self, provider: str, field: str = "provider_agency") -> sealing.SealKey:
        key = self._keys.get(self.pki / f"{provider}.hpke.pub")
        if key is None:
            raise FailedPrecondition(
                "NO_SEALING_KEY",
                f"blind translation is on and the provider agency {provider!r} has no valid "
                "HPKE public key registered (symbolsvc agency hpke-key)", field)
        return key

    @staticmethod
    def seal(key: sealing.SealKey, provider_symbol: str, exchange_id: str,
             requester: str) -> bytes:
        return key.seal(provider_symbol.encode("ascii"), sealing.info(exchange_id, requester))
