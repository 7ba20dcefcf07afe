"""Backup while serving under load, restore into a fresh deployment, serve it (issue 12, item 7).

The load is open-ended (it runs until told to stop), and the backup starts only after the
load has had writes acknowledged, so "the backup happens during the load" holds by
construction. Every symbol acknowledged before the backup started must be in the restored
copy, and ``symbolsvc audit verify`` must pass on it. Both backends: SQLite through the
online backup API, PostgreSQL through pg_dump/pg_restore.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import (
    Clients,
    NumberSource,
    Registries,
    StartServer,
    copy_deployment,
    registry_backend,
    wait_until,
)
from symbolsvc_client import Deployment
from symbolsvc_client.ids import new_id

from symbolsvc.log.checkpoint import verify_note


def symbolsvc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "symbolsvc", *args], capture_output=True,
                          text=True, timeout=300, check=False)


class Load:
    """Issue batches of new numbers until stopped; remembers what was acknowledged."""

    def __init__(self, clients: Clients, agency: str) -> None:
        self.client = clients.agency(agency)
        self.numbers = NumberSource()
        self.acked: dict[str, str] = {}
        self.lock = threading.Lock()
        self.first = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                batch = self.numbers.many(50)
                results = self.client.issue_batch(batch)
                with self.lock:
                    for n, r in zip(batch, results, strict=True):
                        self.acked[n] = r.issued.symbol
                self.first.set()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            self.first.set()

    def snapshot(self) -> dict[str, str]:
        with self.lock:
            return dict(self.acked)


def make_records(clients: Clients, numbers: list[str], symbols: dict[str, str]) -> None:
    """Translations (so the access log has records), then wait for a checkpoint covering
    them: the backup then has a signed tree to carry."""
    for i, n in enumerate(numbers):  # an exchange id never carries the number itself
        clients.agency("tax-office").issue(n)
        clients.broker().translate("city-chiyoda", symbols[n], "tax-office", "resident-tax",
                                   "national-tax-income", f"bk-{i}-{new_id()}")

    def size() -> int:
        return int(clients.auditor().checkpoint().split("\n")[1])

    wait_until(lambda: size() >= len(numbers), 30, "a checkpoint covering the records")


def test_backup_under_load_restores_every_acknowledged_symbol(
        fresh_deployment: Path, start_server: StartServer, registries: Registries,
        tmp_path: Path) -> None:
    d = fresh_deployment
    server = start_server(d)
    clients = Clients(Deployment(d), server.address)
    numbers = NumberSource().many(100)
    load = Load(clients, "city-minato")
    try:
        before = {n: r.issued.symbol for n, r in
                  zip(numbers, clients.agency("city-chiyoda").issue_batch(numbers), strict=True)}
        make_records(clients, numbers[:20], before)
        load.thread.start()
        assert load.first.wait(60) and load.error is None, load.error
        from_load = load.snapshot()
        acked_before = {**before, **from_load}

        out = tmp_path / "backup"
        made = symbolsvc("backup", "--config", str(d / "config.toml"), str(out))
        assert made.returncode == 0, made.stderr
        # The load ran before the backup started and still runs after it ended.
        wait_until(lambda: len(load.snapshot()) > len(from_load) or load.error, 60,
                   "the load to go on")
        load.stop.set()
        load.thread.join(60)
        assert load.error is None, load.error
    finally:
        load.stop.set()
        clients.close()
    server.stop()

    manifest = json.loads((out / "manifest.json").read_text())
    backend = registry_backend(d)
    assert manifest["format"] == "symbolsvc-backup/v1" and manifest["backend"] == backend
    assert manifest["schema_version"] >= 2
    assert manifest["live_holdings"] >= len(acked_before)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o700
    for f in out.iterdir():
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
    vkey = (d / "pki" / "log.vkey").read_text().strip()
    verify_note(manifest["checkpoint"], vkey)
    assert manifest["tree_size"] >= manifest["checkpoint_tree_size"] >= 20

    # Restore into a fresh deployment directory (same keys and PKI, no data) and serve it.
    d2 = registries.provision(copy_deployment(d, tmp_path / "restored"))
    restored = symbolsvc("restore", "--config", str(d2 / "config.toml"), str(out))
    assert restored.returncode == 0, restored.stderr
    assert "announced" in restored.stdout
    again = symbolsvc("restore", "--config", str(d2 / "config.toml"), str(out))
    assert again.returncode == 2 and "never overwrites" in again.stderr

    server2 = start_server(d2)
    clients2 = Clients(Deployment(d2), server2.address)
    try:
        busy = symbolsvc("restore", "--replace", "--config", str(d2 / "config.toml"), str(out))
        assert busy.returncode == 2 and "stop" in busy.stderr
        for agency, symbols in (("city-chiyoda", before),
                                ("city-minato", {n: s for n, s in acked_before.items()
                                                 if n not in before})):
            items = list(symbols.items())
            for start in range(0, len(items), 500):
                chunk = items[start:start + 500]
                results = clients2.agency(agency).issue_batch([n for n, _ in chunk])
                for (_, symbol), r in zip(chunk, results, strict=True):
                    assert r.issued.symbol == symbol
                    assert not r.issued.newly_registered, \
                        "a symbol acknowledged before the backup is missing from the copy"
        verified = symbolsvc("audit", "verify", "--deployment", str(d2), "--target",
                             server2.address)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        clients2.close()


@pytest.mark.sqlite_only("corrupts the SQLite copy's file")
def test_restore_refuses_an_altered_backup_or_another_deployments(
        fresh_deployment: Path, start_server: StartServer, deployment_template: Path,
        tmp_path: Path, backend: str) -> None:
    d = fresh_deployment
    server = start_server(d)
    clients = Clients(Deployment(d), server.address)
    try:
        n = NumberSource().one()
        make_records(clients, [n], {n: clients.agency("city-chiyoda").issue(n).symbol})
    finally:
        clients.close()
    server.stop()
    out = tmp_path / "backup"
    assert symbolsvc("backup", "--config", str(d / "config.toml"), str(out)).returncode == 0
    refused = symbolsvc("backup", "--config", str(d / "config.toml"), str(out))
    assert refused.returncode == 2 and "never overwrites" in refused.stderr

    altered = tmp_path / "altered"
    shutil.copytree(out, altered)
    with (altered / "registry.db").open("r+b") as f:
        f.seek(200)
        f.write(b"\xff")
    target = copy_deployment(d, tmp_path / "t1")
    proc = symbolsvc("restore", "--config", str(target / "config.toml"), str(altered))
    assert proc.returncode == 2 and "altered" in proc.stderr
    assert not (target / "data" / "registry.db").exists()

    # A deployment with other keys: the backup's checkpoint does not verify under its key.
    other = tmp_path / "other"
    subprocess.run([sys.executable, "-m", "symbolsvc", "init", str(other), "--agency",
                    "city-chiyoda"], check=True, capture_output=True, timeout=120)
    proc = symbolsvc("restore", "--config", str(other / "config.toml"), str(out))
    assert proc.returncode == 2 and "another deployment" in proc.stderr
    assert not (other / "data" / "registry.db").exists()
