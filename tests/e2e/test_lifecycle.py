"""The server's life: health, SIGHUP reloads of the permission table, SIGTERM under load.

SIGHUP swaps in a new policy.toml without dropping calls; a malformed file is refused, the
server log says so, and the previous table stays in force. SIGTERM lets in-flight calls
finish, exits 0, and loses no acknowledged write.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path

import grpc
import pytest
from helpers import (
    SERVING,
    TEST_POLICY,
    BulkLoad,
    Clients,
    NumberSource,
    ServerProcess,
    StartServer,
    assert_still_issued,
    call_error,
    wait_until,
)
from symbolsvc_client import CallError, Deployment

from symbolsvc.server import SERVICE_NAMES

Code = grpc.StatusCode

MINATO_RULE = """
[[allow]]
requester   = "city-minato"
office_work = "resident-tax"
info_item   = "national-tax-income"
providers   = ["tax-office"]
"""
MALFORMED = {
    "bad-toml": TEST_POLICY + "\n[[allow]\nrequester = ",
    "unknown-group": TEST_POLICY + MINATO_RULE.replace('["tax-office"]', '["@nobody"]'),
    "bad-identifier": TEST_POLICY + MINATO_RULE.replace('"city-minato"', '"City Minato"'),
    "unknown-key": TEST_POLICY + MINATO_RULE + 'deny = ["everyone"]\n',
}


@pytest.mark.parametrize("service", ["", *SERVICE_NAMES])
def test_health_is_serving(clients: Clients, service: str) -> None:
    assert clients.broker().health(service) == SERVING
    assert clients.agency("city-chiyoda").health(service) == SERVING


def test_health_of_an_unknown_service_is_not_found(clients: Clients) -> None:
    err = call_error(clients.auditor().health, "no.such.Service")
    assert err.code == Code.NOT_FOUND


class Traffic:
    """Allowed translations in a loop on a thread: none may fail while the table is reloaded."""

    def __init__(self, deployment: Deployment, address: str, symbol: str, expect: str) -> None:
        self.broker = deployment.broker(address)
        self.symbol, self.expect = symbol, expect
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = self.broker.translate("city-chiyoda", self.symbol, "tax-office",
                                          "resident-tax", "national-tax-income",
                                          f"traffic-{uuid.uuid4()}")
                if r.provider_symbol != self.expect:
                    self.failures.append("wrong symbol")
                self.ok += 1
            except CallError as err:
                self.failures.append(str(err))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.broker.close()


def test_sighup_reloads_the_permission_table(fresh_deployment: Path, start_server: StartServer,
                                             numbers: NumberSource) -> None:
    server = start_server(fresh_deployment)
    dep = Deployment(fresh_deployment)
    c = Clients(dep, server.address)
    n = numbers.one()
    s = {a: c.agency(a).issue(n).symbol for a in ("city-chiyoda", "city-minato", "tax-office")}

    def minato_to_tax() -> str:
        return c.broker().translate("city-minato", s["city-minato"], "tax-office",
                                    "resident-tax", "national-tax-income",
                                    f"hup-{uuid.uuid4()}").provider_symbol

    err = call_error(minato_to_tax)
    assert (err.code, err.reason) == (Code.PERMISSION_DENIED, "NOT_PERMITTED")
    traffic = Traffic(dep, server.address, s["city-chiyoda"], s["tax-office"])
    try:
        wait_until(lambda: traffic.ok >= 20, 10, "background translations")

        # A new rule takes effect on SIGHUP.
        policy = fresh_deployment / "policy.toml"
        policy.write_text(TEST_POLICY + MINATO_RULE)
        mark = server.log_size()
        server.signal(signal.SIGHUP)
        line = server.wait_for_log(r"permission table reloaded", since=mark)
        assert "5 rules" in line
        assert minato_to_tax() == s["tax-office"]

        # Malformed tables are refused, said so in the log, and the last good one stays.
        for name, text in MALFORMED.items():
            policy.write_text(text)
            mark = server.log_size()
            server.signal(signal.SIGHUP)
            line = server.wait_for_log(r"permission table NOT reloaded", since=mark)
            assert str(policy) in line, name
            assert server.running
            assert minato_to_tax() == s["tax-office"], name
            err = call_error(c.broker().translate, "tax-office", s["tax-office"], "city-minato",
                             "tax-investigation", "resident-record", "hup-2")
            assert err.reason == "NOT_PERMITTED", name

        # And back to the original table: the added rule is gone again.
        policy.write_text(TEST_POLICY)
        mark = server.log_size()
        server.signal(signal.SIGHUP)
        server.wait_for_log(r"permission table reloaded: 4 rules", since=mark)
        err = call_error(minato_to_tax)
        assert err.reason == "NOT_PERMITTED"
        ok_before = traffic.ok
        wait_until(lambda: traffic.ok > ok_before, 10, "traffic after the last reload")
    finally:
        traffic.stop()
        c.close()
    assert traffic.failures == []
    assert server.stop() == 0


def test_sigterm_under_load_exits_zero_and_keeps_every_acknowledged_issue(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource) -> None:
    grace = 3
    server: ServerProcess = start_server(fresh_deployment,
                                         extra_config={"server": {"grace_seconds": grace}})
    dep = Deployment(fresh_deployment)
    # The load is open-ended: SIGTERM lands while it runs, however fast the machine is.
    load = BulkLoad(dep, server.address, numbers, stream_agency="pension-service",
                    batch_agency="tax-office", batch_threads=3).start()
    wait_until(lambda: load.count("pension-service") >= 3000 and load.count("tax-office") >= 1000,
               60, "a few thousand acknowledged issues")
    mark = server.log_size()
    t0 = time.monotonic()
    server.signal(signal.SIGTERM)
    assert server.wait(timeout=grace + 20) == 0
    took = time.monotonic() - t0
    load.join(60)
    acked = load.snapshot()
    assert took < grace + 10
    assert not load.stream_finished, "SIGTERM did not land during the load"
    assert not load.item_errors
    # Calls in flight at SIGTERM finished; calls after it were refused as UNAVAILABLE
    # (retryable), never failed half-way with another status.
    assert {err.code for kind, err in load.errors if kind == "batch"} <= {Code.UNAVAILABLE}
    server.wait_for_log(r"stopped; all acknowledged writes are on disk", since=mark)

    server.restart()
    with dep.agency("pension-service", server.address) as pension:
        assert_still_issued(pension, acked["pension-service"])
        assert pension.health() == SERVING
    with dep.agency("tax-office", server.address) as tax:
        assert_still_issued(tax, acked["tax-office"])
    assert server.stop() == 0
