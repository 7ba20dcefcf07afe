import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AccessKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCESS_KIND_UNSPECIFIED: _ClassVar[AccessKind]
    ACCESS_KIND_TRANSLATE: _ClassVar[AccessKind]
    ACCESS_KIND_RESOLVE: _ClassVar[AccessKind]
    ACCESS_KIND_ISSUE: _ClassVar[AccessKind]
    ACCESS_KIND_RELEASE: _ClassVar[AccessKind]
    ACCESS_KIND_POLICY: _ClassVar[AccessKind]

class AccessOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCESS_OUTCOME_UNSPECIFIED: _ClassVar[AccessOutcome]
    ACCESS_OUTCOME_ANSWERED: _ClassVar[AccessOutcome]
    ACCESS_OUTCOME_PROVIDER_NOT_HOLDING: _ClassVar[AccessOutcome]
ACCESS_KIND_UNSPECIFIED: AccessKind
ACCESS_KIND_TRANSLATE: AccessKind
ACCESS_KIND_RESOLVE: AccessKind
ACCESS_KIND_ISSUE: AccessKind
ACCESS_KIND_RELEASE: AccessKind
ACCESS_KIND_POLICY: AccessKind
ACCESS_OUTCOME_UNSPECIFIED: AccessOutcome
ACCESS_OUTCOME_ANSWERED: AccessOutcome
ACCESS_OUTCOME_PROVIDER_NOT_HOLDING: AccessOutcome

class AccessRecord(_message.Message):
    __slots__ = ("record_id", "time", "kind", "requester_agency", "provider_agencies", "office_work", "info_item", "exchange_id", "subject_symbol", "integrated", "leaf_index", "outcome", "policy_version", "rule", "purpose", "basis", "withheld_until", "inquiry_signed")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_AGENCY_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_AGENCIES_FIELD_NUMBER: _ClassVar[int]
    OFFICE_WORK_FIELD_NUMBER: _ClassVar[int]
    INFO_ITEM_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INTEGRATED_FIELD_NUMBER: _ClassVar[int]
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    BASIS_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_UNTIL_FIELD_NUMBER: _ClassVar[int]
    INQUIRY_SIGNED_FIELD_NUMBER: _ClassVar[int]
    record_id: int
    time: _timestamp_pb2.Timestamp
    kind: AccessKind
    requester_agency: str
    provider_agencies: _containers.RepeatedScalarFieldContainer[str]
    office_work: str
    info_item: str
    exchange_id: str
    subject_symbol: str
    integrated: bool
    leaf_index: int
    outcome: AccessOutcome
    policy_version: str
    rule: str
    purpose: str
    basis: str
    withheld_until: _timestamp_pb2.Timestamp
    inquiry_signed: bool
    def __init__(self, record_id: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[_Union[AccessKind, str]] = ..., requester_agency: _Optional[str] = ..., provider_agencies: _Optional[_Iterable[str]] = ..., office_work: _Optional[str] = ..., info_item: _Optional[str] = ..., exchange_id: _Optional[str] = ..., subject_symbol: _Optional[str] = ..., integrated: _Optional[bool] = ..., leaf_index: _Optional[int] = ..., outcome: _Optional[_Union[AccessOutcome, str]] = ..., policy_version: _Optional[str] = ..., rule: _Optional[str] = ..., purpose: _Optional[str] = ..., basis: _Optional[str] = ..., withheld_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., inquiry_signed: _Optional[bool] = ...) -> None: ...

class ListAccessRecordsRequest(_message.Message):
    __slots__ = ("symbol", "page_size", "page_token")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    page_size: int
    page_token: str
    def __init__(self, symbol: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAccessRecordsResponse(_message.Message):
    __slots__ = ("records", "next_page_token", "withheld_count", "next_release_time")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    WITHHELD_COUNT_FIELD_NUMBER: _ClassVar[int]
    NEXT_RELEASE_TIME_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[AccessRecord]
    next_page_token: str
    withheld_count: int
    next_release_time: _timestamp_pb2.Timestamp
    def __init__(self, records: _Optional[_Iterable[_Union[AccessRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., withheld_count: _Optional[int] = ..., next_release_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchAccessRecordsRequest(_message.Message):
    __slots__ = ("cursor",)
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    def __init__(self, cursor: _Optional[str] = ...) -> None: ...

class WatchAccessRecordsResponse(_message.Message):
    __slots__ = ("record", "cursor")
    RECORD_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    record: AccessRecord
    cursor: str
    def __init__(self, record: _Optional[_Union[AccessRecord, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...

class GetRecordProofRequest(_message.Message):
    __slots__ = ("symbol", "record_id", "min_cosignatures")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_COSIGNATURES_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    record_id: int
    min_cosignatures: int
    def __init__(self, symbol: _Optional[str] = ..., record_id: _Optional[int] = ..., min_cosignatures: _Optional[int] = ...) -> None: ...

class GetRecordProofResponse(_message.Message):
    __slots__ = ("leaf", "leaf_index", "checkpoint", "hashes")
    LEAF_FIELD_NUMBER: _ClassVar[int]
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    leaf: bytes
    leaf_index: int
    checkpoint: str
    hashes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, leaf: _Optional[bytes] = ..., leaf_index: _Optional[int] = ..., checkpoint: _Optional[str] = ..., hashes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ListHoldingsRequest(_message.Message):
    __slots__ = ("symbol",)
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    def __init__(self, symbol: _Optional[str] = ...) -> None: ...

class ListHoldingsResponse(_message.Message):
    __slots__ = ("holdings",)
    HOLDINGS_FIELD_NUMBER: _ClassVar[int]
    holdings: _containers.RepeatedCompositeFieldContainer[Holding]
    def __init__(self, holdings: _Optional[_Iterable[_Union[Holding, _Mapping]]] = ...) -> None: ...

class Holding(_message.Message):
    __slots__ = ("agency", "since", "released", "released_at")
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    RELEASED_AT_FIELD_NUMBER: _ClassVar[int]
    agency: str
    since: _timestamp_pb2.Timestamp
    released: bool
    released_at: _timestamp_pb2.Timestamp
    def __init__(self, agency: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., released: _Optional[bool] = ..., released_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class GetPolicyResponse(_message.Message):
    __slots__ = ("version", "canonical_table", "loaded_at", "record_id")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CANONICAL_TABLE_FIELD_NUMBER: _ClassVar[int]
    LOADED_AT_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    version: str
    canonical_table: str
    loaded_at: _timestamp_pb2.Timestamp
    record_id: int
    def __init__(self, version: _Optional[str] = ..., canonical_table: _Optional[str] = ..., loaded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., record_id: _Optional[int] = ...) -> None: ...
