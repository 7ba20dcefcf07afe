"""AuditService: the auditor reads checkpoints, proofs and exact leaves of the access log."""

from __future__ import annotations

import grpc

from ..log.service import AccessLog
from ..v1 import audit_service_pb2 as pb
from ..v1 import audit_service_pb2_grpc as pb_grpc


class AuditService(pb_grpc.AuditServiceServicer):
    def __init__(self, access_log: AccessLog) -> None:
        self._log = access_log

    async def GetCheckpoint(
        self, request: pb.GetCheckpointRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCheckpointResponse:
        return pb.GetCheckpointResponse(checkpoint=(await self._log.checkpoint()).note)

    async def GetConsistencyProof(
        self, request: pb.GetConsistencyProofRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetConsistencyProofResponse:
        hashes = await self._log.consistency_proof(request.first_size, request.second_size)
        return pb.GetConsistencyProofResponse(hashes=hashes)

    async def GetInclusionProof(
        self, request: pb.GetInclusionProofRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetInclusionProofResponse:
        if request.leaf_hash:  # by hash (a receipt's), as CT's get-proof-by-hash
            index, hashes = await self._log.inclusion_by_hash(request.leaf_hash,
                                                              request.tree_size)
            return pb.GetInclusionProofResponse(hashes=hashes, leaf_index=index)
        hashes = await self._log.inclusion_proof(request.leaf_index, request.tree_size)
        return pb.GetInclusionProofResponse(hashes=hashes, leaf_index=request.leaf_index)

    async def ListEntries(
        self, request: pb.ListEntriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListEntriesResponse:
        rows = await self._log.entries(request.start, request.end)
        return pb.ListEntriesResponse(entries=[pb.Entry(index=i, leaf=leaf) for i, leaf in rows])
