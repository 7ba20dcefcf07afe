"""``symbolsvc keys rotate|status|retire|rotate-log|import-to-hsm --config C`` (docs/KEYS.md).

Each command rewrites the keyring file atomically (and ``pki/log.vkey`` for
the log key) and changes nothing else a running server reads: servers take
the new keyring up on SIGHUP or restart. ``status`` and ``retire`` read the
registry the configuration names (SQLite or PostgreSQL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from .config import Config, load_config
from .errors import ConfigError, KeyringError
from .keys import Keyring, load_keyring, read_passphrase, save_keyring, symbol_master
from .keystore import pkcs11_module
from .log.checkpoint import NoteError, VerifierKey, vkey_string
from .registry import VersionCount
from .registry.backends import open_registry
from .verify.keychain import parse_vkeys


def _open(config: Config) -> tuple[Keyring, bytes]:
    passphrase = read_passphrase(config.passphrase_env, config.passphrase_file)
    return load_keyring(config.keyring, passphrase), passphrase


def vkey_path(config: Config) -> Path:
    """The log's verifier-key file of the deployment (``pki/log.vkey`` next to config.toml)."""
    return config.base / "pki" / "log.vkey"


def _vkeys(config: Config) -> list[VerifierKey]:
    try:
        return parse_vkeys(vkey_path(config).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, NoteError) as exc:
        raise ConfigError(f"cannot read the log's verifier keys {vkey_path(config)}: "
                          f"{exc}") from None


def _session(config: Config) -> Any:
    if config.hsm is None:
        raise ConfigError(f"{config.path}: [keys] provider is not \"pkcs11\"")
    return pkcs11_module().open_session(config.hsm, rw=True)


# -- symbol keys ------------------------------------------------------------------------


def rotate(config: Config) -> str:
    keyring, passphrase = _open(config)
    version = max([*keyring.versions, *keyring.retired, 0]) + 1
    if keyring.hsm_masters:
        session = _session(config)
        try:
            pkcs11_module().generate_master(session, symbol_master(version))
        finally:
            session.close()
        keyring.hsm_masters.append(symbol_master(version))
    else:
        keyring.symbol_keys[version] = os.urandom(32)
    keyring.current_version = version
    save_keyring(config.keyring, keyring, passphrase)
    return (f"symbol key version {version} added and made current (versions "
            f"{', '.join(map(str, keyring.versions))} accepted). Send SIGHUP to every server "
            "process (or restart them); then agencies move their stored symbols with "
            "UpgradeSymbols (symbolctl upgrade), and `symbolsvc keys status` shows what is left")


async def _counts(config: Config) -> list[VersionCount]:
    registry = open_registry(config.storage_url, config.base)
    try:
        return await registry.key_version_counts()
    finally:
        await registry.close()


def status(config: Config) -> str:
    keyring, _ = _open(config)
    counts = {c.key_version: c for c in asyncio.run(_counts(config))}
    lines = [f"{'version':>7}  {'state':<8}  {'holdings':>10}  {'moved rows':>10}  "
             f"{'released':>10}  where"]
    for v in sorted(set(keyring.versions) | keyring.retired | set(counts)):
        c = counts.get(v, VersionCount(v, 0, 0, 0))
        state = ("retired" if v in keyring.retired else
                 "current" if v == keyring.current_version else
                 "accepted" if v in keyring.versions else "unknown")
        where = ("-" if v in keyring.retired else
                 "hsm" if symbol_master(v) in keyring.hsm_masters else "keyring")
        lines.append(f"{v:>7}  {state:<8}  {c.live:>10}  {c.moved:>10}  {c.released:>10}  "
                     f"{where}")
    log_keys = len(_vkeys(config))
    lines.append(f"log keys: {log_keys} in {vkey_path(config).name}"
                 + ("; rotation in transition (checkpoints signed by the previous and the "
                    "current key)" if keyring.previous_log_seed else ""))
    return "\n".join(lines)


async def _purge(config: Config, version: int) -> int:
    registry = open_registry(config.storage_url, config.base)
    try:
        return await registry.purge_key_version(version)
    finally:
        await registry.close()


def retire(config: Config, version: int) -> str:
    keyring, passphrase = _open(config)
    if version in keyring.retired:
        return f"symbol key version {version} is already retired"
    if version not in keyring.versions:
        raise ConfigError(f"symbol key version {version} is not in the keyring")
    if version == keyring.current_version:
        raise ConfigError(f"symbol key version {version} is the current version: rotate first "
                          "(`symbolsvc keys rotate`)")
    live = {c.key_version: c.live for c in asyncio.run(_counts(config))}.get(version, 0)
    if live:
        raise ConfigError(
            f"refusing to retire symbol key version {version}: {live} holding(s) still use it; "
            "agencies move them with UpgradeSymbols (symbolctl upgrade), or issue again")
    keyring.retired.add(version)
    keyring.symbol_keys.pop(version, None)  # the secret is destroyed, not kept
    master = symbol_master(version)
    if master in keyring.hsm_masters:
        session = _session(config)
        try:
            pkcs11_module().destroy_master(session, master)
        finally:
            session.close()
        keyring.hsm_masters.remove(master)
    save_keyring(config.keyring, keyring, passphrase)
    # The moved rows of the version only served its symbols, which are now refused.
    purged = asyncio.run(_purge(config, version))
    note = f"; {purged} moved row(s) deleted" if purged >= 0 else (
        f"; WARNING: {-purged} holding(s) appeared under version {version} meanwhile (a server "
        "not yet reloaded after `keys rotate`?): SIGHUP every server, then issue them again")
    return (f"symbol key version {version} retired and its secret destroyed{note}. Send "
            f"SIGHUP to every server: its symbols then fail with KEY_VERSION_RETIRED")


