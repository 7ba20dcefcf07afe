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
from collections.abc import Sequence
from typing import Protocol

from .config import Config
from .errors import ConfigError
from .keys import Keyring, load_keyring, read_passphrase
from .keystore import key_source
from .log.integrate import SignFn
from .log.sequencer import Sequencer, checkpoint_signer
from .symbols import Deriver

log = logging.getLogger("symbolsvc.keys")


class HasDeriver(Protocol):
    deriver: Deriver


def open_keys(config: Config) -> tuple[Keyring, Deriver, SignFn]:
    """The keyring, its deriver (over the file or the token) and the checkpoint signer."""
    passphrase = read_passphrase(config.passphrase_env, config.passphrase_file)
    keyring = load_keyring(config.keyring, passphrase)
    deriver = Deriver(keyring, key_source(keyring, config.hsm))
    return keyring, deriver, checkpoint_signer(config.log_origin, keyring.log_signing_keys())


async def reload_keys(config: Config, users: Sequence[HasDeriver],
                      sequencer: Sequencer | None) -> None:
    """SIGHUP: reopen the keyring (off the event loop: scrypt and the token are slow) and
    hand the new deriver to ``users`` and the log keys to ``sequencer``."""
    try:
        keyring, deriver, sign = await asyncio.get_running_loop().run_in_executor(
            None, open_keys, config)
    except ConfigError as exc:
        log.error("keyring NOT reloaded; keeping the previous keys: %s", exc)
        return
    for user in users:
        user.deriver = deriver
    if sequencer is not None:
        sequencer.set_signer(sign)
    log.info("keyring reloaded: symbol key version %d current, versions %s accepted%s",
             deriver.current_version, ", ".join(map(str, deriver.versions)),
             "; checkpoints signed by the previous and the new log key"
             if keyring.previous_log_seed else "")
