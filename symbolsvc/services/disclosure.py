"""DisclosureService: the portal reads a subject's access records through its own symbol."""

from __future__ import annotations

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..auth import principal
from ..core import Core, DisclosedRecord
from ..v1 import disclosure_service_pb2 as pb
from ..v1 import disclosure_service_pb2_grpc as pb_grpc


def record_message(d: DisclosedRecord, subject_symbol: str,
                   integrated: bool = False) -> pb.AccessRecord:
    r = d.record
    ts = Timestamp(seconds=r.time_us // 1_000_000, nanos=(r.time_us % 1_000_000) * 1000)
    return pb.AccessRecord(
        index=d.id, time=ts, kind=int(r.kind), requester_agency=r.requester,
        provider_agencies=r.providers, office_work=r.office_work, info_item=r.info_item,
        exchange_id=r.exchange_id, subject_symbol=subject_symbol, integrated=integrated,
    )


class DisclosureService(pb_grpc.DisclosureServiceServicer):
    def __init__(self, core: Core) -> None:
        self._core = core

    async def ListAccessRecords(
        self, request: pb.ListAccessRecordsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAccessRecordsResponse:
        page, token = await self._core.list_records(
            principal().name, request.symbol, request.page_size, request.page_token)
        return pb.ListAccessRecordsResponse(
            records=[record_message(d, request.symbol) for d in page], next_page_token=token)

    # WatchAccessRecords and GetRecordProof need the sequenced Merkle log
    # (issue: tamper-evident access log); until then the generated base class
    # answers UNIMPLEMENTED.
