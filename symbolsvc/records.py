"""Access records (情報提供等記録) and their canonical leaf encoding.

A leaf is the exact byte string hashed into the access log's Merkle tree, so
its encoding is fixed, versioned and canonical (one record, one encoding);
docs/ACCESS_LOG.md specifies it for outside verifiers. Version 1, big-endian::

    u8      version              = 1
    u8      kind                 1 = translate, 2 = resolve, 3 = issue, 4 = release,
                                 5 = policy (docs/DISCLOSURE.md)
    u64     time                 microseconds since the Unix epoch (UTC)
    str     requester_agency
    str     office_work
    str     info_item
    str     exchange_id
    u16     provider count, then that many str (sorted, distinct)
    32 B    subject pseudonym    HMAC-SHA256(K_log, subject_id): no agency's symbol

where ``str`` is u16 length || UTF-8 bytes. A leaf never contains an
individual number or any agency's symbol.

Version 2 is version 1 followed by one or more *extensions*, each
``u8 tag || u32 length || value``, tags strictly increasing (so one record
still has exactly one encoding). A record with no extension is written as
version 1, so every version-1 leaf ever written keeps its bytes and hash; a
version-2 leaf with no extension is not canonical and is rejected. The tags
are :class:`Ext`; a decoder rejects a tag it does not know (a verifier must
never pass a field it cannot check).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from enum import IntEnum

LEAF_VERSION = 1  # the base layout; LEAF_VERSION_EXT adds extensions
LEAF_VERSION_EXT = 2
PSEUDONYM_LEN = 32
_HEAD = struct.Struct(">BBQ")
_U16 = struct.Struct(">H")
_EXT_HEAD = struct.Struct(">BI")


class AccessKind(IntEnum):
    TRANSLATE = 1
    RESOLVE = 2
    ISSUE = 3  # an agency linked the subject (requester = the agency; nothing else)
    RELEASE = 4  # an agency released its holding (requester = the agency)
    POLICY = 5  # a permission table was published (no subject: an all-zero pseudonym)


class Outcome(IntEnum):
    """Values of :attr:`Ext.OUTCOME` (the proto's AccessOutcome numbers)."""

    ANSWERED = 1
    PROVIDER_NOT_HOLDING = 2


class Ext(IntEnum):
    """Extension tags of a version-2 leaf (docs/ACCESS_LOG.md lists each value's format)."""

    OUTCOME = 1  # u8: why an exchange was refused after it was recorded (absent: answered)
    POLICY_VERSION = 2  # 32 B: SHA-256 of the canonical permission table that allowed it
    RULE = 3  # UTF-8: the id of the [[allow]] rule that allowed it
    WITHHELD_UNTIL = 4  # u64: microseconds since the epoch before which it is not disclosed
    INQUIRY_SIGNATURE = 5  # bytes: the requester's signature over its inquiry
    INQUIRY_ISSUED_AT = 6  # u64: microseconds since the epoch the inquiry was signed
    POLICY_TABLE = 7  # UTF-8: the canonical permission table itself
    # 32 B: SHA-256 digest of the requester's symbol in its signed inquiry (symbolsvc.inquiry)
    INQUIRY_SYMBOL_DIGEST = 14


def ext_items(**values: bytes) -> tuple[tuple[Ext, bytes], ...]:
    """Extensions given by ``Ext`` member name, as :attr:`AccessRecord.ext` holds them
    (tags increasing)."""
    return tuple(sorted((Ext[name], value) for name, value in values.items()))


class LeafError(ValueError):
    """A leaf is not a canonical access record (version 1, or 2 with extensions)."""


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
    # (tag, value) pairs, tags strictly increasing; empty for a version-1 leaf
    ext: tuple[tuple[Ext, bytes], ...] = ()

    def get(self, tag: Ext) -> bytes | None:
        """The value of extension ``tag``, or None when the record has none."""
        for t, value in self.ext:
            if t == tag:
                return value
        return None

    @property
    def policy_version(self) -> bytes | None:
        return self.get(Ext.POLICY_VERSION)

    @property
    def rule(self) -> str | None:
        value = self.get(Ext.RULE)
        return None if value is None else value.decode("utf-8", "replace")

    @property
    def policy_table(self) -> str | None:
        """The canonical permission table a POLICY record publishes."""
        value = self.get(Ext.POLICY_TABLE)
        return None if value is None else value.decode("utf-8", "replace")

    @property
    def withheld_until(self) -> int | None:
        """µs since the epoch before which the record is not disclosed (None: never held)."""
        value = self.get(Ext.WITHHELD_UNTIL)
        return None if value is None or len(value) != 8 else int.from_bytes(value, "big")

    @property
    def outcome(self) -> Outcome:
        """How the exchange ended (:attr:`Ext.OUTCOME`; absent: answered)."""
        value = self.get(Ext.OUTCOME)
        if value is None:
            return Outcome.ANSWERED
        try:
            if len(value) != 1:
                raise ValueError(len(value))
            return Outcome(value[0])
        except ValueError:
            raise LeafError("the record's outcome is not a known value") from None

    def with_ext(self, **values: bytes) -> AccessRecord:
        """A copy with the named extensions (``Ext`` member names) set."""
        return replace(self, ext=ext_items(**({t.name: v for t, v in self.ext} | values)))

    def encode(self) -> bytes:
        """The canonical leaf bytes."""
        version = LEAF_VERSION_EXT if self.ext else LEAF_VERSION
        out = [_HEAD.pack(version, self.kind, self.time_us)]
        for s in (self.requester, self.office_work, self.info_item, self.exchange_id):
            _put_str(out, s)
        out.append(_U16.pack(len(self.providers)))
        for p in self.providers:
            _put_str(out, p)
        out.append(self.pseudonym)
        for tag, value in self.ext:
            out.append(_EXT_HEAD.pack(tag, len(value)))
            out.append(value)
        return b"".join(out)

    @classmethod
    def decode(cls, leaf: bytes) -> AccessRecord:
        """Parse a leaf, rejecting anything that is not the canonical encoding."""
        try:
            version, kind, time_us = _HEAD.unpack_from(leaf, 0)
            if version not in (LEAF_VERSION, LEAF_VERSION_EXT):
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
            pos += PSEUDONYM_LEN
            if len(pseudonym) != PSEUDONYM_LEN:
                raise LeafError("leaf has a short pseudonym")
            ext = _get_ext(leaf, pos) if version == LEAF_VERSION_EXT else ()
            if version == LEAF_VERSION and pos != len(leaf):
                raise LeafError("leaf has trailing bytes")
            record = cls(AccessKind(kind), time_us, requester, office_work, info_item,
                         exchange_id, tuple(providers), pseudonym, ext)
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


def _get_ext(buf: bytes, pos: int) -> tuple[tuple[Ext, bytes], ...]:
    out: list[tuple[Ext, bytes]] = []
    while pos < len(buf):
        tag, n = _EXT_HEAD.unpack_from(buf, pos)
        pos += _EXT_HEAD.size
        if pos + n > len(buf):
            raise LeafError("leaf extension runs past the end")
        if out and tag <= out[-1][0]:
            raise LeafError("leaf extensions are not in strictly increasing tag order")
        try:
            out.append((Ext(tag), bytes(buf[pos : pos + n])))
        except ValueError:
            raise LeafError(f"unknown leaf extension {tag}") from None
        pos += n
    if not out:
        raise LeafError("a version-2 leaf carries at least one extension")
    return tuple(out)


def _get_str(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = _U16.unpack_from(buf, pos)
    pos += 2
    if pos + n > len(buf):
        raise LeafError("leaf string runs past the end")
    return buf[pos : pos + n].decode("utf-8"), pos + n
