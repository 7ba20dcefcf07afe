"""Log-key rotation (docs/KEYS.md, "The log key"): `symbolsvc keys rotate-log`, SIGHUP, the
next checkpoint signed by the old and the new key, `pki/log.vkey` listing both (old first),
`rotate-log --finish`, and `audit verify` passing across it, over gRPC with a state file and
on a copy of the database. The key chain's rules are checked on hand-made notes: a new key
is accepted only through a checkpoint signed by both, and after that never the old alone.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from conftest import StartServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers import Clients, NumberSource, ServerProcess, wait_until
from helpers.backends import per_backend
from symbolsvc_client import Deployment
from test_key_rotation import RULE, keys_cli

from symbolsvc.cli import main as symbolsvc_main
from symbolsvc.log.checkpoint import (
    Checkpoint,
    NoteError,
    sign_checkpoint,
    vkey_string,
)
from symbolsvc.verify.keychain import KeyChain, parse_vkeys

ORIGIN = "example.test/log"


def signatures(note: str) -> int:
    return sum(1 for line in note.splitlines() if line.startswith("\u2014 "))


def grow(c: Clients, symbol: str, tag: str) -> None:
    c.broker().translate(RULE[0], symbol, RULE[1], RULE[2], RULE[3], tag)


def verify_remote(dep: Path, server: ServerProcess, state: Path) -> None:
    rc = symbolsvc_main(["audit", "verify", "--deployment", str(dep), "--target",
                         server.address, "--state", str(state)])
    assert rc == 0


def test_log_key_rotation_verifies_across(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource,
        tmp_path: Path) -> None:
    server = start_server(fresh_deployment)
    c = Clients(Deployment(fresh_deployment), server.address)
    n = numbers.one()
    symbol = c.agency(RULE[0]).issue(n).symbol
    c.agency(RULE[1]).issue(n)
    state = tmp_path / "audit-state.json"
    grow(c, symbol, "before")
    wait_until(lambda: c.auditor().checkpoint().split("\n")[1] != "0", 10, "a first leaf")
    verify_remote(fresh_deployment, server, state)

    vkey_file = fresh_deployment / "pki" / "log.vkey"
    old_vkey = vkey_file.read_text()
    out = keys_cli(server.config, "rotate-log")
    assert out.returncode == 0, out.stderr
    lines = vkey_file.read_text().splitlines()
    assert len(lines) == 2 and lines[0] + "\n" == old_vkey  # old first, then the new one
    refused = keys_cli(server.config, "rotate-log", "--finish")
    assert refused.returncode == 2 and "not signed by the new log key" in refused.stderr

    mark = server.log_size()
    server.signal(signal.SIGHUP)
    server.wait_for_log("signed by the previous and the new log key", since=mark)
    grow(c, symbol, "transition")
    wait_until(lambda: signatures(c.auditor().checkpoint()) == 2, 10,
               "a checkpoint signed by both keys")
    verify_remote(fresh_deployment, server, state)

    finished = keys_cli(server.config, "rotate-log", "--finish")
    assert finished.returncode == 0, finished.stderr
    mark = server.log_size()
    server.signal(signal.SIGHUP)
    server.wait_for_log(r"keyring reloaded", since=mark)
    grow(c, symbol, "after")
    wait_until(lambda: signatures(c.auditor().checkpoint()) == 1, 10,
               "a checkpoint signed by the new key alone")
    chain = KeyChain(parse_vkeys(vkey_file.read_text()))
    note = c.auditor().checkpoint()
    with pytest.raises(NoteError):
        KeyChain(chain.keys[:1]).verify(note, None)  # the old key alone no longer signs
    verify_remote(fresh_deployment, server, state)
    # A fresh auditor (no state) over gRPC sees only the latest checkpoint, signed by the new
    # key alone: it cannot have seen the hand-over, so it is refused, naming why.
    rc = symbolsvc_main(["audit", "verify", "--deployment", str(fresh_deployment), "--target",
                         server.address])
    assert rc == 1
    # Every checkpoint, from a copy of the database file (where the registry is a file).
    copy = per_backend(fresh_deployment).file_copy(fresh_deployment, tmp_path / "copy.db")
    if copy is not None:
        assert symbolsvc_main(["audit", "verify", "--db", str(copy), "--vkey",
                               str(vkey_file)]) == 0
        (tmp_path / "new-only.vkey").write_text(lines[1] + "\n")
        assert symbolsvc_main(["audit", "verify", "--db", str(copy), "--vkey",
                               str(tmp_path / "new-only.vkey")]) == 1
    c.close()


# -- the chain's rules, on hand-made checkpoints ------------------------------------------


def _note(size: int, *keys: Ed25519PrivateKey) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, size, bytes(32)), list(keys))


def _chain(*keys: Ed25519PrivateKey) -> KeyChain:
    text = "".join(vkey_string(ORIGIN, k.public_key()) + "\n" for k in keys)
    return KeyChain(parse_vkeys(text))


def test_a_new_key_is_accepted_only_through_a_checkpoint_signed_by_both() -> None:
    old, new, third = (Ed25519PrivateKey.generate() for _ in range(3))
    chain = _chain(old, new, third)
    assert chain.verify(_note(1, old), ORIGIN).size == 1
    with pytest.raises(NoteError, match="accepted only through a checkpoint signed by both"):
        chain.verify(_note(2, new), ORIGIN)
    chain.verify(_note(2, old, new), ORIGIN)
    assert chain.position == 1
    chain.verify(_note(3, new), ORIGIN)
    with pytest.raises(NoteError):  # the old key alone is no longer trusted
        chain.verify(_note(4, old), ORIGIN)
    with pytest.raises(NoteError, match="accepted only through"):  # no skipping a key
        chain.verify(_note(4, third), ORIGIN)


def test_vkey_file_format() -> None:
    a, b = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    text = vkey_string(ORIGIN, a.public_key()) + "\n" + vkey_string(ORIGIN, b.public_key())
    assert [str(k) for k in parse_vkeys(text + "\n\n")] == text.split("\n")
    with pytest.raises(NoteError, match="same name"):
        parse_vkeys(text + "\n" + vkey_string("other.test/log", a.public_key()))
    with pytest.raises(NoteError, match="twice"):
        parse_vkeys(text + "\n" + text)
    with pytest.raises(NoteError, match="no verifier key"):
        parse_vkeys("\n")
