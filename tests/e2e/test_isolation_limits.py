"""One caller must not hurt another (issue 11): per-principal limits and bounded streams.

Over real mTLS to a real server process. "X is open when Y happens" is true by
construction: a stream counts as open once the server has answered its first
chunk, and the tests hold it open with a request iterator that blocks until
they release it.
"""

from __future__ import annotations

import json
import queue
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from helpers import SERVING, NumberSource, ServerProcess, StartServer, wait_until
from symbolsvc_client import CallError, Deployment

from symbolsvc.v1 import symbol_service_pb2 as pb
from symbolsvc.v1 import symbol_service_pb2_grpc as pb_grpc

Code = grpc.StatusCode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OpenStream:
    """A StreamIssueSymbols call held open: its first chunk answered (so the server has
    admitted it), then no message until :meth:`close`."""

    def __init__(self, channel: grpc.Channel, number: str) -> None:
        self._requests: queue.Queue[pb.StreamIssueSymbolsRequest | None] = queue.Queue()
        self._requests.put(pb.StreamIssueSymbolsRequest(chunk_id=1, individual_numbers=[number]))
        self.call = pb_grpc.SymbolServiceStub(channel).StreamIssueSymbols(self._messages())
        self.first = next(self.call)  # raises grpc.RpcError when the stream is refused

    def _messages(self) -> Iterator[pb.StreamIssueSymbolsRequest]:
        while (item := self._requests.get()) is not None:
            yield item

    def send(self, chunk_id: int, numbers: list[str]) -> pb.StreamIssueSymbolsResponse:
        self._requests.put(pb.StreamIssueSymbolsRequest(chunk_id=chunk_id,
                                                        individual_numbers=numbers))
        return next(self.call)

    def close(self) -> None:
        self._requests.put(None)
        for _ in self.call:
            pass


