"""Access records (symbolsvc.records): the canonical, versioned leaf encoding."""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any

import pytest
from helpers import VECTORS
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolsvc.records import LEAF_VERSION, AccessKind, AccessRecord, LeafError

DOC: dict[str, Any] = json.loads(
    (VECTORS / "access_record_v1.json").read_text(encoding="utf-8"))


def _record(v: dict[str, Any]) -> AccessRecord:
    return AccessRecord(
        AccessKind[v["kind"].upper()], v["time_us"], v["requester"], v["office_work"],
        v["info_item"], v["exchange_id"], tuple(v["providers"]), bytes.fromhex(v["pseudonym_hex"]))


def reference_encode(kind: int, time_us: int, strings: list[str], providers: list[str],
                     pseudonym: bytes) -> bytes:
    """Version 1 written again from docs/ACCESS_LOG.md, independent of records.py."""

    def s(x: str) -> bytes:
        b = x.encode("utf-8")
        return len(b).to_bytes(2, "big") + b

    out = bytes([1, kind]) + time_us.to_bytes(8, "big")
    out += b"".join(s(x) for x in strings)
    out += len(providers).to_bytes(2, "big") + b"".join(s(p) for p in providers)
    return out + pseudonym


# -- the fixed vectors ----------------------------------------------------------------


@pytest.mark.parametrize("vector", DOC["vectors"], ids=lambda v: v["name"])
def test_fixed_vectors(vector: dict[str, Any]) -> None:
    rec = _record(vector["record"])
    leaf = bytes.fromhex(vector["leaf_hex"])
    assert rec.encode() == leaf
    assert AccessRecord.decode(leaf) == rec
    v = vector["record"]
    assert reference_encode(
        rec.kind, v["time_us"], [v["requester"], v["office_work"], v["info_item"],
                                 v["exchange_id"]], v["providers"], rec.pseudonym) == leaf
    assert hashlib.sha256(b"\x00" + leaf).hexdigest() == vector["leaf_hash_hex"]


def test_layout_breakdown_matches_first_vector() -> None:
    joined = "".join(part.replace(" ", "") for _, part in DOC["layout_of_first_vector"])
    assert joined == DOC["vectors"][0]["leaf_hex"]
    assert LEAF_VERSION == 1
    assert (AccessKind.TRANSLATE, AccessKind.RESOLVE) == (1, 2)


# -- round trip -------------------------------------------------------------------------

texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
provider_sets = st.lists(texts, max_size=6, unique=True).map(lambda ps: tuple(sorted(ps)))
records = st.builds(
    AccessRecord,
    kind=st.just(AccessKind.RESOLVE),
    time_us=st.integers(0, 2**64 - 1),
    requester=texts, office_work=texts, info_item=texts, exchange_id=texts,
    providers=provider_sets,
    pseudonym=st.binary(min_size=32, max_size=32),
) | st.builds(
    AccessRecord,
    kind=st.just(AccessKind.TRANSLATE),
    time_us=st.integers(0, 2**64 - 1),
    requester=texts, office_work=texts, info_item=texts, exchange_id=texts,
    providers=texts.map(lambda p: (p,)),
    pseudonym=st.binary(min_size=32, max_size=32),
)


@settings(max_examples=100)
@given(records)
def test_round_trip(rec: AccessRecord) -> None:
    leaf = rec.encode()
    assert AccessRecord.decode(leaf) == rec
    assert AccessRecord.decode(leaf).encode() == leaf
    assert leaf == reference_encode(
        rec.kind, rec.time_us, [rec.requester, rec.office_work, rec.info_item, rec.exchange_id],
        list(rec.providers), rec.pseudonym)


@settings(max_examples=60)
@given(records, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_rejected(rec: AccessRecord, extra: bytes) -> None:
    with pytest.raises(LeafError):
        AccessRecord.decode(rec.encode() + extra)


@settings(max_examples=30)
@given(records)
def test_every_truncation_rejected(rec: AccessRecord) -> None:
    leaf = rec.encode()
    for n in range(len(leaf)):
        with pytest.raises(LeafError):
            AccessRecord.decode(leaf[:n])


# -- canonical rejections ----------------------------------------------------------------

BASE = _record(DOC["vectors"][1]["record"])  # resolve, two providers
BASE_LEAF = BASE.encode()


def _resolve_leaf(providers: list[str], *, kind: int = 2) -> bytes:
    return reference_encode(kind, 1, ["a", "b", "c", "d"], providers, b"\x11" * 32)


@pytest.mark.parametrize("version", [0, 3, 255])
def test_wrong_version_rejected(version: int) -> None:
    with pytest.raises(LeafError, match="version"):
        AccessRecord.decode(bytes([version]) + BASE_LEAF[1:])


@pytest.mark.parametrize("kind", [0, 6, 255])
def test_unknown_kind_rejected(kind: int) -> None:
    with pytest.raises(LeafError):
        AccessRecord.decode(BASE_LEAF[:1] + bytes([kind]) + BASE_LEAF[2:])


@pytest.mark.parametrize(
    "providers",
    [["city-minato", "city-chiyoda"], ["b", "a", "c"], ["a", "a"], ["a", "b", "b"]],
)
def test_unsorted_or_duplicate_providers_rejected(providers: list[str]) -> None:
    with pytest.raises(LeafError, match="sorted"):
        AccessRecord.decode(_resolve_leaf(providers))
    # and the encoder is not a way around it: what it writes must decode
    rec = AccessRecord(AccessKind.RESOLVE, 1, "a", "b", "c", "d", tuple(providers), b"\x11" * 32)
    with pytest.raises(LeafError):
        AccessRecord.decode(rec.encode())


def test_sorted_providers_accepted() -> None:
    rec = AccessRecord.decode(_resolve_leaf(["a", "b", "c"]))
    assert rec.providers == ("a", "b", "c")


@pytest.mark.parametrize("providers", [[], ["a", "b"]])
def test_translate_names_exactly_one_provider(providers: list[str]) -> None:
    with pytest.raises(LeafError, match="one provider"):
        AccessRecord.decode(_resolve_leaf(providers, kind=1))


def test_invalid_utf8_rejected() -> None:
    leaf = bytearray(BASE_LEAF)
    # the requester string starts at offset 10 (u16 length) + 2
    leaf[12] = 0xFF
    with pytest.raises(LeafError):
        AccessRecord.decode(bytes(leaf))
    # an overlong encoding of '/' is not canonical UTF-8 either
    overlong = bytes([1, 2]) + (1).to_bytes(8, "big") + b"\x00\x02\xc0\xaf" + BASE_LEAF[27:]
    with pytest.raises(LeafError):
        AccessRecord.decode(overlong)


def test_string_length_past_end_rejected() -> None:
    leaf = bytearray(BASE_LEAF)
    struct.pack_into(">H", leaf, 10, 0xFFFF)
    with pytest.raises(LeafError):
        AccessRecord.decode(bytes(leaf))


def test_empty_and_garbage_rejected() -> None:
    for leaf in (b"", b"\x01", b"\x01\x01", b"\x00" * 10, b"\xff" * 100):
        with pytest.raises(LeafError):
            AccessRecord.decode(leaf)
