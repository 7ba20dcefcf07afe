"""Observability, scraped and read as an operator's tools would.

- /metrics after a mixed load: go-grpc-prometheus names with exact counts for unary,
  batch, bidi-stream and server-stream RPCs, and the domain metrics; also under
  ``--workers 2`` (prometheus-client multiprocess mode, summed by the parent).
- Server logs: every stderr line is JSON; records made in a call carry the request id,
  principal and peer; a refused TLS handshake reaches the security log.
- Tracing: spans exported over OTLP to a collector (a real gRPC server in the test), with
  RPC attributes and never a number or a symbol.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from conftest import StartServer
from helpers import NumberSource, ServerProcess, wait_until, wrong_check_digit
from prometheus_client.parser import text_string_to_metric_families
from symbolsvc_client import CallError, open_channel
from symbolsvc_client.clients import AgencyClient
from symbolsvc_client.ids import new_id

SYM = "symbolsvc.v1.SymbolService"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    """The sum of ``name`` over samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def rpc(kind: str, service: str, method: str) -> dict[str, str]:
    return {"grpc_type": kind, "grpc_service": service, "grpc_method": method}


def test_metrics_after_a_mixed_load(fresh_deployment: Path, start_server: StartServer,
                                    numbers: NumberSource) -> None:
    port = _free_port()
    server = start_server(fresh_deployment, {"server": {"metrics_listen": f"127.0.0.1:{port}"}})
    dep = server.deployment
    chiyoda = dep.agency("city-chiyoda", server.address)
    tax = dep.agency("tax-office", server.address)
    broker = dep.broker(server.address)
    a, b = numbers.many(2)
    chiyoda.issue(a)                        # unary OK, new
    chiyoda.issue(a)                        # unary OK, existing
    with pytest.raises(CallError):
        chiyoda.issue(wrong_check_digit(b))  # unary INVALID_ARGUMENT
    batch = [*numbers.many(4), wrong_check_digit(numbers.one())]
    chiyoda.issue_batch(batch)              # 4 new, 1 item failed
    chunks = [numbers.many(10), numbers.many(10)]
    replies = list(chiyoda.issue_stream(chunks))  # bidi: 2 messages in, 2 out, 20 new
    assert len(replies) == 2
    tax.issue(a)                            # a second agency: unary OK, new
    sym = chiyoda.issue(a).symbol           # existing
    for _ in range(2):
        broker.translate("city-chiyoda", sym, "tax-office", "resident-tax",
                         "national-tax-income", new_id())
    with pytest.raises(CallError):
        dep.auditor(server.address, "city-chiyoda").checkpoint()  # PERMISSION_DENIED
    watched = dep.portal(server.address).watch(timeout=0.5)     # server stream, deadline
    with pytest.raises(CallError):
        for _ in watched:
            pass

    def settled() -> dict:
        s = scrape(port)
        done = value(s, "grpc_server_handled_total",
                     **rpc("server_stream", "symbolsvc.v1.DisclosureService",
                           "WatchAccessRecords"))
        timed = all(value(s, f"{h}_count") >= 1 for h in (
            "symbolsvc_event_loop_lag_seconds", "symbolsvc_storage_commit_seconds",
            "symbolsvc_access_log_integration_seconds"))
        grown = value(s, "symbolsvc_access_log_tree_size") >= 2
        return s if done == 1 and grown and timed else {}

    s = wait_until(settled, 30, "the watch stream's end, the tree's growth and the stall "
                   "histograms' first observations on /metrics")
    issue = rpc("unary", SYM, "IssueSymbol")
    assert value(s, "grpc_server_started_total", **issue) == 5
    assert value(s, "grpc_server_handled_total", grpc_code="OK", **issue) == 4
    assert value(s, "grpc_server_handled_total", grpc_code="INVALID_ARGUMENT", **issue) == 1
    assert value(s, "grpc_server_handling_seconds_count", **issue) == 5
    batch_l = rpc("unary", SYM, "BatchIssueSymbols")
    assert value(s, "grpc_server_handled_total", grpc_code="OK", **batch_l) == 1
    stream = rpc("bidi_stream", SYM, "StreamIssueSymbols")
    assert value(s, "grpc_server_started_total", **stream) == 1
    assert value(s, "grpc_server_handled_total", grpc_code="OK", **stream) == 1
    assert value(s, "grpc_server_msg_received_total", **stream) == 2
    assert value(s, "grpc_server_msg_sent_total", **stream) == 2
    assert value(s, "grpc_server_handling_seconds_count", **stream) == 1
    translate = rpc("unary", "symbolsvc.v1.BrokerService", "TranslateSymbol")
    assert value(s, "grpc_server_handled_total", grpc_code="OK", **translate) == 2
    checkpoint = rpc("unary", "symbolsvc.v1.AuditService", "GetCheckpoint")
    assert value(s, "grpc_server_handled_total", grpc_code="PERMISSION_DENIED",
                 **checkpoint) == 1
    watch = rpc("server_stream", "symbolsvc.v1.DisclosureService", "WatchAccessRecords")
    assert value(s, "grpc_server_started_total", **watch) == 1
    assert value(s, "grpc_server_handling_seconds_count", **watch) == 1

    # Domain metrics.
    assert value(s, "symbolsvc_holdings_registered_total") == 1 + 4 + 20 + 1
    assert value(s, "symbolsvc_holdings_existing_total") == 2
    assert value(s, "symbolsvc_items_failed_total", grpc_method="BatchIssueSymbols",
                 grpc_code="INVALID_ARGUMENT") == 1
    assert value(s, "symbolsvc_access_records_appended_total", kind="translation") == 2
    assert value(s, "symbolsvc_access_log_tree_size") >= 2
    assert value(s, "symbolsvc_sequencer_leader") == 1
    assert value(s, "symbolsvc_policy_rules") > 0
    assert value(s, "symbolsvc_policy_loaded_timestamp_seconds") > 0
    # Stalls (symbolsvc/stalls.py): the writer committed at least each write's group and
    # the collector's pauses are labelled by generation, with or without a collection yet.
    assert value(s, "symbolsvc_storage_commit_seconds_count") >= 1
    assert ("symbolsvc_gc_pause_seconds_count", frozenset({("generation", "2")})) in s
    assert ("symbolsvc_limit_rejections_total" in
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode())
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    for n in (a, b, *batch, *chunks[0], sym):
        assert n not in text


