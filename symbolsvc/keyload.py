"""Opening the keys a server runs with, and taking up new ones on SIGHUP.

``symbolsvc keys rotate`` and ``keys rotate-log`` only rewrite the keyring;
a running server takes the new keyring up on SIGHUP (or at restart): a new
:class:`~symbolsvc.symbols.Deriver` replaces the core's (calls in flight finish
with whichever they started with; both are valid) and the sequencer signs the
next checkpoints with the reloaded log keys. A keyring that fails to open is
refused and the running keys kept.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .config import Config
from .errors import ConfigError
from .keys import Keyring, load_keyring, read_passphrase
from .keystore import key_source
from .log.sequencer import checkpoint_signer
from .registry import SignFn
from .symbols import Deriver

if TYPE_CHECKING:
    from .server import App

log = logging.getLogger("symbolsvc.keys")


def open_keys(config: Config) -> tuple[Keyring, Deriver, SignFn]:
    """The keyring, its deriver (over the file or the token) and the checkpoint signer."""
    passphrase = read_passphrase(config.passphrase_env, config.passphrase_file)
    keyring = load_keyring(config.keyring, passphrase)
    deriver = Deriver(keyring, key_source(keyring, config.hsm))
    return keyring, deriver, checkpoint_signer(config.log_origin, keyring.log_signing_keys())


async def reload_keys(app: App) -> None:
    """SIGHUP: reopen the keyring (off the event loop: scrypt and the token are slow)."""
    try:
        keyring, deriver, sign = await asyncio.get_running_loop().run_in_executor(
            None, open_keys, app.config)
    except ConfigError as exc:
        log.error("keyring NOT reloaded; keeping the previous keys: %s", exc)
        return
    app.core.deriver = deriver
    if app.sequencer is not None:
        app.sequencer.set_signer(sign)
    log.info("keyring reloaded: symbol key version %d current, versions %s accepted%s",
             deriver.current_version, ", ".join(map(str, deriver.versions)),
             "; checkpoints signed by the previous and the new log key"
             if keyring.previous_log_seed else "")
