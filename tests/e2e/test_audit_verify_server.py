"""``symbolsvc audit verify`` against real servers, on each registry backend: over gRPC as
the auditor, and (SQLite) on copies of the live database file. The verifier's logic on
hand-built logs is tested in tests/unit/test_audit_verify.py."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from symbolsvc_client.channel import Deployment

from symbolsvc.cli import main

E2E_LOG = {"access_log": {"integrate_interval_ms": 50, "lease_ms": 600}}


# The log after the first _translate: the permission table's POLICY record, two ISSUE
# records and 20 translations; the second adds two ISSUE records and 15 translations.
FIRST = 1 + 2 + 20
SECOND = FIRST + 2 + 15


def _translate(dep: Deployment, address: str, number: str, count: int, tag: str) -> None:
    """``count`` logged translations (TEST_POLICY of tests/helpers/deployments.py)."""
    requester, provider = "pension-service", "city-chiyoda"
    with dep.agency(requester, address) as req, dep.agency(provider, address) as prov, \
            dep.broker(address) as broker:
        symbol = req.issue(number).symbol
        provider_symbol = prov.issue(number).symbol
        for i in range(count):
            reply = broker.translate(requester, symbol, provider, "survivor-pension",
                                     "resident-tax-income", f"{tag}-{i}")
            assert reply.provider_symbol == provider_symbol


def _wait_for_checkpoint(dep: Deployment, address: str, size: int) -> None:
    import grpc
    from helpers import wait_until
    from symbolsvc_client.clients import CallError

    with dep.auditor(address) as auditor:
        def reached() -> bool:
            try:
                note = auditor.checkpoint()
            except CallError as err:
                if err.code != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                return False
            return int(note.split("\n")[1]) >= size

        wait_until(reached, 20, f"a checkpoint of {size} leaves")


def _backup(live: Path, dst: Path) -> Path:
    """A consistent copy of a live SQLite database through the backup API."""
    src = sqlite3.connect(f"file:{live}?mode=ro", uri=True, timeout=10)
    out = sqlite3.connect(dst)
    try:
        src.backup(out)
    finally:
        src.close()
        out.close()
    return dst


def _audit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["audit", "verify", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_e2e_real_server_over_grpc(
        fresh_deployment: Path, start_server: Any, numbers: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """On each registry backend: the live log verifies over gRPC, a grown log extends what
    was verified, and a server whose registry was rolled back to an earlier copy is caught."""
    from helpers import RegistrySnapshot

    server = start_server(fresh_deployment, E2E_LOG)
    dep = server.deployment
    grpc_state = tmp_path / "grpc-state.json"

    def remote() -> tuple[str, ...]:
        return ("--deployment", str(fresh_deployment), "--target", server.address,
                "--state", str(grpc_state))

    _translate(dep, server.address, numbers.one(), 20, "first")
    _wait_for_checkpoint(dep, server.address, FIRST)
    rc, out, err = _audit(capsys, *remote())
    assert rc == 0, err
    assert f"{FIRST} leaves" in out and "no earlier checkpoint" in out

    server.stop()
    earlier = RegistrySnapshot(fresh_deployment, tmp_path)  # the registry at FIRST leaves
    try:
        server.start()
        _translate(dep, server.address, numbers.one(), 15, "second")
        _wait_for_checkpoint(dep, server.address, SECOND)
        rc, out, err = _audit(capsys, *remote(), "--as", "auditor")
        assert rc == 0, err
        assert f"{SECOND} leaves" in out and f"extends the checkpoint of size {FIRST}" in out

        # The server itself rolled back to the earlier registry: the gRPC auditor notices.
        server.stop()
        earlier.restore()
        server.start()
        rc, _, err = _audit(capsys, *remote())
        assert rc == 1, err
        assert err.startswith(f"FAILED: rolled back: the latest checkpoint has size {FIRST}, "
                              f"smaller than the checkpoint of size {SECOND} verified before"), err
    finally:
        earlier.discard()


@pytest.mark.sqlite_only("audit verify --db reads a SQLite file; the test takes SQLite copies "
                         "of the live database (backup API), tampers with them and rolls "
                         "them back")
def test_e2e_real_server_on_sqlite_database_copies(
        fresh_deployment: Path, start_server: Any, numbers: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from helpers import registry_path

    server = start_server(fresh_deployment, E2E_LOG)
    dep, address = server.deployment, server.address
    live_db = registry_path(fresh_deployment)
    vkey = str(fresh_deployment / "pki" / "log.vkey")
    db_state = tmp_path / "db-state.json"

    _translate(dep, address, numbers.one(), 20, "first")
    _wait_for_checkpoint(dep, address, FIRST)
    earlier = _backup(live_db, tmp_path / "earlier.db")
    rc, out, err = _audit(capsys, "--db", str(earlier), "--vkey", vkey,
                          "--state", str(db_state))
    assert rc == 0, err
    assert f"{FIRST} leaves" in out

    _translate(dep, address, numbers.one(), 15, "second")
    _wait_for_checkpoint(dep, address, SECOND)
    later = _backup(live_db, tmp_path / "later.db")
    rc, out, err = _audit(capsys, "--db", str(later), "--vkey", vkey, "--state", str(db_state))
    assert rc == 0, err
    assert f"{SECOND} leaves" in out and f"extends the checkpoint of size {FIRST}" in out
    # The earlier copy, checked against what was verified since: a rollback.
    rc, _, err = _audit(capsys, "--db", str(earlier), "--vkey", vkey, "--state", str(db_state))
    assert rc == 1
    assert err.startswith(f"FAILED: rolled back: the latest checkpoint has size {FIRST}")

    # Tampered copies of the real database.
    def change_byte(c: sqlite3.Connection) -> None:
        (leaf,) = c.execute("SELECT leaf FROM access_records WHERE leaf_index = 7").fetchone()
        leaf = leaf[:9] + bytes([leaf[9] ^ 0xFF]) + leaf[10:]  # the time field
        c.execute("UPDATE access_records SET leaf = ? WHERE leaf_index = 7", (leaf,))

    cases = {
        "leaf 7: hash does not match tree node": change_byte,
        "leaf 12 missing": lambda c: c.execute(
            "DELETE FROM access_records WHERE leaf_index = 12"),
    }
    for message, tamper in cases.items():
        copy = shutil.copy(later, tmp_path / "tampered.db")
        conn = sqlite3.connect(copy, isolation_level=None)
        tamper(conn)
        conn.close()
        rc, _, err = _audit(capsys, "--db", str(copy), "--vkey", vkey)
        assert (rc, err) == (1, f"FAILED: {message}\n")
    copy = shutil.copy(later, tmp_path / "tampered.db")
    conn = sqlite3.connect(copy, isolation_level=None)
    (note,) = conn.execute("SELECT note FROM checkpoints WHERE tree_size = ?", (SECOND,)).fetchone()
    body, sig = note.rstrip("\n").rsplit(" ", 1)
    sig = sig[:10] + ("B" if sig[10] == "A" else "A") + sig[11:]
    conn.execute("UPDATE checkpoints SET note = ? WHERE tree_size = ?",
                 (f"{body} {sig}\n", SECOND))
    conn.close()
    rc, _, err = _audit(capsys, "--db", str(copy), "--vkey", vkey)
    assert rc == 1 and err.startswith(f"FAILED: checkpoint {SECOND}: bad signature"), err

    # The live database itself, at rest (file and WAL).
    server.stop()
    rc, out, err = _audit(capsys, "--db", str(live_db), "--vkey", vkey)
    assert rc == 0 and f"{SECOND} leaves" in out, err