def refused(fn: Any, *args: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        fn(*args)
    return info.value


def details(err: grpc.RpcError) -> tuple[str, float | None]:
    """The ErrorInfo reason and the RetryInfo delay (seconds) of a failed call."""
    status = rpc_status.from_call(err)
    assert status is not None, "no google.rpc.Status in the trailers"
    reason, delay = "", None
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            reason = info.reason
        elif d.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            d.Unpack(retry)
            delay = retry.retry_delay.ToNanoseconds() / 1e9
    return reason, delay


def limit_events(server: ServerProcess) -> list[dict[str, Any]]:
    return [e for e in map(json.loads, server.security_log_text().splitlines())
            if e.get("event") == "limit_exceeded"]


def metric(port: int, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name}{{{want}}} in /metrics")


@pytest.fixture
def limited(fresh_deployment: Path, start_server: StartServer
            ) -> Iterator[tuple[ServerProcess, Deployment, int]]:
    """A server whose agencies may hold 3 streams, and 6 calls in flight server-wide."""
    port = free_port()
    server = start_server(fresh_deployment, {
        "server": {"max_concurrent_rpcs": 6, "metrics_listen": f"127.0.0.1:{port}"},
        "limits": {"stream_idle_seconds": 300, "roles": {"agency": {"streams": 3}}},
    })
    yield server, Deployment(fresh_deployment), port


def test_idle_streams_of_one_agency_do_not_lock_out_others(
        limited: tuple[ServerProcess, Deployment, int], numbers: NumberSource) -> None:
    server, dep, port = limited
    flood = dep.channel("city-chiyoda", server.address)
    streams = [OpenStream(flood, numbers.one()) for _ in range(3)]
    try:
        # The fourth stream of the same agency is refused, with a reason and a retry delay.
        err = refused(OpenStream, flood, numbers.one())
        assert err.code() == Code.RESOURCE_EXHAUSTED
        reason, delay = details(err)
        assert reason == "STREAMS_LIMIT"
        assert delay is not None and delay > 0
        # Everyone else is unaffected: another agency issues, health answers on both.
        other = dep.agency("city-minato", server.address)
        assert other.issue(numbers.one()).symbol
        assert other.health() == SERVING
        assert dep.agency("city-chiyoda", server.address).health() == SERVING
        # The flooding agency's unary calls still work: streams and calls are separate budgets.
        assert dep.agency("city-chiyoda", server.address).issue(numbers.one()).symbol
        other.close()
    finally:
        for s in streams:
            s.close()
    # Once its streams are closed, the agency may open one again.
    OpenStream(flood, numbers.one()).close()
    events = wait_until(lambda: limit_events(server), 10, "a limit_exceeded security event")
    assert events[0]["principal"] == "city-chiyoda" and events[0]["limit"] == "streams"
    assert metric(port, "symbolsvc_limit_rejections_total",
                  principal="city-chiyoda", limit="streams") >= 1
    flood.close()


def test_server_wide_cap_spares_health(limited: tuple[ServerProcess, Deployment, int],
                                       numbers: NumberSource) -> None:
    server, dep, _ = limited
    channels = [dep.channel(a, server.address) for a in ("city-chiyoda", "city-minato")]
    streams = [OpenStream(channels[0], numbers.one()) for _ in range(3)]
    streams += [OpenStream(channels[1], numbers.one()) for _ in range(3)]
    try:
        # Six calls in flight: the server is at its cap, for every principal ...
        third = dep.agency("pension-service", server.address)
        with pytest.raises(CallError) as info:
            third.issue(numbers.one())
        assert info.value.code == Code.RESOURCE_EXHAUSTED
        assert info.value.reason == "SERVER_CALLS_LIMIT"
        # ... but health, checked or watched, still answers.
        assert third.health() == SERVING
        watch = health_pb2_grpc.HealthStub(third.channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert next(watch).status == SERVING
        watch.cancel()
        third.close()
    finally:
        for s in streams:
            s.close()
    for c in channels:
        c.close()


def test_item_rate_is_limited_per_principal(fresh_deployment: Path, start_server: StartServer,
                                            numbers: NumberSource) -> None:
    server = start_server(fresh_deployment, {
        "limits": {"principals": {"city-chiyoda": {"rate": 1, "burst": 1000}}}})
    dep = Deployment(fresh_deployment)
    slow = dep.agency("city-chiyoda", server.address)
    # A full batch is admitted (the bucket holds a batch), and a second one runs the bucket
    # into debt; at 1 item/s the next call must wait about 1,000 s.
    slow.issue_batch(numbers.many(1000))
    slow.issue_batch(numbers.many(1000))
    err = refused(slow.stub.IssueSymbol, pb.IssueSymbolRequest(individual_number=numbers.one()))
    assert err.code() == Code.RESOURCE_EXHAUSTED
    reason, delay = details(err)
    assert reason == "RATE_LIMIT" and delay is not None and delay > 100
    # Other agencies keep their own bucket.
    assert dep.agency("city-minato", server.address).issue(numbers.one()).symbol
    slow.close()


def test_an_idle_client_stream_is_closed(fresh_deployment: Path, start_server: StartServer,
                                          numbers: NumberSource) -> None:
    server = start_server(fresh_deployment, {"limits": {"stream_idle_seconds": 1}})
    dep = Deployment(fresh_deployment)
    channel = dep.channel("city-chiyoda", server.address)
    stream = OpenStream(channel, numbers.one())
    assert not stream.first.results[0].HasField("error")
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        next(stream.call)  # the client sends nothing more
    assert time.monotonic() - start >= 0.5
    assert info.value.code() == Code.DEADLINE_EXCEEDED
    assert details(info.value)[0] == "STREAM_IDLE"
    assert "Traceback" not in server.log_text()
    # The slot is free again: the agency's limit counts open streams only.
    OpenStream(channel, numbers.one()).close()
    channel.close()


def test_a_watch_ends_at_its_lifetime_and_resumes(fresh_deployment: Path,
                                                 start_server: StartServer) -> None:
    server = start_server(fresh_deployment, {"limits": {"watch_max_seconds": 1}})
    dep = Deployment(fresh_deployment)
    portal = dep.portal(server.address)
    with pytest.raises(CallError) as info:
        for _ in portal.watch("", timeout=30):
            pass
    assert info.value.code == Code.UNAVAILABLE
    assert info.value.reason == "STREAM_LIFETIME"
    portal.close()


def test_health_watch_works_on_the_mtls_port(clients: Any) -> None:
    agency = clients.agency("city-chiyoda")
    watch = health_pb2_grpc.HealthStub(agency.channel).Watch(
        health_pb2.HealthCheckRequest(service="symbolsvc.v1.SymbolService"), timeout=10)
    assert next(watch).status == SERVING
    watch.cancel()


def test_refusals_carry_pushback_and_the_client_rides_them_out(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource) -> None:
    """A refusal over a limit names gRPC's retry pushback (gRFC A6), so the client
    library's retry policy waits that long and tries again instead of failing."""
    server = start_server(fresh_deployment, {
        "limits": {"principals": {"city-chiyoda": {"rate": 2, "burst": 1000}}}})
    dep = Deployment(fresh_deployment)
    agency = dep.agency("city-chiyoda", server.address)
    agency.issue_batch(numbers.many(1000))  # empties the bucket
    with grpc.secure_channel(server.address, dep.identity("city-chiyoda").credentials()) as raw:
        stub = pb_grpc.SymbolServiceStub(raw)  # a plain channel: no retry policy
        err = refused(lambda: [stub.IssueSymbol(pb.IssueSymbolRequest(
            individual_number=numbers.one())) for _ in range(50)])
    assert err.code() == Code.RESOURCE_EXHAUSTED
    assert details(err)[0] == "RATE_LIMIT"
    pushback = dict(err.trailing_metadata() or ())["grpc-retry-pushback-ms"]
    assert 1 <= int(pushback) <= 1000
    # Three calls in a row need waits at 2 calls/s: the client's caller sees none of them.
    assert len({agency.issue(numbers.one()).symbol for _ in range(3)}) == 3
    agency.close()
    server.stop()
    # A wait longer than the pushback bound is the caller's to decide ("-1": no retry).
    server = start_server(fresh_deployment, {
        "limits": {"principals": {"city-chiyoda": {"rate": 0.01, "burst": 1000}}}})
    agency = dep.agency("city-chiyoda", server.address)
    agency.issue_batch(numbers.many(1000))
    with pytest.raises(CallError) as info:
        agency.issue(numbers.one())
    assert info.value.code == Code.RESOURCE_EXHAUSTED, server.log_tail()
    agency.close()
