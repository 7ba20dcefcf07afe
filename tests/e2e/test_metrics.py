"""Prometheus metrics: RPC counts by method and status code (go-grpc-prometheus names), and
no individual number. tests/e2e/test_observability.py covers streams, domain metrics, --workers."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest
from helpers import NumberSource, StartServer, wrong_check_digit
from symbolsvc_client import CallError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_metrics_count_calls_by_code_and_never_show_a_number(
    fresh_deployment: Path, start_server: StartServer, numbers: NumberSource
) -> None:
    port = _free_port()
    server = start_server(fresh_deployment,
                          {"server": {"metrics_listen": f"127.0.0.1:{port}"}})
    agency = server.deployment.agency("city-chiyoda", server.address)
    good = numbers.one()
    bad = wrong_check_digit(numbers.one())
    agency.issue(good)
    with pytest.raises(CallError):
        agency.issue(bad)

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    labels = ('grpc_method="IssueSymbol",grpc_service="symbolsvc.v1.SymbolService",'
              'grpc_type="unary"')
    assert f'grpc_server_handled_total{{grpc_code="OK",{labels}}} 1.0' in text
    assert f'grpc_server_handled_total{{grpc_code="INVALID_ARGUMENT",{labels}}} 1.0' in text
    assert f"grpc_server_handling_seconds_count{{{labels}}} 2.0" in text
    assert good not in text and bad not in text
