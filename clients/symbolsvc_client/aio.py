"""asyncio clients, one class per role, with the same methods as :mod:`.clients` (awaited).

    dep = Deployment("dev")
    async with dep.aio_agency("city-chiyoda") as agency:
        reply = await agency.issue("123456789018")

Every call has a deadline: ``timeout`` for unary calls, ``stream_timeout`` for streams.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Sequence
from typing import Any, Self

import grpc
import grpc.aio
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

__all__ = ["AgencyClient", "AuditorClient", "BrokerClient", "PortalClient"]


async def _call(fn: Any, request: Any, timeout: float) -> Any:
    try:
        call: Awaitable[Any] = fn(request, timeout=timeout)
        return await call
    except grpc.RpcError as err:
        raise CallError.from_rpc_error(err) from None


class _Client:
    def __init__(self, channel: grpc.aio.Channel, timeout: float = DEFAULT_TIMEOUT,
                 stream_timeout: float = DEFAULT_STREAM_TIMEOUT) -> None:
        self.channel = channel
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self._health = health_pb2_grpc.HealthStub(channel)

    async def health(self, service: str = "") -> int:
        check = self._health.Check  # type: ignore[attr-defined]  # the stub's HealthStub
        # declares no methods
        reply = await _call(check, health_pb2.HealthCheckRequest(service=service), self.timeout)
        status: int = reply.status
        return status

    async def close(self) -> None:
        await self.channel.close(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AgencyClient(_Client):
    """An agency: issues and releases its own symbols."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = DEFAULT_TIMEOUT,
                 stream_timeout: float = DEFAULT_STREAM_TIMEOUT) -> None:
        super().__init__(channel, timeout, stream_timeout)
        self.stub = symbol_grpc.SymbolServiceStub(channel)

    async def issue(self, individual_number: str) -> symbol_pb.IssueSymbolResponse:
        reply: symbol_pb.IssueSymbolResponse = await _call(
            self.stub.IssueSymbol,
            symbol_pb.IssueSymbolRequest(individual_number=individual_number), self.timeout)
        return reply

    async def issue_batch(self, numbers: Sequence[str]) -> list[symbol_pb.IssueResult]:
        reply = await _call(self.stub.BatchIssueSymbols,
                            symbol_pb.BatchIssueSymbolsRequest(individual_numbers=numbers),
                            self.timeout)
        return list(reply.results)

    async def issue_stream(
        self, chunks: AsyncIterable[Sequence[str]], timeout: float | None = None
    ) -> AsyncIterator[symbol_pb.StreamIssueSymbolsResponse]:
        """Stream chunks of numbers (at most 1,000 each); yields each chunk's results in
        order once durable; ``chunk_id`` i is the i-th chunk."""

        async def requests() -> AsyncIterator[symbol_pb.StreamIssueSymbolsRequest]:
            i = 0
            async for chunk in chunks:
                yield symbol_pb.StreamIssueSymbolsRequest(chunk_id=i, individual_numbers=chunk)
                i += 1

        call = self.stub.StreamIssueSymbols(
            requests(), timeout=self.stream_timeout if timeout is None else timeout)
        try:
            async for reply in call:
                yield reply
        except grpc.RpcError as err:
            raise CallError.from_rpc_error(err) from None
        finally:
            call.cancel()

    async def release(self, symbol: str) -> bool:
        reply = await _call(self.stub.ReleaseSymbol,
                            symbol_pb.ReleaseSymbolRequest(symbol=symbol), self.timeout)
        was_held: bool = reply.was_held
        return was_held


class BrokerClient(_Client):
    """The broker: translates symbols and resolves providers."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = DEFAULT_TIMEOUT,
                 stream_timeout: float = DEFAULT_STREAM_TIMEOUT) -> None:
        super().__init__(channel, timeout, stream_timeout)
        self.stub = broker_grpc.BrokerServiceStub(channel)

    async def translate(self, requester_agency: str, symbol: str, provider_agency: str,
                        office_work: str, info_item: str,
                        exchange_id: str) -> broker_pb.TranslateSymbolResponse:
        reply: broker_pb.TranslateSymbolResponse = await _call(
            self.stub.TranslateSymbol, broker_pb.TranslateSymbolRequest(
                requester_agency=requester_agency, symbol=symbol,
                provider_agency=provider_agency, office_work=office_work,
                info_item=info_item, exchange_id=exchange_id), self.timeout)
        return reply

    async def translate_signed(self, inquiry: SignedInquiry
                               ) -> broker_pb.TranslateSymbolResponse:
        """Pass an agency's signed inquiry (``trust.sign_inquiry``) through, unchanged."""
        reply: broker_pb.TranslateSymbolResponse = await _call(
            self.stub.TranslateSymbol, inquiry.translate_request(), self.timeout)
        return reply

    async def resolve_signed(self, inquiry: SignedInquiry
                             ) -> broker_pb.ResolveProvidersResponse:
        """Pass an agency's signed resolution inquiry through, unchanged."""
        reply: broker_pb.ResolveProvidersResponse = await _call(
            self.stub.ResolveProviders, inquiry.resolve_request(), self.timeout)
        return reply

    async def translate_batch(self, requests: Sequence[broker_pb.TranslateSymbolRequest]
                              ) -> list[broker_pb.TranslateResult]:
        reply = await _call(self.stub.BatchTranslateSymbols,
                            broker_pb.BatchTranslateSymbolsRequest(requests=requests),
                            self.timeout)
        return list(reply.results)

    async def resolve(self, requester_agency: str, symbol: str, office_work: str,
                      info_item: str, exchange_id: str) -> broker_pb.ResolveProvidersResponse:
        reply: broker_pb.ResolveProvidersResponse = await _call(
            self.stub.ResolveProviders, broker_pb.ResolveProvidersRequest(
                requester_agency=requester_agency, symbol=symbol, office_work=office_work,
                info_item=info_item, exchange_id=exchange_id), self.timeout)
        return reply


