import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from symbolsvc.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TranslateSymbolRequest(_message.Message):
    __slots__ = ("requester_agency", "symbol", "provider_agency", "office_work", "info_item", "exchange_id", "inquiry_signature", "issued_at")
    REQUESTER_AGENCY_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_AGENCY_FIELD_NUMBER: _ClassVar[int]
    OFFICE_WORK_FIELD_NUMBER: _ClassVar[int]
    INFO_ITEM_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    INQUIRY_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    requester_agency: str
    symbol: str
    provider_agency: str
    office_work: str
    info_item: str
    exchange_id: str
    inquiry_signature: bytes
    issued_at: _timestamp_pb2.Timestamp
    def __init__(self, requester_agency: _Optional[str] = ..., symbol: _Optional[str] = ..., provider_agency: _Optional[str] = ..., office_work: _Optional[str] = ..., info_item: _Optional[str] = ..., exchange_id: _Optional[str] = ..., inquiry_signature: _Optional[bytes] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TranslateSymbolResponse(_message.Message):
    __slots__ = ("provider_symbol", "record_id", "receipt", "sealed_provider_symbol")
    PROVIDER_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    SEALED_PROVIDER_SYMBOL_FIELD_NUMBER: _ClassVar[int]
    provider_symbol: str
    record_id: int
    receipt: str
    sealed_provider_symbol: bytes
    def __init__(self, provider_symbol: _Optional[str] = ..., record_id: _Optional[int] = ..., receipt: _Optional[str] = ..., sealed_provider_symbol: _Optional[bytes] = ...) -> None: ...

class BatchTranslateSymbolsRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[TranslateSymbolRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[TranslateSymbolRequest, _Mapping]]] = ...) -> None: ...

class BatchTranslateSymbolsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TranslateResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TranslateResult, _Mapping]]] = ...) -> None: ...

class TranslateResult(_message.Message):
    __slots__ = ("translated", "error")
    TRANSLATED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    translated: TranslateSymbolResponse
    error: _common_pb2.ItemError
    def __init__(self, translated: _Optional[_Union[TranslateSymbolResponse, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ItemError, _Mapping]] = ...) -> None: ...

class ResolveProvidersRequest(_message.Message):
    __slots__ = ("requester_agency", "symbol", "office_work", "info_item", "exchange_id", "inquiry_signature", "issued_at")
    REQUESTER_AGENCY_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    OFFICE_WORK_FIELD_NUMBER: _ClassVar[int]
    INFO_ITEM_FIELD_NUMBER: _ClassVar[int]
    EXCHANGE_ID_FIELD_NUMBER: _ClassVar[int]
    INQUIRY_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    requester_agency: str
    symbol: str
    office_work: str
    info_item: str
    exchange_id: str
    inquiry_signature: bytes
    issued_at: _timestamp_pb2.Timestamp
    def __init__(self, requester_agency: _Optional[str] = ..., symbol: _Optional[str] = ..., office_work: _Optional[str] = ..., info_item: _Optional[str] = ..., exchange_id: _Optional[str] = ..., inquiry_signature: _Optional[bytes] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ResolveProvidersResponse(_message.Message):
    __slots__ = ("provider_agencies", "record_id", "receipt")
    PROVIDER_AGENCIES_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    provider_agencies: _containers.RepeatedScalarFieldContainer[str]
    record_id: int
    receipt: str
    def __init__(self, provider_agencies: _Optional[_Iterable[str]] = ..., record_id: _Optional[int] = ..., receipt: _Optional[str] = ...) -> None: ...
