"""symbolsvc.log.cosignature (C2SP tlog-cosignature, Ed25519 cosignature/v1), the witness's
decisions without HTTP (symbolsvc.witness.protocol) and its strict config; the same lines
checked by the independent verifier of tests/helpers/cosignatures.py."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers.cosignatures import CosignatureRejected, independent_cosigners

from symbolsvc.errors import ConfigError
from symbolsvc.log.checkpoint import Checkpoint, NoteError, sign_checkpoint, vkey_string
from symbolsvc.log.cosignature import (
    cosign,
    count_cosignatures,
    parse_witness_vkey,
    verify_cosignatures,
    with_cosignatures,
    witness_key_id,
    witness_vkey_string,
)
from symbolsvc.witness.config import load_witness_config
from symbolsvc.witness.protocol import Witness, parse_request
from symbolsvc.witness.state import WitnessState

ORIGIN = "log.test/unit"
LOG_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
W1 = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
W2 = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))
NOTE = sign_checkpoint(Checkpoint(ORIGIN, 7, bytes(range(32))), LOG_KEY)
BODY = NOTE[: NOTE.rfind("\n\n") + 1]


def test_cosignature_line_matches_the_spec_byte_for_byte() -> None:
    line = cosign(BODY, "w.test/1", W1, 1_700_000_000)
    name, b64 = line[2:-1].split(" ")
    assert name == "w.test/1"
    blob = base64.b64decode(b64)
    assert line.startswith("\u2014 w.test/1 ") and line.endswith("\n")
    assert blob[:4] == witness_key_id("w.test/1", W1.public_key())
    assert struct.unpack(">Q", blob[4:12]) == (1_700_000_000,)
    W1.public_key().verify(blob[12:], b"cosignature/v1\ntime 1700000000\n" + BODY.encode())
    vkey = witness_vkey_string("w.test/1", W1.public_key())
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == 0x04
    assert independent_cosigners(NOTE + line, [vkey]) == {"w.test/1": 1_700_000_000}


def test_quorum_counts_distinct_valid_witnesses() -> None:
    k1, k2 = (parse_witness_vkey(witness_vkey_string(n, k.public_key()))
              for n, k in (("w.test/1", W1), ("w.test/2", W2)))
    one = with_cosignatures(NOTE, [cosign(BODY, "w.test/1", W1, 10)])
    two = with_cosignatures(one, [cosign(BODY, "w.test/2", W2, 11),
                                  cosign(BODY, "w.test/1", W1, 12)])  # w1 again: not added
    assert two.count("w.test/1") == 1 and count_cosignatures(two, ORIGIN) == 2
    cp, found = verify_cosignatures(two, [k1, k2], 2)
    assert cp.size == 7 and sorted(c.name for c in found) == ["w.test/1", "w.test/2"]
    with pytest.raises(NoteError, match="1 valid witness"):
        verify_cosignatures(one, [k1, k2], 2)
    with pytest.raises(NoteError, match="exceeds"):
        verify_cosignatures(two, [k1], 2)
    # a line by a trusted witness over another checkpoint: rejected, not ignored
    other = sign_checkpoint(Checkpoint(ORIGIN, 8, bytes(32)), LOG_KEY)
    forged = NOTE + cosign(other[: other.rfind("\n\n") + 1], "w.test/1", W1, 10)
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignatures(forged, [k1], 1)
    with pytest.raises(CosignatureRejected):
        independent_cosigners(forged, [str(k1)])
    # dated far in the future
    future = NOTE + cosign(BODY, "w.test/1", W1, 10_000)
    with pytest.raises(NoteError, match="future"):
        verify_cosignatures(future, [k1], 1, now=1_000, max_skew=600)
    # the log's own 0x01 vkey is not a witness key
    with pytest.raises(NoteError, match="0x04"):
        parse_witness_vkey(vkey_string(ORIGIN, LOG_KEY.public_key()))


def _witness(tmp_path: Path) -> Witness:
    from symbolsvc.admin.witness import witness_init

    witness_init(tmp_path, "w.test/unit", [vkey_string(ORIGIN, LOG_KEY.public_key())],
                 "127.0.0.1:0")
    config = load_witness_config(tmp_path / "witness.toml")
    return Witness(config, WitnessState(config.state), clock=lambda: 1234.0)


def test_witness_decisions_without_http(tmp_path: Path) -> None:
    witness = _witness(tmp_path)
    first = witness.add_checkpoint(f"old 0\n\n{NOTE}".encode())
    assert first.status == 200 and ":" not in first.body
    vkey = (tmp_path / "witness.vkey").read_text()
    assert independent_cosigners(NOTE + first.body, [vkey]) == {"w.test/unit": 1234}
    again = witness.add_checkpoint(f"old 7\n\n{NOTE}".encode())  # same size, same root
    assert again.status == 200
    stale = witness.add_checkpoint(f"old 3\n\n{NOTE}".encode())
    assert (stale.status, stale.body, stale.content_type) == (409, "7\n", "text/x.tlog.size")
    for bad in (b"", b"old 1\nnot-base64!\n\n" + NOTE.encode(), b"old -1\n\n" + NOTE.encode(),
                b"\xff\xfe", b"old 0\n" + b"AAAA\n" * 64 + b"\n" + NOTE.encode()):
        assert witness.add_checkpoint(bad).status == 400, bad[:20]
    with pytest.raises(Exception, match="old <size>"):
        parse_request(b"old 007\n\n" + NOTE.encode())


def test_witness_config_is_strict(tmp_path: Path) -> None:
    _witness(tmp_path)
    path = tmp_path / "witness.toml"
    text = path.read_text()
    for broken, message in (('colour = "blue"\n' + text, "unknown key 'colour'"),
                            (text.replace('name = "w.test/unit"', 'name = "w.test/other"'),
                             "not the configured name"),
                            (text.replace('listen = "127.0.0.1:0"', 'listen = "nowhere"'),
                             "HOST:PORT"),
                            (text.replace("vkeys = [", 'vkeys = ["log.test/unit+00+AA", '),
                             "vkeys")):
        path.write_text(broken)
        with pytest.raises(ConfigError, match=message):
            load_witness_config(path)
    path.write_text(text)
    (tmp_path / "witness.key").chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_witness_config(path)
