"""Symbol-key rotation end to end (docs/KEYS.md, "Rotation"), on both registry backends.

Translations run on a thread through `symbolsvc keys rotate` and SIGHUP and none fails; an
old-version requester symbol still translates; IssueSymbol moves a holding to the current
version (newly_registered false); UpgradeSymbols returns what IssueSymbol now returns;
`keys retire` refuses while a holding uses the version, succeeds once every holding moved,
and the old symbols then fail with KEY_VERSION_RETIRED.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path

import grpc
from conftest import StartServer
from helpers import Clients, NumberSource, ServerProcess, call_error, wait_until
from symbolsvc_client import CallError, Deployment

Code = grpc.StatusCode
RULE = ("city-chiyoda", "tax-office", "resident-tax", "national-tax-income")


def keys_cli(config: Path, *args: str, env: Mapping[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "symbolsvc", "keys", args[0], "--config",
                           str(config), *args[1:]], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def symbolctl(dep: Path, server: ServerProcess, *args: str, stdin: str = ""
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "symbolsvc_client.cli", "--deployment", str(dep),
                           "--target", server.address, *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def reload(server: ServerProcess, pattern: str) -> None:
    mark = server.log_size()
    server.signal(signal.SIGHUP)
    server.wait_for_log(pattern, since=mark, timeout=30)


class Translations:
    """Allowed translations in a loop on a thread, with the requester's v1 symbol; each answer
    must be one of the provider's valid symbols."""

    def __init__(self, dep: Deployment, address: str, symbol: str, expect: set[str]) -> None:
        self.broker = dep.broker(address)
        self.symbol, self.expect = symbol, expect
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                r = self.broker.translate(RULE[0], self.symbol, RULE[1], RULE[2], RULE[3],
                                          f"load-{uuid.uuid4()}")
                if r.provider_symbol not in self.expect:
                    self.failures.append(f"unexpected provider symbol {r.provider_symbol}")
                self.ok += 1
            except CallError as err:
                self.failures.append(f"{err.code.name} {err.reason}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.broker.close()


def test_rotation_upgrade_and_retirement_under_load(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource) -> None:
    server = start_server(fresh_deployment)
    dep = Deployment(fresh_deployment)
    c = Clients(dep, server.address)
    n, other = numbers.one(), numbers.one()
    v1 = {a: c.agency(a).issue(n).symbol for a in (RULE[0], RULE[1])}
    v1_other = c.agency(RULE[0]).issue(other).symbol
    assert all(s.startswith("k1.") for s in [*v1.values(), v1_other])

    def translate(symbol: str) -> str:
        return c.broker().translate(RULE[0], symbol, RULE[1], RULE[2], RULE[3],
                                    f"x-{uuid.uuid4()}").provider_symbol

    traffic = Translations(dep, server.address, v1[RULE[0]], {v1[RULE[1]]})
    try:
        wait_until(lambda: traffic.ok >= 10, 20, "translations before the rotation")
        rotated = keys_cli(server.config, "rotate")
        assert rotated.returncode == 0, rotated.stderr
        assert "version 2 added" in rotated.stdout
        reload(server, r"keyring reloaded: symbol key version 2 current")
        ok = traffic.ok
        wait_until(lambda: traffic.ok > ok + 10, 20, "translations after SIGHUP")
        assert traffic.failures == []
        traffic.expect.add("")  # filled in below, once the provider has moved

        # IssueSymbol answers under version 2 and moves the holding: not newly registered.
        issued = c.agency(RULE[0]).issue(n)
        assert issued.symbol.startswith("k2.") and issued.key_version == 2
        assert not issued.newly_registered
        # The requester's old symbol still translates; the provider has not moved yet.
        assert translate(v1[RULE[0]]) == v1[RULE[1]]
        assert translate(issued.symbol) == v1[RULE[1]]

        # The provider upgrades: the symbol UpgradeSymbols returns is IssueSymbol's.
        (up,) = c.agency(RULE[1]).upgrade([v1[RULE[1]]])
        assert up.WhichOneof("outcome") == "symbol" and up.symbol.startswith("k2.")
        traffic.expect.add(up.symbol)
        again = c.agency(RULE[1]).issue(n)
        assert (again.symbol, again.newly_registered) == (up.symbol, False)
        # A translation now returns the provider's symbol at the version it holds.
        assert translate(v1[RULE[0]]) == up.symbol
        # Upgrading is idempotent, per item, and refuses what the caller does not hold.
        results = c.agency(RULE[1]).upgrade([up.symbol, v1[RULE[1]], v1_other, "k1.bad"])
        assert [r.symbol for r in results[:2]] == [up.symbol, up.symbol]
        assert (results[2].error.reason, results[3].error.reason) == ("NOT_HOLDING",
                                                                      "BAD_SYMBOL")
        ok = traffic.ok
        wait_until(lambda: traffic.ok > ok + 10, 20, "translations after the upgrades")
    finally:
        traffic.stop()
    assert traffic.failures == []

    # Retirement is refused while any holding uses version 1 (here: `other` at city-chiyoda).
    status = keys_cli(server.config, "status")
    assert status.returncode == 0, status.stderr
    row = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:3]}
    assert row["1"][1:3] == ["accepted", "1"] and row["2"][1:3] == ["current", "2"]
    refused = keys_cli(server.config, "retire", "1")
    assert refused.returncode == 2
    assert "1 holding(s) still use it" in refused.stderr

    # symbolctl upgrade moves the rest (reading symbols from stdin), then retire succeeds.
    up = symbolctl(fresh_deployment, server, "--as", RULE[0], "upgrade", "-", stdin=v1_other)
    assert up.returncode == 0, up.stderr
    (line,) = [json.loads(x) for x in up.stdout.splitlines()]
    assert (line["status"], line["symbol"]) == ("upgraded", v1_other)
    assert line["upgraded_symbol"] == c.agency(RULE[0]).issue(other).symbol
    retired = keys_cli(server.config, "retire", "1")
    assert retired.returncode == 0, retired.stderr
    reload(server, r"keyring reloaded: symbol key version 2 current, versions 2 accepted")

    err = call_error(translate, v1[RULE[0]])
    assert (err.code, err.reason) == (Code.INVALID_ARGUMENT, "KEY_VERSION_RETIRED")
    assert translate(issued.symbol) == traffic_symbol(traffic)
    err = call_error(c.agency(RULE[0]).release, v1_other)
    assert err.reason == "KEY_VERSION_RETIRED"
    (res,) = c.agency(RULE[0]).upgrade([v1_other])
    assert res.error.reason == "KEY_VERSION_RETIRED"
    # Nothing of version 1 is left in the registry: the moved rows went with the key.
    status = keys_cli(server.config, "status")
    assert status.stdout.splitlines()[1].split()[:5] == ["1", "retired", "0", "0", "0"]
    c.close()


