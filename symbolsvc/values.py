"""The core's request and result values (symbolsvc.core): what the gRPC layer hands the
core and gets back, with no behaviour of their own."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Issued:
    symbol: str
    newly_registered: bool
    key_version: int


@dataclass(frozen=True, slots=True)
class TranslateRequest:
    requester_agency: str
    symbol: str
    provider_agency: str
    office_work: str
    info_item: str
    exchange_id: str
    inquiry_signature: bytes = b""  # the requester's signature (symbolsvc.inquiry), if any
    issued_at_us: int = 0


@dataclass(frozen=True, slots=True)
class Translated:
    provider_symbol: str  # empty under blind translation
    record_id: int
    receipt: str = ""  # the signed receipt for the record (log/receipts.py), when signing
    sealed: bytes = b""  # the provider's symbol sealed to its HPKE key (blind translation)


@dataclass(frozen=True, slots=True)
class ResolveRequest:
    requester_agency: str
    symbol: str
    office_work: str
    info_item: str
    exchange_id: str
    inquiry_signature: bytes = b""
    issued_at_us: int = 0


@dataclass(frozen=True, slots=True)
class Resolved:
    provider_agencies: tuple[str, ...]
    record_id: int
    receipt: str = ""
