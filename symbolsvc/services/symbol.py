"""SymbolService: agencies issue and release their own symbols (the caller is the agency)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from ..auth import principal
from ..core import Core, Issued
from ..errors import SymbolsvcError
from ..status import item_error
from ..v1 import symbol_service_pb2 as pb
from ..v1 import symbol_service_pb2_grpc as pb_grpc


def _issued(r: Issued) -> pb.IssueSymbolResponse:
    return pb.IssueSymbolResponse(
        symbol=r.symbol, newly_registered=r.newly_registered, key_version=r.key_version
    )


def _results(outcomes: list[Issued | SymbolsvcError]) -> list[pb.IssueResult]:
    return [
        pb.IssueResult(error=item_error(o)) if isinstance(o, SymbolsvcError)
        else pb.IssueResult(issued=_issued(o))
        for o in outcomes
    ]


class SymbolService(pb_grpc.SymbolServiceServicer):
    def __init__(self, core: Core) -> None:
        self._core = core

    async def IssueSymbol(
        self, request: pb.IssueSymbolRequest, context: grpc.aio.ServicerContext
    ) -> pb.IssueSymbolResponse:
        return _issued(await self._core.issue(principal().name, request.individual_number))

    async def BatchIssueSymbols(
        self, request: pb.BatchIssueSymbolsRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchIssueSymbolsResponse:
        outcomes = await self._core.issue_many(principal().name, request.individual_numbers)
        return pb.BatchIssueSymbolsResponse(results=_results(outcomes))

    async def StreamIssueSymbols(
        self, requests: AsyncIterator[pb.StreamIssueSymbolsRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.StreamIssueSymbolsResponse]:
        agency = principal().name
        async for chunk in requests:
            try:
                outcomes = await self._core.issue_many(agency, chunk.individual_numbers)
            except SymbolsvcError as err:  # the chunk as a whole is bad: fail each item
                outcomes = [err] * max(1, len(chunk.individual_numbers))
            yield pb.StreamIssueSymbolsResponse(chunk_id=chunk.chunk_id, results=_results(outcomes))

    async def ReleaseSymbol(
        self, request: pb.ReleaseSymbolRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReleaseSymbolResponse:
        was_held = await self._core.release(principal().name, request.symbol)
        return pb.ReleaseSymbolResponse(was_held=was_held)
