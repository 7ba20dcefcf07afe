"""``[keys]`` settings of the PKCS#11 provider."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import KeyringError

DEFAULT_PIN_ENV = "SYMBOLSVC_HSM_PIN"


@dataclass(frozen=True)
class HsmConfig:
    """``[keys]`` with ``provider = "pkcs11"``."""

    module: Path  # the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so
    token_label: str
    pin_env: str = DEFAULT_PIN_ENV
    pin_file: Path | None = None

    def pin(self) -> str:
        if os.environ.get(self.pin_env):
            return os.environ[self.pin_env]
        if self.pin_file is not None:
            try:
                return self.pin_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise KeyringError(
                    f"cannot read the token PIN file {self.pin_file}: {exc.strerror}") from None
        raise KeyringError(f"no token PIN: set ${self.pin_env} or [keys] pin_file")