def traffic_symbol(traffic: Translations) -> str:
    (symbol,) = [s for s in traffic.expect if s.startswith("k2.")]
    return symbol


def test_release_by_an_old_symbol_ends_the_moved_holding(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource) -> None:
    server = start_server(fresh_deployment)
    c = Clients(Deployment(fresh_deployment), server.address)
    n = numbers.one()
    old = {a: c.agency(a).issue(n).symbol for a in (RULE[0], RULE[1])}
    assert keys_cli(server.config, "rotate").returncode == 0
    reload(server, r"keyring reloaded: symbol key version 2 current")
    new = c.agency(RULE[1]).issue(n).symbol
    # Releasing the provider's OLD symbol ends the holding under both versions.
    assert c.agency(RULE[1]).release(old[RULE[1]]) is True
    assert c.agency(RULE[1]).release(new) is False
    err = call_error(c.broker().translate, RULE[0], old[RULE[0]], RULE[1], RULE[2], RULE[3], "r")
    assert err.reason == "PROVIDER_NOT_HOLDING"
    # Issuing again re-creates it, under the current version, for both symbols.
    again = c.agency(RULE[1]).issue(n)
    assert (again.symbol, again.newly_registered) == (new, True)
    assert c.broker().translate(RULE[0], old[RULE[0]], RULE[1], RULE[2], RULE[3],
                                "r2").provider_symbol == new
    # A resolution finds the provider whichever version the requester's symbol carries.
    for symbol in (old[RULE[0]], c.agency(RULE[0]).issue(n).symbol):
        r = c.broker().resolve(RULE[0], symbol, RULE[2], RULE[3], f"r3-{uuid.uuid4()}")
        assert list(r.provider_agencies) == [RULE[1]]
    c.close()
