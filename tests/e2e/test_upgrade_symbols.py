"""UpgradeSymbols' contract on the shared server (one key version) and the [keys] settings.

Rotation itself is exercised end to end in tests/test_key_rotation.py; here: the batch
limits, per-item errors, idempotence on current symbols, the role check, and the
configuration's one-line errors for the key provider.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from helpers import Clients, NumberSource, ServerProcess, call_error, config_with

from symbolsvc.cli import main as symbolsvc_main

Code = grpc.StatusCode


def test_upgrade_symbols_per_item(clients: Clients, numbers: NumberSource) -> None:
    agency = clients.agency("city-chiyoda")
    held = agency.issue(numbers.one()).symbol
    released = agency.issue(numbers.one()).symbol
    agency.release(released)
    other = clients.agency("city-minato").issue(numbers.one()).symbol
    results = agency.upgrade([held, released, other, "k9." + "a" * 52, "k1.x", held])
    assert results[0].symbol == held and results[5].symbol == held  # current: unchanged
    reasons = [r.error.reason for r in results[1:5]]
    assert reasons == ["NOT_HOLDING", "NOT_HOLDING", "UNKNOWN_KEY_VERSION", "BAD_SYMBOL"]
    assert [r.error.field for r in results[1:5]] == [f"symbols[{i}]" for i in range(1, 5)]
    assert agency.upgrade([released])[0].error.reason == "NOT_HOLDING"  # never revived
    assert agency.issue(numbers.one()).newly_registered


@pytest.mark.parametrize(("count", "reason"), [(0, "EMPTY_BATCH"), (1001, "BATCH_TOO_LARGE")])
def test_upgrade_symbols_batch_limits(clients: Clients, count: int, reason: str) -> None:
    err = call_error(clients.agency("city-chiyoda").upgrade, ["k1." + "a" * 52] * count)
    assert (err.code, err.reason) == (Code.INVALID_ARGUMENT, reason)


def test_upgrade_symbols_needs_the_agency_role(server: ServerProcess) -> None:
    broker_as_agency = server.deployment.agency("broker", server.address)
    err = call_error(broker_as_agency.upgrade, ["k1." + "a" * 52])
    assert err.code == Code.PERMISSION_DENIED
    broker_as_agency.close()


@pytest.mark.parametrize(("keys", "message"), [
    ({"provider": "vault"}, "[keys] provider must be one of file, pkcs11"),
    ({"provider": "pkcs11"}, "[keys] pkcs11_module is required with provider = \"pkcs11\""),
    ({"provider": "pkcs11", "pkcs11_module": "x.so"}, "[keys] token_label is required"),
])
def test_key_provider_settings_are_checked(deployment_template: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str],
                                           keys: dict[str, str], message: str) -> None:
    config = config_with(deployment_template / "config.toml", {"keys": keys}, tmp_path.name)
    try:
        assert symbolsvc_main(["keys", "status", "--config", str(config)]) == 2
    finally:
        config.unlink()
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
