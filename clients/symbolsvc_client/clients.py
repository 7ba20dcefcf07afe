"""One client class per role (CONTRACT §3), over a channel from :mod:`.channel`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from .channel import DEFAULT_STREAM_TIMEOUT, DEFAULT_TIMEOUT
from .errors import CallError
from .signed import SignedInquiry
from .v1 import audit_service_pb2 as audit_pb
from .v1 import audit_service_pb2_grpc as audit_grpc
from .v1 import broker_service_pb2 as broker_pb
from .v1 import broker_service_pb2_grpc as broker_grpc
from .v1 import disclosure_service_pb2 as disclosure_pb
from .v1 import disclosure_service_pb2_grpc as disclosure_grpc
from .v1 import symbol_service_pb2 as symbol_pb
from .v1 import symbol_service_pb2_grpc as symbol_grpc

__all__ = ["AgencyClient", "AuditorClient", "BrokerClient", "CallError", "PortalClient"]


def _call(fn: Any, request: Any, timeout: float) -> Any:
    try:
        return fn(request, timeout=timeout)
    except grpc.RpcError as err:
        raise CallError.from_rpc_error(err) from None


class _Client:
    def __init__(self, channel: grpc.Channel, timeout: float = DEFAULT_TIMEOUT,
                 stream_timeout: float = DEFAULT_STREAM_TIMEOUT) -> None:
        self.channel = channel
        self.timeout = timeout  # the deadline of every unary call, in seconds
        self.stream_timeout = stream_timeout  # the deadline of every stream
        self._health = health_pb2_grpc.HealthStub(channel)

    def health(self, service: str = "") -> int:
        """The serving status (health_pb2.HealthCheckResponse.ServingStatus)."""
        check = self._health.Check  # type: ignore[attr-defined]  # the stub's HealthStub
        # declares no methods
        reply = _call(check, health_pb2.HealthCheckRequest(service=service), self.timeout)
        status: int = reply.status
        return status

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AgencyClient(_Client):
    """An agency: issues and releases its own symbols."""

    def __init__(self, channel: grpc.Channel, timeout: float = DEFAULT_TIMEOUT,
                 stream_timeout: float = DEFAULT_STREAM_TIMEOUT) -> None:
        super().__init__(channel, timeout, stream_timeout)
        self.stub = symbol_grpc.SymbolServiceStub(channel)

    def issue(self, individual_number: str) -> symbol_pb.IssueSymbolResponse:
        reply: symbol_pb.IssueSymbolResponse = _call(self.stub.IssueSymbol,
                     symbol_pb.IssueSymbolRequest(individual_number=individual_number),
                     self.timeout)
        return reply

    def issue_batch(self, numbers: Sequence[str]) -> list[symbol_pb.IssueResult]:
        reply = _call(self.stub.BatchIssueSymbols,
                      symbol_pb.BatchIssueSymbolsRequest(individual_numbers=numbers),
                      self.timeout)
        return list(reply.results)

    def issue_stream(
        self, chunks: Iterable[Sequence[str]], timeout: float | None = None
    ) -> Iterator[symbol_pb.StreamIssueSymbolsResponse]:
        """Stream chunks of numbers (at most 1,000 each); yields each chunk's results in order,
        each once the server has made its chunk durable. ``chunk_id`` i is the i-th chunk.
        The deadline is ``timeout``, else the client's ``stream_timeout``."""
        requests = (symbol_pb.StreamIssueSymbolsRequest(chunk_id=i, individual_numbers=c)
                    for i, c in enumerate(chunks))
        try:
            yield from self.stub.StreamIssueSymbols(
                requests, timeout=self.stream_timeout if timeout is None else timeout)
        except grpc.RpcError as err:
            raise CallError.from_rpc_error(err) from None

    def release(self, symbol: str) -> bool:
        was_held: bool = _call(self.stub.ReleaseSymbol,
                               symbol_pb.ReleaseSymbolRequest(symbol=symbol),
                               self.timeout).was_held
        return was_held

    def upgrade(self, symbols: Sequence[str]) -> list[symbol_pb.UpgradeResult]:
        """Move up to 1,000 holdings to the current key version; ``results[i]`` carries the
        current-version symbol for ``symbols[i]`` or its error."""
        reply = _call(self.stub.UpgradeSymbols, symbol_pb.UpgradeSymbolsRequest(symbols=symbols),
                      self.timeout)
        return list(reply.results)


