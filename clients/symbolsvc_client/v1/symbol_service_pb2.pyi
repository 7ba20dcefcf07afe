from symbolsvc_client.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IssueSymbolRequest(_message.Message):
    __slots__ = ("individual_number",)
    INDIVIDUAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    individual_number: str
    def __init__(self, individual_number: _Optional[str] = ...) -> None: ...

class IssueSymbolResponse(_message.Message):
    __slots__ = ("symbol", "newly_registered", "key_version")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    NEWLY_REGISTERED_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    newly_registered: bool
    key_version: int
    def __init__(self, symbol: _Optional[str] = ..., newly_registered: _Optional[bool] = ..., key_version: _Optional[int] = ...) -> None: ...

class BatchIssueSymbolsRequest(_message.Message):
    __slots__ = ("individual_numbers",)
    INDIVIDUAL_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    individual_numbers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, individual_numbers: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchIssueSymbolsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[IssueResult]
    def __init__(self, results: _Optional[_Iterable[_Union[IssueResult, _Mapping]]] = ...) -> None: ...

class IssueResult(_message.Message):
    __slots__ = ("issued", "error")
    ISSUED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    issued: IssueSymbolResponse
    error: _common_pb2.ItemError
    def __init__(self, issued: _Optional[_Union[IssueSymbolResponse, _Mapping]] = ..., error: _Optional[_Union[_common_pb2.ItemError, _Mapping]] = ...) -> None: ...

class StreamIssueSymbolsRequest(_message.Message):
    __slots__ = ("chunk_id", "individual_numbers")
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    INDIVIDUAL_NUMBERS_FIELD_NUMBER: _ClassVar[int]
    chunk_id: int
    individual_numbers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, chunk_id: _Optional[int] = ..., individual_numbers: _Optional[_Iterable[str]] = ...) -> None: ...

class StreamIssueSymbolsResponse(_message.Message):
    __slots__ = ("chunk_id", "results")
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    chunk_id: int
    results: _containers.RepeatedCompositeFieldContainer[IssueResult]
    def __init__(self, chunk_id: _Optional[int] = ..., results: _Optional[_Iterable[_Union[IssueResult, _Mapping]]] = ...) -> None: ...

class ReleaseSymbolRequest(_message.Message):
    __slots__ = ("symbol",)
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    def __init__(self, symbol: _Optional[str] = ...) -> None: ...

class ReleaseSymbolResponse(_message.Message):
    __slots__ = ("was_held",)
    WAS_HELD_FIELD_NUMBER: _ClassVar[int]
    was_held: bool
    def __init__(self, was_held: _Optional[bool] = ...) -> None: ...

class UpgradeSymbolsRequest(_message.Message):
    __slots__ = ("symbols",)
    SYMBOLS_FIELD_NUMBER: _ClassVar[int]
    symbols: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, symbols: _Optional[_Iterable[str]] = ...) -> None: ...

class UpgradeSymbolsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[UpgradeResult]
    def __init__(self, results: _Optional[_Iterable[_Union[UpgradeResult, _Mapping]]] = ...) -> None: ...

class UpgradeResult(_message.Message):
    __slots__ = ("symbol", "error")
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    symbol: str
    error: _common_pb2.ItemError
    def __init__(self, symbol: _Optional[str] = ..., error: _Optional[_Union[_common_pb2.ItemError, _Mapping]] = ...) -> None: ...
