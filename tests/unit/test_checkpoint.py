"""C2SP tlog-checkpoint / signed-note: independent verification, vectors, strict parsing."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)
from helpers import VECTORS as TEST_VECTORS
from helpers.notes import independent_rejects, independent_verify

from symbolsvc.log.checkpoint import (
    MAX_SIGNATURES,
    Checkpoint,
    CheckpointError,
    NoteError,
    format_checkpoint_body,
    key_id,
    parse_checkpoint_body,
    parse_signer_key,
    parse_vkey,
    sign_checkpoint,
    sign_note,
    signer_key_string,
    verify_checkpoint,
    verify_note,
    vkey_string,
)

VECTORS = json.loads((TEST_VECTORS / "signed_note.json").read_text("utf-8"))
GO = VECTORS["go_sumdb_note"]
ORIGIN = "symbolsvc.local/log"
ROOT = hashlib.sha256(b"some root").digest()


# ------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def vkey(private_key: Ed25519PrivateKey) -> str:
    return vkey_string(ORIGIN, private_key.public_key())


@pytest.fixture(scope="module")
def signed(private_key: Ed25519PrivateKey) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, 1234567, ROOT), private_key)


# ----------------------------------------------------------- sign / verify round trip


def test_checkpoint_note_layout(signed: str, private_key: Ed25519PrivateKey) -> None:
    root_b64 = base64.b64encode(ROOT).decode()
    lines = signed.split("\n")
    assert lines[:4] == [ORIGIN, "1234567", root_b64, ""]
    assert lines[4].startswith(f"\u2014 {ORIGIN} ")
    assert lines[5:] == [""]
    blob = base64.b64decode(lines[4].split(" ")[2])
    assert len(blob) == 4 + 64
    assert blob[:4] == key_id(ORIGIN, private_key.public_key())


def test_independent_verifier_accepts(signed: str, vkey: str) -> None:
    body = independent_verify(signed, vkey)
    assert parse_checkpoint_body(body) == Checkpoint(ORIGIN, 1234567, ROOT)
    assert verify_note(signed, vkey) == body
    assert verify_note(signed.encode("utf-8"), parse_vkey(vkey)) == body
    assert verify_checkpoint(signed, vkey, origin=ORIGIN) == Checkpoint(ORIGIN, 1234567, ROOT)


def test_vkey_matches_independent_computation(private_key: Ed25519PrivateKey, vkey: str) -> None:
    name, key_hash, key_b64 = vkey.split("+", 2)
    typed = base64.b64decode(key_b64)
    assert name == ORIGIN
    assert typed[0] == 1
    assert len(key_hash) == 8
    assert key_hash == hashlib.sha256(name.encode() + b"\n" + typed).digest()[:4].hex()
    parsed = parse_vkey(vkey)
    assert parsed.name == ORIGIN
    assert parsed.key_id.hex() == key_hash
    assert str(parsed) == vkey


def test_any_body_change_is_rejected(signed: str, vkey: str) -> None:
    body_len = signed.index("\n\n") + 1
    for i in range(body_len):
        for mask in (0x01, 0x20):
            tampered = signed[:i] + chr(ord(signed[i]) ^ mask) + signed[i + 1 :]
            assert independent_rejects(tampered, vkey), (i, mask)
            with pytest.raises((NoteError, CheckpointError)):
                verify_checkpoint(tampered, vkey)


def test_any_signature_bit_change_is_rejected(signed: str, vkey: str) -> None:
    head, _, sig_b64 = signed[:-1].rpartition(" ")
    blob = base64.b64decode(sig_b64)
    for bit in range(len(blob) * 8):
        flipped = bytearray(blob)
        flipped[bit // 8] ^= 1 << (bit % 8)
        tampered = f"{head} {base64.b64encode(bytes(flipped)).decode()}\n"
        assert independent_rejects(tampered, vkey), bit
        with pytest.raises(NoteError):
            verify_note(tampered, vkey)


def test_signature_removed_or_truncated(signed: str, vkey: str) -> None:
    body = signed[: signed.index("\n\n") + 1]
    head, _, sig_b64 = signed[:-1].rpartition(" ")
    for bad in (body, body + "\n", f"{head} {sig_b64[:-4]}\n", signed[:-1], signed + "\n"):
        with pytest.raises(NoteError):
            verify_note(bad, vkey)


def test_wrong_key_is_rejected(signed: str) -> None:
    other = Ed25519PrivateKey.generate()
    for wrong in (
        vkey_string(ORIGIN, other.public_key()),
        vkey_string("other.example/log", other.public_key()),
    ):
        assert independent_rejects(signed, wrong)
        with pytest.raises(NoteError, match="no signature"):
            verify_note(signed, wrong)


def test_same_key_under_another_name_is_rejected(
    signed: str, private_key: Ed25519PrivateKey
) -> None:
    renamed = vkey_string("evil.example/log", private_key.public_key())
    assert independent_rejects(signed, renamed)
    with pytest.raises(NoteError):
        verify_note(signed, renamed)


def test_unknown_signatures_are_ignored_but_bad_known_ones_reject(
    signed: str, vkey: str, private_key: Ed25519PrivateKey
) -> None:
    body = signed[: signed.index("\n\n") + 1]
    witness = Ed25519PrivateKey.generate()
    cosigned = signed + sign_note(body, "witness.example/w1", witness).split("\n\n")[1]
    assert verify_note(cosigned, vkey) == body
    assert independent_verify(cosigned, vkey) == body
    # Same name and key ID as ours but a bogus signature: the whole note is rejected.
    forged_blob = key_id(ORIGIN, private_key.public_key()) + bytes(64)
    forged = cosigned + f"\u2014 {ORIGIN} {base64.b64encode(forged_blob).decode()}\n"
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(forged, vkey)


def test_signature_count_is_bounded(signed: str, vkey: str) -> None:
    line = "\u2014 someone.example/k " + base64.b64encode(bytes(68)).decode() + "\n"
    assert verify_note(signed + line * (MAX_SIGNATURES - 2), vkey)
    with pytest.raises(NoteError, match="more than"):
        verify_note(signed + line * MAX_SIGNATURES, vkey)


@pytest.mark.parametrize(
    "note",
    [
        "no blank line\n\u2014 a AAAAAAA=\n",
        "text\n\n- name AAAAAAAAAA==\n",  # hyphen, not em dash
        "text\n\n\u2014 name\n",
        "text\n\n\u2014 name not*base64\n",
        "text\n\n\u2014 name AAAA\n",  # shorter than key ID + 1 byte
        "text\n\n\u2014 na+me AAAAAAAAAA==\n",
        "te\x07xt\n\n\u2014 name AAAAAAAAAA==\n",
        "text\r\n\n\u2014 name AAAAAAAAAA==\n",
        "text\n\n\u2014 name AAAAAAAAAA==",
    ],
)
def test_malformed_notes(note: str, vkey: str) -> None:
    with pytest.raises(NoteError):
        verify_note(note, vkey)


def test_non_utf8_note(vkey: str) -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        verify_note(b"\xff\xfe\n\n\xe2\x80\x94 name AAAAAAAAAA==\n", vkey)


def test_sign_note_validates_input(private_key: Ed25519PrivateKey) -> None:
    for body, name in (
        ("no newline", "k"),
        ("ctl\x00\n", "k"),
        ("ok\n", "has space"),
        ("ok\n", "has+plus"),
        ("ok\n", ""),
        ("ok\n", "ideographic\u3000space"),
    ):
        with pytest.raises(NoteError):
            sign_note(body, name, private_key)


# ------------------------------------------------------------------ Go sumdb/note vector


def test_go_note_vector_verifies() -> None:
    assert verify_note(GO["note"], GO["vkey"]) == GO["text"]
    assert independent_verify(GO["note"], GO["vkey"]) == GO["text"]


def test_go_note_vector_is_reproduced_by_sign_note() -> None:
    name, key = parse_signer_key(GO["skey"])
    assert name == "PeterNeumann"
    assert signer_key_string(name, key) == GO["skey"]
    assert vkey_string(name, key.public_key()) == GO["vkey"]
    assert sign_note(GO["text"], name, key) == GO["note"]  # Ed25519 is deterministic


def test_go_double_signed_note() -> None:
    note = GO["double_signed_note"]
    assert verify_note(note, GO["vkey"]) == GO["text"]
    assert verify_note(note, GO["enoch_vkey"]) == GO["text"]
    assert independent_verify(note, GO["enoch_vkey"]) == GO["text"]


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # hash
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # uppercase
        "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # truncated
        "PeterNeumann+c74f20a3+AhpcMQegwxbzhKqiBfsVkmqq2QcUPDh/LDE4izWy10TW",  # scrambled
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW+x",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_vkeys(vkey: str) -> None:
    with pytest.raises(NoteError):
        parse_vkey(vkey)


def test_vkey_with_wrong_type_byte() -> None:
    raw = base64.b64decode(GO["vkey"].split("+", 2)[2])
    typed = bytes([2]) + raw[1:]
    kid = hashlib.sha256(b"PeterNeumann\n" + typed).digest()[:4].hex()
    with pytest.raises(NoteError, match="Ed25519"):
        parse_vkey(f"PeterNeumann+{kid}+{base64.b64encode(typed).decode()}")


# ---------------------------------------------------------------- C2SP spec examples
# The specs do not publish their example public keys: check structure only.


def test_c2sp_signed_note_example_structure() -> None:
    example = VECTORS["c2sp_signed_note_example"]
    text, _, sigs = example["note"].rpartition("\n\n")
    assert text + "\n" == example["text"]  # the text keeps its inner blank line
    assert sigs.startswith(f"\u2014 {example['key_name']} ")
    # A key of the same name but unknown ID: parsed fine, then refused as unsigned.
    stranger = vkey_string(example["key_name"], Ed25519PrivateKey.generate().public_key())
    with pytest.raises(NoteError, match="no signature"):
        verify_note(example["note"], stranger)


def test_c2sp_tlog_checkpoint_example_body() -> None:
    example = VECTORS["c2sp_tlog_checkpoint_example"]
    body = example["note"].rpartition("\n\n")[0] + "\n"
    checkpoint = parse_checkpoint_body(body)
    assert checkpoint == Checkpoint(
        example["origin"], example["size"], base64.b64decode(example["root_hash_b64"])
    )
    assert format_checkpoint_body(checkpoint) == body
    stranger = vkey_string(example["origin"], Ed25519PrivateKey.generate().public_key())
    with pytest.raises(NoteError, match="no signature"):
        verify_checkpoint(example["note"], stranger)


# ------------------------------------------------------------ checkpoint body parsing


def test_checkpoint_round_trip_with_extensions(private_key: Ed25519PrivateKey) -> None:
    checkpoint = Checkpoint(ORIGIN, 0, hashlib.sha256(b"").digest(), ("ext one", "x"))
    body = checkpoint.body()
    assert body.endswith("\next one\nx\n")
    assert parse_checkpoint_body(body) == checkpoint
    note = sign_checkpoint(checkpoint, private_key)
    assert verify_checkpoint(note, vkey_string(ORIGIN, private_key.public_key())) == checkpoint


def test_checkpoint_origin_must_match_when_given(signed: str, vkey: str) -> None:
    with pytest.raises(CheckpointError, match="not"):
        verify_checkpoint(signed, vkey, origin="other.example/log")


def _body(origin: str = ORIGIN, size: str = "12", root: str | None = None, *ext: str) -> str:
    root = base64.b64encode(ROOT).decode() if root is None else root
    return "".join(line + "\n" for line in (origin, size, root, *ext))


ROOT_B64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    "body",
    [
        _body()[:-1],  # no final newline
        f"{ORIGIN}\n12\n",  # two lines
        _body(origin=""),
        _body(size="012"),
        _body(size="+12"),
        _body(size="-1"),
        _body(size=" 12"),
        _body(size="1_2"),
        _body(size="\u0661\u0662"),  # Arabic-Indic digits
        _body(size=str(2**64)),
        _body(size=""),
        _body(root="not base64!"),
        _body(root=base64.b64encode(ROOT[:31]).decode()),
        _body(root=ROOT_B64.rstrip("=")),
        _body(root=ROOT_B64[:-2] + "J="),  # non-canonical trailing bits
        _body(ORIGIN, "12", None, ""),  # empty extension line
        _body(origin="sym\rbolsvc"),
        _body() + "\n",
        "\n" + _body(),
    ],
)
def test_malformed_checkpoint_bodies(body: str) -> None:
    with pytest.raises(CheckpointError):
        parse_checkpoint_body(body)


def test_checkpoint_boundaries() -> None:
    assert parse_checkpoint_body(_body(size="0")).size == 0
    assert parse_checkpoint_body(_body(size=str(2**64 - 1))).size == 2**64 - 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"origin": "", "size": 1, "root_hash": ROOT},
        {"origin": "a\nb", "size": 1, "root_hash": ROOT},
        {"origin": ORIGIN, "size": -1, "root_hash": ROOT},
        {"origin": ORIGIN, "size": True, "root_hash": ROOT},
        {"origin": ORIGIN, "size": 1, "root_hash": ROOT[:31]},
        {"origin": ORIGIN, "size": 1, "root_hash": ROOT, "extensions": ("",)},
        {"origin": ORIGIN, "size": 1, "root_hash": ROOT, "extensions": ["x"]},
    ],
)
def test_checkpoint_construction_is_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint(**kwargs)