class BrokerClient(_Client):
    """The broker: translates symbols and resolves providers."""

    def __init__(self, channel: grpc.Channel, timeout: float = DEFAULT_TIMEOUT,
                 stream_timeout: float = DEFAULT_STREAM_TIMEOUT) -> None:
        super().__init__(channel, timeout, stream_timeout)
        self.stub = broker_grpc.BrokerServiceStub(channel)

    def translate(self, requester_agency: str, symbol: str, provider_agency: str,
                  office_work: str, info_item: str,
                  exchange_id: str) -> broker_pb.TranslateSymbolResponse:
        reply: broker_pb.TranslateSymbolResponse = _call(self.stub.TranslateSymbol, broker_pb.TranslateSymbolRequest(
            requester_agency=requester_agency, symbol=symbol, provider_agency=provider_agency,
            office_work=office_work, info_item=info_item, exchange_id=exchange_id), self.timeout)
        return reply

    def translate_signed(self, inquiry: SignedInquiry) -> broker_pb.TranslateSymbolResponse:
        """Pass an agency's signed inquiry (``trust.sign_inquiry``) through, unchanged."""
        reply: broker_pb.TranslateSymbolResponse = _call(
            self.stub.TranslateSymbol, inquiry.translate_request(), self.timeout)
        return reply

    def resolve_signed(self, inquiry: SignedInquiry) -> broker_pb.ResolveProvidersResponse:
        """Pass an agency's signed resolution inquiry through, unchanged."""
        reply: broker_pb.ResolveProvidersResponse = _call(
            self.stub.ResolveProviders, inquiry.resolve_request(), self.timeout)
        return reply

    def translate_batch(self, requests: Sequence[broker_pb.TranslateSymbolRequest]
                        ) -> list[broker_pb.TranslateResult]:
        reply = _call(self.stub.BatchTranslateSymbols,
                      broker_pb.BatchTranslateSymbolsRequest(requests=requests), self.timeout)
        return list(reply.results)

    def resolve(self, requester_agency: str, symbol: str, office_work: str, info_item: str,
                exchange_id: str) -> broker_pb.ResolveProvidersResponse:
        reply: broker_pb.ResolveProvidersResponse = _call(self.stub.ResolveProviders, broker_pb.ResolveProvidersRequest(
            requester_agency=requester_agency, symbol=symbol, office_work=office_work,
            info_item=info_item, exchange_id=exchange_id), self.timeout)
        return reply


