"""Access records (情報提供等記録) and their canonical leaf encoding.

A leaf is the exact byte string hashed into the access log's Merkle tree, so
its encoding is fixed, versioned and canonical (one record, one encoding);
docs/ACCESS_LOG.md specifies it for outside verifiers. Version 1, big-endian::

    u8      version              = 1
    u8      kind                 1 = translate, 2 = resolve
    u64     time                 microseconds since the Unix epoch (UTC)
    str     requester_agency
    str     office_work
    str     info_item
    str     exchange_id
    u16     provider count, then that many str (sorted, distinct)
    32 B    subject pseudonym    HMAC-SHA256(K_log, subject_id): no agency's symbol

where ``str`` is u16 length || UTF-8 bytes. A leaf never contains an
individual number or any agency's symbol.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

LEAF_VERSION = 1
PSEUDONYM_LEN = 32
_HEAD = struct.Struct(">BBQ")
_U16 = struct.Struct(">H")


class AccessKind(IntEnum):
    TRANSLATE = 1
    RESOLVE = 2


class LeafError(ValueError):
    """A leaf is not a canonical version-1 access record."""


@dataclass(frozen=True, slots=True)
class AccessRecord:
    kind: AccessKind
    time_us: int
    requester: str
    office_work: str
    info_item: str
    exchange_id: str
    providers: tuple[str, ...]
    pseudonym: bytes

    def encode(self) -> bytes:
        """The canonical leaf bytes."""
        out = [_HEAD.pack(LEAF_VERSION, self.kind, self.time_us)]
        for s in (self.requester, self.office_work, self.info_item, self.exchange_id):
            _put_str(out, s)
        out.append(_U16.pack(len(self.providers)))
        for p in self.providers:
            _put_str(out, p)
        out.append(self.pseudonym)
        return b"".join(out)

    @classmethod
    def decode(cls, leaf: bytes) -> AccessRecord:
        """Parse a leaf, rejecting anything that is not the canonical encoding."""
        try:
            version, kind, time_us = _HEAD.unpack_from(leaf, 0)
            if version != LEAF_VERSION:
                raise LeafError(f"unknown leaf version {version}")
            pos = _HEAD.size
            requester, pos = _get_str(leaf, pos)
            office_work, pos = _get_str(leaf, pos)
            info_item, pos = _get_str(leaf, pos)
            exchange_id, pos = _get_str(leaf, pos)
            (count,) = _U16.unpack_from(leaf, pos)
            pos += 2
            providers = []
            for _ in range(count):
                s, pos = _get_str(leaf, pos)
                providers.append(s)
            pseudonym = leaf[pos : pos + PSEUDONYM_LEN]
            if len(pseudonym) != PSEUDONYM_LEN or pos + PSEUDONYM_LEN != len(leaf):
                raise LeafError("leaf has a short pseudonym or trailing bytes")
            record = cls(AccessKind(kind), time_us, requester, office_work, info_item,
                         exchange_id, tuple(providers), pseudonym)
        except (struct.error, UnicodeDecodeError, ValueError) as exc:
            if isinstance(exc, LeafError):
                raise
            raise LeafError(f"malformed leaf: {exc}") from None
        if list(record.providers) != sorted(set(record.providers)):
            raise LeafError("leaf providers are not sorted and distinct")
        if record.kind is AccessKind.TRANSLATE and len(record.providers) != 1:
            raise LeafError("a translate record names exactly one provider")
        return record


def _put_str(out: list[bytes], s: str) -> None:
    b = s.encode("utf-8")
    out.append(_U16.pack(len(b)))
    out.append(b)


def _get_str(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = _U16.unpack_from(buf, pos)
    pos += 2
    if pos + n > len(buf):
        raise LeafError("leaf string runs past the end")
    return buf[pos : pos + n].decode("utf-8"), pos + n
