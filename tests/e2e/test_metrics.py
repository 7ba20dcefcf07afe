"""Prometheus metrics: RPC counts by method and status code, and no individual number."""

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
    ok = ('symbolsvc_rpcs_total{code="OK",'
          'method="/symbolsvc.v1.SymbolService/IssueSymbol"} 1.0')
    invalid = ('symbolsvc_rpcs_total{code="INVALID_ARGUMENT",'
               'method="/symbolsvc.v1.SymbolService/IssueSymbol"} 1.0')
    assert ok in text
    assert invalid in text
    assert "symbolsvc_rpc_seconds_bucket" in text
    assert good not in text and bad not in text