class PortalClient(_Client):
    """The subject-facing portal: reads access records through its own symbols."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = DEFAULT_TIMEOUT,
                 stream_timeout: float = DEFAULT_STREAM_TIMEOUT) -> None:
        super().__init__(channel, timeout, stream_timeout)
        self.stub = disclosure_grpc.DisclosureServiceStub(channel)
        self.agency = AgencyClient(channel, timeout, stream_timeout)

    async def list_records(self, symbol: str, page_size: int = 0,
                           page_token: str = "") -> disclosure_pb.ListAccessRecordsResponse:
        reply: disclosure_pb.ListAccessRecordsResponse = await _call(
            self.stub.ListAccessRecords, disclosure_pb.ListAccessRecordsRequest(
                symbol=symbol, page_size=page_size, page_token=page_token), self.timeout)
        return reply

    async def all_records(self, symbol: str) -> list[disclosure_pb.AccessRecord]:
        out: list[disclosure_pb.AccessRecord] = []
        token = ""
        while True:
            page = await self.list_records(symbol, 500, token)
            out.extend(page.records)
            token = page.next_page_token
            if not token:
                return out

    async def watch(self, cursor: str = "", timeout: float | None = None
                    ) -> AsyncIterator[disclosure_pb.WatchAccessRecordsResponse]:
        call = self.stub.WatchAccessRecords(
            disclosure_pb.WatchAccessRecordsRequest(cursor=cursor),
            timeout=self.stream_timeout if timeout is None else timeout)
        try:
            async for reply in call:
                yield reply
        except grpc.RpcError as err:
            raise CallError.from_rpc_error(err) from None
        finally:
            call.cancel()

    async def record_proof(self, symbol: str, record_id: int, min_cosignatures: int = 0
                           ) -> disclosure_pb.GetRecordProofResponse:
        reply: disclosure_pb.GetRecordProofResponse = await _call(
            self.stub.GetRecordProof,
            disclosure_pb.GetRecordProofRequest(symbol=symbol, record_id=record_id,
                                                min_cosignatures=min_cosignatures),
            self.timeout)
        return reply


class AuditorClient(_Client):
    """The independent auditor: checkpoints, proofs and leaves of the access log."""

    def __init__(self, channel: grpc.aio.Channel, timeout: float = DEFAULT_TIMEOUT,
                 stream_timeout: float = DEFAULT_STREAM_TIMEOUT) -> None:
        super().__init__(channel, timeout, stream_timeout)
        self.stub = audit_grpc.AuditServiceStub(channel)

    async def checkpoint(self, min_cosignatures: int = 0) -> str:
        """The latest checkpoint (with ``min_cosignatures``: the newest one that many
        witnesses cosigned; verify it with :mod:`symbolsvc_client.checkpoints`)."""
        reply = await _call(self.stub.GetCheckpoint, audit_pb.GetCheckpointRequest(
            min_cosignatures=min_cosignatures), self.timeout)
        text: str = reply.checkpoint
        return text

    async def consistency_proof(self, first_size: int, second_size: int) -> list[bytes]:
        reply = await _call(self.stub.GetConsistencyProof, audit_pb.GetConsistencyProofRequest(
            first_size=first_size, second_size=second_size), self.timeout)
        return list(reply.hashes)

    async def inclusion_proof(self, leaf_index: int, tree_size: int) -> list[bytes]:
        reply = await _call(self.stub.GetInclusionProof, audit_pb.GetInclusionProofRequest(
            leaf_index=leaf_index, tree_size=tree_size), self.timeout)
        return list(reply.hashes)

    async def inclusion_proof_by_hash(self, leaf_hash: bytes, tree_size: int
                                      ) -> tuple[int, list[bytes]]:
        reply = await _call(self.stub.GetInclusionProof, audit_pb.GetInclusionProofRequest(
            leaf_hash=leaf_hash, tree_size=tree_size), self.timeout)
        return int(reply.leaf_index), list(reply.hashes)

    async def entries(self, start: int, end: int) -> list[audit_pb.Entry]:
        reply = await _call(self.stub.ListEntries, audit_pb.ListEntriesRequest(
            start=start, end=end), self.timeout)
        return list(reply.entries)