class PortalClient(_Client):
    """The subject-facing portal: reads access records through its own symbols."""

    def __init__(self, channel: grpc.Channel, timeout: float = DEFAULT_TIMEOUT,
                 stream_timeout: float = DEFAULT_STREAM_TIMEOUT) -> None:
        super().__init__(channel, timeout, stream_timeout)
        self.stub = disclosure_grpc.DisclosureServiceStub(channel)
        # The portal is an agency of its own.
        self.agency = AgencyClient(channel, timeout, stream_timeout)

    def list_records(self, symbol: str, page_size: int = 0,
                     page_token: str = "") -> disclosure_pb.ListAccessRecordsResponse:
        reply: disclosure_pb.ListAccessRecordsResponse = _call(self.stub.ListAccessRecords, disclosure_pb.ListAccessRecordsRequest(
            symbol=symbol, page_size=page_size, page_token=page_token), self.timeout)
        return reply

    def all_records(self, symbol: str) -> list[disclosure_pb.AccessRecord]:
        out: list[disclosure_pb.AccessRecord] = []
        token = ""
        while True:
            page = self.list_records(symbol, 500, token)
            out.extend(page.records)
            token = page.next_page_token
            if not token:
                return out

    def watch(self, cursor: str = "", timeout: float | None = None
              ) -> Iterator[disclosure_pb.WatchAccessRecordsResponse]:
        try:
            yield from self.stub.WatchAccessRecords(
                disclosure_pb.WatchAccessRecordsRequest(cursor=cursor),
                timeout=self.stream_timeout if timeout is None else timeout)
        except grpc.RpcError as err:
            raise CallError.from_rpc_error(err) from None

    def list_holdings(self, symbol: str) -> disclosure_pb.ListHoldingsResponse:
        reply: disclosure_pb.ListHoldingsResponse = _call(
            self.stub.ListHoldings, disclosure_pb.ListHoldingsRequest(symbol=symbol),
            self.timeout)
        return reply

    def get_policy(self, version: str = "") -> disclosure_pb.GetPolicyResponse:
        reply: disclosure_pb.GetPolicyResponse = _call(
            self.stub.GetPolicy, disclosure_pb.GetPolicyRequest(version=version), self.timeout)
        return reply

    def record_proof(self, symbol: str, record_id: int, min_cosignatures: int = 0
                     ) -> disclosure_pb.GetRecordProofResponse:
        reply: disclosure_pb.GetRecordProofResponse = _call(self.stub.GetRecordProof,
                     disclosure_pb.GetRecordProofRequest(symbol=symbol, record_id=record_id,
                                                         min_cosignatures=min_cosignatures),
                     self.timeout)
        return reply


class AuditorClient(_Client):
    """The independent auditor: checkpoints, proofs and leaves of the access log."""

    def __init__(self, channel: grpc.Channel, timeout: float = DEFAULT_TIMEOUT,
                 stream_timeout: float = DEFAULT_STREAM_TIMEOUT) -> None:
        super().__init__(channel, timeout, stream_timeout)
        self.stub = audit_grpc.AuditServiceStub(channel)

    def checkpoint(self, min_cosignatures: int = 0) -> str:
        """The latest checkpoint (with ``min_cosignatures``: the newest one that many
        witnesses cosigned; verify it with :mod:`symbolsvc_client.checkpoints`)."""
        text: str = _call(self.stub.GetCheckpoint, audit_pb.GetCheckpointRequest(
            min_cosignatures=min_cosignatures), self.timeout).checkpoint
        return text

    def consistency_proof(self, first_size: int, second_size: int) -> list[bytes]:
        return list(_call(self.stub.GetConsistencyProof, audit_pb.GetConsistencyProofRequest(
            first_size=first_size, second_size=second_size), self.timeout).hashes)

    def inclusion_proof(self, leaf_index: int, tree_size: int) -> list[bytes]:
        return list(_call(self.stub.GetInclusionProof, audit_pb.GetInclusionProofRequest(
            leaf_index=leaf_index, tree_size=tree_size), self.timeout).hashes)

    def inclusion_proof_by_hash(self, leaf_hash: bytes, tree_size: int
                                ) -> tuple[int, list[bytes]]:
        """(leaf index, inclusion proof) of the leaf whose RFC 9162 hash is ``leaf_hash``
        (a receipt's) in the tree of ``tree_size``; NOT_FOUND when no leaf has it."""
        reply = _call(self.stub.GetInclusionProof, audit_pb.GetInclusionProofRequest(
            leaf_hash=leaf_hash, tree_size=tree_size), self.timeout)
        return int(reply.leaf_index), list(reply.hashes)

    def entries(self, start: int, end: int) -> list[audit_pb.Entry]:
        return list(_call(self.stub.ListEntries, audit_pb.ListEntriesRequest(
            start=start, end=end), self.timeout).entries)
