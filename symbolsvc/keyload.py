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
from dataclasses import dataclass
from typing import Protocol

from .config import Config
from .errors import ConfigError
from .keys import ROOT, Keyring, load_keyring, read_passphrase
from .keystore import key_source
from .log.integrate import SignFn
from .log.queue_auth import LABEL as QUEUE_LABEL
from .log.queue_auth import QueueAuthenticator
from .log.receipts import ReceiptSigner
from .log.sequencer import Sequencer, checkpoint_signer
from .symbols import Deriver

log = logging.getLogger("symbolsvc.keys")


class HasDeriver(Protocol):
    deriver: Deriver


class HasReceipts(Protocol):
    receipts: ReceiptSigner | None


@dataclass(frozen=True)
class Keys:
    """What a server derives from its keyring: the deriver (over the file or the token),
    the checkpoint signer, the queued-record authenticator (K_queue, from the root) and
    the receipt signer (the log keys, like checkpoints)."""

    keyring: Keyring
    deriver: Deriver
    sign: SignFn
    queue_auth: QueueAuthenticator
    receipts: ReceiptSigner


def open_keys(config: Config) -> Keys:
    """Open the keyring and derive everything a server signs, seals or tags with."""
    passphrase = read_passphrase(config.passphrase_env, config.passphrase_file)
    keyring = load_keyring(config.keyring, passphrase)
    source = key_source(keyring, config.hsm)
    deriver = Deriver(keyring, source)
    log_keys = keyring.log_signing_keys()
    return Keys(keyring, deriver, checkpoint_signer(config.log_origin, log_keys),
                QueueAuthenticator(source.derive(ROOT, QUEUE_LABEL)),
                ReceiptSigner(config.log_origin, log_keys, config.log_max_merge_delay))


async def reload_keys(config: Config, users: Sequence[HasDeriver],
                      sequencer: Sequencer | None, receipts: HasReceipts | None = None) -> None:
    """SIGHUP: reopen the keyring (off the event loop: scrypt and the token are slow) and
    hand the new deriver to ``users``, the log keys to ``sequencer`` and ``receipts``."""
    try:
        keys = await asyncio.get_running_loop().run_in_executor(None, open_keys, config)
    except ConfigError as exc:
        log.error("keyring NOT reloaded; keeping the previous keys: %s", exc)
        return
    keyring, deriver = keys.keyring, keys.deriver
    for user in users:
        user.deriver = deriver
    if sequencer is not None:
        sequencer.set_signer(keys.sign)
    if receipts is not None:
        receipts.receipts = keys.receipts
    log.info("keyring reloaded: symbol key version %d current, versions %s accepted%s",
             deriver.current_version, ", ".join(map(str, deriver.versions)),
             "; checkpoints signed by the previous and the new log key"
             if keyring.previous_log_seed else "")
