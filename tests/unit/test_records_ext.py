"""Version-2 leaves: version 1 followed by extensions (u8 tag, u32 length, value), tags
strictly increasing. Checked against an encoder written here from the documented layout."""

from __future__ import annotations

import struct

import pytest

from symbolsvc.records import AccessKind, AccessRecord, Ext, LeafError

BASE = AccessRecord(AccessKind.RESOLVE, 1_767_225_600_123_456, "pension-service",
                    "survivor-pension", "resident-tax-income", "ex-1",
                    ("city-chiyoda", "city-minato"), bytes(range(32)))


def _independent(rec: AccessRecord, ext: list[tuple[int, bytes]]) -> bytes:
    """The leaf as docs/ACCESS_LOG.md describes it, without the production encoder."""
    def s(x: str) -> bytes:
        b = x.encode()
        return struct.pack(">H", len(b)) + b

    out = struct.pack(">BBQ", 2 if ext else 1, rec.kind, rec.time_us)
    out += s(rec.requester) + s(rec.office_work) + s(rec.info_item) + s(rec.exchange_id)
    out += struct.pack(">H", len(rec.providers)) + b"".join(s(p) for p in rec.providers)
    out += rec.pseudonym
    for tag, value in ext:
        out += struct.pack(">BI", tag, len(value)) + value
    return out


def test_no_extension_is_version_1() -> None:
    assert BASE.encode()[0] == 1
    assert BASE.encode() == _independent(BASE, [])


def test_extensions_round_trip_in_tag_order() -> None:
    rec = BASE.with_ext(RULE=b"r-1", POLICY_VERSION=b"\xab" * 32, OUTCOME=b"\x01")
    leaf = rec.encode()
    assert leaf == _independent(BASE, [(1, b"\x01"), (2, b"\xab" * 32), (3, b"r-1")])
    back = AccessRecord.decode(leaf)
    assert back == rec and back.get(Ext.RULE) == b"r-1" and back.get(Ext.WITHHELD_UNTIL) is None
    assert back.encode() == leaf


@pytest.mark.parametrize("ext", [
    [(3, b"a"), (2, b"b")],          # out of order
    [(3, b"a"), (3, b"a")],          # duplicate
    [(200, b"x")],                   # unknown tag
])
def test_non_canonical_extensions_rejected(ext: list[tuple[int, bytes]]) -> None:
    with pytest.raises(LeafError):
        AccessRecord.decode(_independent(BASE, ext))


def test_version_2_without_extensions_rejected() -> None:
    leaf = bytes([2]) + BASE.encode()[1:]
    with pytest.raises(LeafError, match="at least one extension"):
        AccessRecord.decode(leaf)


def test_truncated_extension_rejected() -> None:
    leaf = BASE.with_ext(RULE=b"rule-id").encode()
    for n in range(len(BASE.encode()) + 1, len(leaf)):
        with pytest.raises(LeafError):
            AccessRecord.decode(leaf[:n])


def test_version_1_trailing_bytes_still_rejected() -> None:
    with pytest.raises(LeafError, match="trailing"):
        AccessRecord.decode(BASE.encode() + b"\x03")
