"""``symbolsvc probe``: the health check a container runtime or kubelet runs inside the
container, against the plaintext loopback-only health port (``[server] health_listen``).

Exit 0 when the server answers SERVING (``--alive``: answers at all, SERVING or not,
for liveness probes that must not restart a server only because its database is down),
1 otherwise or without an answer within the timeout, 2 for a bad address; one line on
stdout or stderr either way.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def probe(address: str, service: str = "", timeout: float = 3.0, alive: bool = False) -> int:
    if ":" not in address:
        print(f"symbolsvc probe: {address!r} is not HOST:PORT", file=sys.stderr)
        return 2
    with grpc.insecure_channel(address) as channel:
        try:
            check = health_pb2_grpc.HealthStub(channel).Check  # type: ignore[attr-defined]
            reply = check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as err:
            print(f"symbolsvc probe: {address}: {err.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{address}: {status}")
    return 0 if alive or reply.status == health_pb2.HealthCheckResponse.SERVING else 1
