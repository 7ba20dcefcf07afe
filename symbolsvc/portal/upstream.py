"""The portal's calls to symbolsvc: DisclosureService over mutual TLS as the portal principal.

Everything the page shows comes from these calls and nothing else (issue 18: if
the page needs a look-up the API does not give, the API is wrong). Replies are
turned into plain view objects (:mod:`.views`); a call the server does not
implement yet (``UNIMPLEMENTED``) becomes "not available", so the page degrades
instead of failing.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import grpc.aio

from ..v1 import disclosure_service_pb2 as pb
from ..v1 import disclosure_service_pb2_grpc as pb_grpc
from .settings import PortalSettings
from .views import HoldingView, RecordView, holding_view, record_view

TIMEOUT_S = 10.0
PAGE_SIZE = 50


class Unavailable(Exception):
    """The server does not offer this call (yet): show the section as unavailable."""


class NotHeld(Exception):
    """The server does not know the link's symbol, or the record is not this person's."""


class NotYetProvable(Exception):
    """The record is not integrated into a signed checkpoint yet: retry shortly."""


@dataclass(frozen=True, slots=True)
class RecordsPage:
    records: list[RecordView]
    next_page_token: str
    withheld_count: int
    next_release_us: int | None


def _raise(err: grpc.aio.AioRpcError) -> None:
    code = err.code()
    if code == grpc.StatusCode.UNIMPLEMENTED:
        raise Unavailable(str(err.details())) from None
    if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
        raise NotHeld(str(err.details())) from None
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        raise NotYetProvable(str(err.details())) from None
    raise err


class Upstream:
    """One mTLS channel to the server, shared by every page view and the watch."""

    def __init__(self, settings: PortalSettings) -> None:
        creds = grpc.ssl_channel_credentials(
            settings.ca.read_bytes(), settings.key.read_bytes(), settings.cert.read_bytes())
        self.channel = grpc.aio.secure_channel(settings.target, creds)
        self.stub = pb_grpc.DisclosureServiceStub(self.channel)
        # a proof against a checkpoint the browser will accept: cosigned by the quorum
        self.min_cosignatures = settings.witness_quorum

    async def close(self) -> None:
        await self.channel.close(None)

    async def records(self, symbol: str, page_token: str = "") -> RecordsPage:
        try:
            reply = await self.stub.ListAccessRecords(pb.ListAccessRecordsRequest(
                symbol=symbol, page_size=PAGE_SIZE, page_token=page_token), timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            _raise(err)
            raise
        release = (reply.next_release_time.ToMicroseconds()
                   if reply.HasField("next_release_time") else None)
        return RecordsPage([record_view(r) for r in reply.records], reply.next_page_token,
                           reply.withheld_count, release)

    async def holdings(self, symbol: str) -> list[HoldingView]:
        try:
            reply = await self.stub.ListHoldings(pb.ListHoldingsRequest(symbol=symbol),
                                                 timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            _raise(err)
            raise
        return [holding_view(h) for h in reply.holdings]

    async def proof(self, symbol: str, record_id: int) -> dict[str, object]:
        """The record's leaf, inclusion proof and signed checkpoint, as the browser wants them."""
        try:
            reply = await self.stub.GetRecordProof(
                pb.GetRecordProofRequest(symbol=symbol, record_id=record_id,
                                         min_cosignatures=self.min_cosignatures),
                timeout=TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            _raise(err)
            raise
        return {
            "leaf": base64.b64encode(reply.leaf).decode("ascii"),
            "leaf_index": reply.leaf_index,
            "checkpoint": reply.checkpoint,
            "hashes": [base64.b64encode(h).decode("ascii") for h in reply.hashes],
        }

    async def watch(self, cursor: str) -> AsyncIterator[tuple[str, RecordView | None]]:
        """``(cursor, record or None)`` for every message of one watch from ``cursor``."""
        call = self.stub.WatchAccessRecords(pb.WatchAccessRecordsRequest(cursor=cursor))
        try:
            async for msg in call:
                yield msg.cursor, (record_view(msg.record) if msg.HasField("record") else None)
        finally:
            call.cancel()