def test_metrics_with_two_workers(fresh_deployment: Path, start_server: StartServer,
                                  numbers: NumberSource, tmp_path: Path) -> None:
    port = _free_port()
    metrics_dir = tmp_path / "prom"
    server = start_server(fresh_deployment,
                          {"server": {"metrics_listen": f"127.0.0.1:{port}"}},
                          env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
                          extra_args=["--workers", "2"])
    identity = server.deployment.identity("city-chiyoda")
    calls = 0
    for _ in range(8):  # separate connections, so the kernel spreads them over the workers
        channel = open_channel(identity, server.address,
                               options=[("grpc.use_local_subchannel_pool", 1)])
        with AgencyClient(channel) as agency:
            for n in numbers.many(3):
                agency.issue(n)
                calls += 1

    def both_workers() -> dict:
        pids = {f.stem.rsplit("_", 1)[-1] for f in metrics_dir.glob("gauge_*.db")}
        s = scrape(port)
        return s if len(pids) == 2 and value(s, "symbolsvc_sequencer_leader") == 1 else {}

    s = wait_until(both_workers, 30, "both workers' gauges and one sequencer leader")
    issue = rpc("unary", SYM, "IssueSymbol")
    assert value(s, "grpc_server_handled_total", grpc_code="OK", **issue) == calls
    assert value(s, "grpc_server_handling_seconds_count", **issue) == calls
    assert value(s, "symbolsvc_holdings_registered_total") == calls


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_logs_are_json_with_call_context_and_handshake_refusals(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource) -> None:
    server: ServerProcess = start_server(fresh_deployment)
    dep = server.deployment
    with pytest.raises(CallError):  # a denial, logged in the call's context
        dep.auditor(server.address, "city-chiyoda").checkpoint()
    # A client without a certificate: refused in the TLS handshake, before any call.
    ca = (server.directory / "pki" / "ca.crt").read_bytes()
    channel = grpc.secure_channel(server.address, grpc.ssl_channel_credentials(ca))
    with pytest.raises(grpc.RpcError):
        channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=5)
    channel.close()

    def events() -> list[dict]:
        docs = _json_lines(server.security_log_text())
        kinds = {d.get("event") for d in docs}
        return docs if {"role_denied", "tls_handshake_failed"} <= kinds else []

    docs = wait_until(events, 30, "the denial and the handshake refusal in the security log")
    denied = next(d for d in docs if d.get("event") == "role_denied")
    assert denied["principal"] == "city-chiyoda"
    assert denied["peer"].startswith(("ipv4:127.0.0.1:", "ipv6:"))
    assert len(denied["request_id"]) >= 16
    refused = next(d for d in docs if d.get("event") == "tls_handshake_failed")
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in refused["reason"]
    # Every line the server wrote to stderr is a JSON object (gRPC core's lines included).
    lines = _json_lines(server.log_text())
    assert lines and all({"time", "level", "logger", "message"} <= set(d) for d in lines)
    assert any(d["logger"] == "grpc" for d in lines)


def test_tracing_exports_spans_without_numbers_or_symbols(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource) -> None:
    from opentelemetry.proto.collector.trace.v1 import (
        trace_service_pb2,
        trace_service_pb2_grpc,
    )

    spans: list = []
    lock = threading.Lock()

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):
            with lock:
                for rs in request.resource_spans:
                    for ss in rs.scope_spans:
                        spans.extend(ss.spans)
            return trace_service_pb2.ExportTraceServiceResponse()

    collector = grpc.server(futures.ThreadPoolExecutor(4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), collector)
    port = collector.add_insecure_port("127.0.0.1:0")
    collector.start()
    try:
        server = start_server(
            fresh_deployment, {"tracing": {"otlp_endpoint": f"http://127.0.0.1:{port}"}},
            env={"OTEL_BSP_SCHEDULE_DELAY": "100"})
        dep = server.deployment
        n = numbers.one()
        sym = dep.agency("city-chiyoda", server.address).issue(n).symbol
        tax = dep.agency("tax-office", server.address).issue(n).symbol
        dep.broker(server.address).translate("city-chiyoda", sym, "tax-office",
                                             "resident-tax", "national-tax-income",
                                             new_id())

        def exported() -> list:
            with lock:
                names = {s.name for s in spans}
                return list(spans) if any("TranslateSymbol" in x for x in names) and \
                    any("IssueSymbol" in x for x in names) else []

        got = wait_until(exported, 30, "the collector to receive the spans")
    finally:
        collector.stop(0)
    for span in got:
        attrs = {a.key: a.value for a in span.attributes}
        assert attrs["rpc.system"].string_value == "grpc"
        flat = repr(span)
        for secret in (n, sym, tax):
            assert secret not in flat, f"span {span.name} carries a number or symbol"
