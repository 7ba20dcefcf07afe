"""DisclosureService: the portal reads a subject's access records through its own symbol."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ..auth import principal
from ..disclosure import DisclosedRecord, Disclosure
from ..transparency import RuleTexts, Transparency
from ..v1 import disclosure_service_pb2 as pb
from ..v1 import disclosure_service_pb2_grpc as pb_grpc


def _ts(us: int) -> Timestamp:
    return Timestamp(seconds=us // 1_000_000, nanos=(us % 1_000_000) * 1000)


def record_message(d: DisclosedRecord, subject_symbol: str,
                   rules: RuleTexts | None = None) -> pb.AccessRecord:
    """Everything a person-facing page shows, with the rule's purpose and basis."""
    r = d.record
    msg = pb.AccessRecord(
        record_id=d.id, time=_ts(r.time_us), kind=cast(pb.AccessKind, int(r.kind)),
        requester_agency=r.requester,
        provider_agencies=r.providers, office_work=r.office_work, info_item=r.info_item,
        exchange_id=r.exchange_id, subject_symbol=subject_symbol,
        integrated=d.leaf_index is not None, leaf_index=d.leaf_index or 0,
        outcome=cast(pb.AccessOutcome, int(r.outcome)),
    )
    version, rule = r.policy_version, r.rule
    if version is not None and rule is not None:
        msg.policy_version = version.hex()
        msg.rule = rule
        if rules is not None:
            msg.purpose, msg.basis = rules.texts(version, rule)
    if r.withheld_until is not None:
        msg.withheld_until.CopyFrom(_ts(r.withheld_until))
    return msg


class DisclosureService(pb_grpc.DisclosureServiceServicer):
    def __init__(self, disclosure: Disclosure, transparency: Transparency) -> None:
        self._disclosure = disclosure
        self._transparency = transparency
        self._rules = transparency.rule_texts

    async def ListAccessRecords(
        self, request: pb.ListAccessRecordsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAccessRecordsResponse:
        page, token, withheld = await self._disclosure.list_records(
            principal().name, request.symbol, request.page_size, request.page_token)
        await self._rules.load([d.record for d in page])
        out = pb.ListAccessRecordsResponse(
            records=[record_message(d, request.symbol, self._rules) for d in page],
            next_page_token=token, withheld_count=withheld.count)
        if withheld.next_release_us is not None:
            out.next_release_time.CopyFrom(_ts(withheld.next_release_us))
        return out

    async def WatchAccessRecords(
        self, request: pb.WatchAccessRecordsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchAccessRecordsResponse]:
        async for item in self._disclosure.watch(principal().name, request.cursor):
            if item.record is None:
                yield pb.WatchAccessRecordsResponse(cursor=item.cursor)
            else:
                await self._rules.load([item.record.record])
                yield pb.WatchAccessRecordsResponse(
                    record=record_message(item.record, item.subject_symbol, self._rules),
                    cursor=item.cursor)

    async def GetRecordProof(
        self, request: pb.GetRecordProofRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRecordProofResponse:
        p = await self._disclosure.record_proof(principal().name, request.symbol, request.record_id,
                                                request.min_cosignatures)
        return pb.GetRecordProofResponse(leaf=p.leaf, leaf_index=p.leaf_index,
                                         checkpoint=p.checkpoint, hashes=p.hashes)

    async def ListHoldings(
        self, request: pb.ListHoldingsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListHoldingsResponse:
        views = await self._transparency.list_holdings(principal().name, request.symbol)
        out = pb.ListHoldingsResponse()
        for v in views:
            h = out.holdings.add(agency=v.agency, released=v.released)
            if v.since_us is not None:
                h.since.CopyFrom(_ts(v.since_us))
            if v.released_at_us is not None:
                h.released_at.CopyFrom(_ts(v.released_at_us))
        return out

    async def GetPolicy(
        self, request: pb.GetPolicyRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPolicyResponse:
        v = await self._transparency.get_policy(request.version)
        return pb.GetPolicyResponse(version=v.version.hex(), canonical_table=v.canonical_table,
                                    loaded_at=_ts(v.loaded_at_us), record_id=v.record_id)
