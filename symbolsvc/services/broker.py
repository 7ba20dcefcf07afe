"""BrokerService: translation and provider resolution, each durably logged before the reply."""

from __future__ import annotations

import grpc

from ..core import Core, ResolveRequest, Translated, TranslateRequest
from ..errors import SymbolsvcError
from ..status import item_error
from ..v1 import broker_service_pb2 as pb
from ..v1 import broker_service_pb2_grpc as pb_grpc


def _us(m: pb.TranslateSymbolRequest | pb.ResolveProvidersRequest) -> int:
    """issued_at in microseconds (what the requester signs; a sub-microsecond part is not
    signed and is ignored); 0 when absent."""
    t = m.issued_at
    return max(0, t.seconds * 1_000_000 + t.nanos // 1000) if m.HasField("issued_at") else 0


def _request(m: pb.TranslateSymbolRequest) -> TranslateRequest:
    return TranslateRequest(m.requester_agency, m.symbol, m.provider_agency, m.office_work,
                            m.info_item, m.exchange_id, m.inquiry_signature, _us(m))


def _translated(t: Translated) -> pb.TranslateSymbolResponse:
    return pb.TranslateSymbolResponse(provider_symbol=t.provider_symbol, record_id=t.record_id,
                                      receipt=t.receipt, sealed_provider_symbol=t.sealed)


class BrokerService(pb_grpc.BrokerServiceServicer):
    def __init__(self, core: Core) -> None:
        self._core = core

    async def TranslateSymbol(
        self, request: pb.TranslateSymbolRequest, context: grpc.aio.ServicerContext
    ) -> pb.TranslateSymbolResponse:
        return _translated(await self._core.translate(_request(request)))

    async def BatchTranslateSymbols(
        self, request: pb.BatchTranslateSymbolsRequest, context: grpc.aio.ServicerContext
    ) -> pb.BatchTranslateSymbolsResponse:
        outcomes = await self._core.translate_many([_request(m) for m in request.requests])
        return pb.BatchTranslateSymbolsResponse(results=[
            pb.TranslateResult(error=item_error(o)) if isinstance(o, SymbolsvcError)
            else pb.TranslateResult(translated=_translated(o))
            for o in outcomes
        ])

    async def ResolveProviders(
        self, request: pb.ResolveProvidersRequest, context: grpc.aio.ServicerContext
    ) -> pb.ResolveProvidersResponse:
        r = await self._core.resolve(ResolveRequest(
            request.requester_agency, request.symbol, request.office_work, request.info_item,
            request.exchange_id, request.inquiry_signature, _us(request)))
        return pb.ResolveProvidersResponse(provider_agencies=r.provider_agencies,
                                           record_id=r.record_id, receipt=r.receipt)
