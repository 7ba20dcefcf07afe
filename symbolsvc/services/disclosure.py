"""DisclosureService: the portal reads a subject's access records through its own symbol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..auth import principal
from ..disclosure import DisclosedRecord, Disclosure
from ..v1 import disclosure_service_pb2 as pb
from ..v1 import disclosure_service_pb2_grpc as pb_grpc


def record_message(d: DisclosedRecord, subject_symbol: str) -> pb.AccessRecord:
    r = d.record
    ts = Timestamp(seconds=r.time_us // 1_000_000, nanos=(r.time_us % 1_000_000) * 1000)
    return pb.AccessRecord(
        record_id=d.id, time=ts, kind=cast(pb.AccessKind, int(r.kind)),
        requester_agency=r.requester,
        provider_agencies=r.providers, office_work=r.office_work, info_item=r.info_item,
        exchange_id=r.exchange_id, subject_symbol=subject_symbol,
        integrated=d.leaf_index is not None, leaf_index=d.leaf_index or 0,
        outcome=cast(pb.AccessOutcome, int(r.outcome)),
    )


class DisclosureService(pb_grpc.DisclosureServiceServicer):
    def __init__(self, disclosure: Disclosure) -> None:
        self._disclosure = disclosure

    async def ListAccessRecords(
        self, request: pb.ListAccessRecordsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAccessRecordsResponse:
        page, token = await self._disclosure.list_records(
            principal().name, request.symbol, request.page_size, request.page_token)
        return pb.ListAccessRecordsResponse(
            records=[record_message(d, request.symbol) for d in page], next_page_token=token)

    async def WatchAccessRecords(
        self, request: pb.WatchAccessRecordsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchAccessRecordsResponse]:
        async for item in self._disclosure.watch(principal().name, request.cursor):
            if item.record is None:
                yield pb.WatchAccessRecordsResponse(cursor=item.cursor)
            else:
                yield pb.WatchAccessRecordsResponse(
                    record=record_message(item.record, item.subject_symbol), cursor=item.cursor)

    async def GetRecordProof(
        self, request: pb.GetRecordProofRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRecordProofResponse:
        p = await self._disclosure.record_proof(principal().name, request.symbol, request.record_id)
        return pb.GetRecordProofResponse(leaf=p.leaf, leaf_index=p.leaf_index,
                                         checkpoint=p.checkpoint, hashes=p.hashes)