# -- the log key ----------------------------------------------------------------------


async def _latest_checkpoint(config: Config) -> str | None:
    registry = open_registry(config.storage_url, config.base)
    try:
        cp = await registry.latest_checkpoint()
        return None if cp is None else cp.note
    finally:
        await registry.close()


def rotate_log(config: Config, finish: bool) -> str:
    keyring, passphrase = _open(config)
    vkeys = vkey_path(config)
    if finish:
        if keyring.previous_log_seed is None:
            return "no log-key rotation is in transition"
        from .log.checkpoint import signed_by

        current = _vkeys(config)[-1]
        note = asyncio.run(_latest_checkpoint(config))
        if note is None or not all(signed_by(note, [current])):
            raise ConfigError(
                "refusing to finish: the latest checkpoint is not signed by the new log key "
                "yet; SIGHUP the servers and wait for the next checkpoint (auditors must see "
                "one signed by both keys)")
        keyring.previous_log_seed = None
        save_keyring(config.keyring, keyring, passphrase)
        return ("log-key rotation finished: after SIGHUP, checkpoints are signed by the new "
                "key alone")
    if keyring.previous_log_seed is not None:
        raise ConfigError("a log-key rotation is already in transition: finish it first "
                          "(`symbolsvc keys rotate-log --finish`)")
    origin = _vkeys(config)[0].name
    keyring.previous_log_seed = keyring.log_signing_seed
    keyring.log_signing_seed = os.urandom(32)
    line = vkey_string(origin, keyring.log_signing_key().public_key())
    # The keyring first: a crash before the vkey line leaves a key no verifier trusts yet
    # (re-run after restoring), never a listed key the servers cannot sign with.
    save_keyring(config.keyring, keyring, passphrase)
    with vkeys.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
    return (f"new log key added to {vkeys} ({line}). Send SIGHUP to every server: the next "
            "checkpoints are signed by the old and the new key. Publish the new log.vkey to "
            "auditors; once they have verified a checkpoint signed by both, run "
            "`symbolsvc keys rotate-log --finish`")


# -- HSM ------------------------------------------------------------------------------------


def import_to_hsm(config: Config) -> str:
    keyring, passphrase = _open(config)
    if keyring.hsm_masters:
        raise KeyringError("the keyring's master secrets are already in a token")
    import_master = pkcs11_module().import_master
    masters = {"root": keyring.root} | {
        symbol_master(v): k for v, k in keyring.symbol_keys.items()}
    session = _session(config)
    try:
        for master, secret in masters.items():
            import_master(session, master, secret)
    finally:
        session.close()
    keyring.hsm_masters = sorted(masters)
    keyring.root = b""
    keyring.symbol_keys = {}
    save_keyring(config.keyring, keyring, passphrase)
    assert config.hsm is not None
    return (f"moved {len(masters)} master secret(s) into token {config.hsm.token_label!r} "
            f"({', '.join(sorted(masters))}); the keyring no longer holds them. Restart the "
            "servers. Destroy every copy of the old keyring file (backups included)")


# -- argparse -------------------------------------------------------------------------------


def add_parser(sub: Any) -> None:
    p = sub.add_parser("keys", help="rotate, retire and move the deployment's keys "
                                    "(docs/KEYS.md)")
    ksub = p.add_subparsers(dest="keys_command", required=True)
    for name, text in [
        ("rotate", "add symbol-key version n+1 and make it current"),
        ("status", "per symbol-key version, how many holdings use it"),
        ("retire", "retire an old symbol-key version (refused while any holding uses it)"),
        ("rotate-log", "add a new access-log signing key (checkpoints signed by both until "
                       "--finish)"),
        ("import-to-hsm", "move the keyring's master secrets into the PKCS#11 token of "
                          "[keys] (symbols unchanged)"),
    ]:
        k = ksub.add_parser(name, help=text)
        k.add_argument("--config", required=True)
        if name == "retire":
            k.add_argument("version", type=int)
        if name == "rotate-log":
            k.add_argument("--finish", action="store_true",
                           help="end the transition: sign with the new key alone")
        k.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    config = load_config(Path(args.config))
    cmd = args.keys_command
    if cmd == "rotate":
        print(rotate(config))
    elif cmd == "status":
        print(status(config))
    elif cmd == "retire":
        print(retire(config, args.version))
    elif cmd == "rotate-log":
        print(rotate_log(config, args.finish))
    else:
        print(import_to_hsm(config))
    return 0
