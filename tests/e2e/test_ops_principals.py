"""Principals over time, end to end over mTLS on a serving deployment (issue 12, item 1).

``symbolsvc agency add`` / ``principal add`` / ``cert reissue`` / ``cert revoke`` /
``agency remove`` run as real commands against the deployment a real server serves; SIGHUP
makes the server take them up with no restart, and no existing symbol changes.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from helpers import Clients, NumberSource, ServerProcess, StartServer, call_error
from symbolsvc_client import Deployment

from symbolsvc.config import load_config
from symbolsvc.revoked import read_entries

_xid = itertools.count(1)

NEW = "city-shinagawa"
NEW_RULES = f"""
[[allow]]
requester   = "{NEW}"
office_work = "resident-tax"
info_item   = "national-tax-income"
providers   = ["tax-office"]

[[allow]]
requester   = "tax-office"
office_work = "tax-investigation"
info_item   = "resident-record"
providers   = ["{NEW}"]
"""


def symbolsvc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "symbolsvc", *args], capture_output=True,
                          text=True, timeout=120, check=False)


def hup(server: ServerProcess) -> None:
    """SIGHUP, then wait until the server says it reloaded (the log line, not a sleep)."""
    since = server.log_size()
    server.signal(signal.SIGHUP)
    server.wait_for_log(r"principals reloaded|principals NOT reloaded", since=since)


def translate(clients: Clients, requester: str, symbol: str, provider: str, office_work: str,
              info_item: str) -> str:
    return clients.broker().translate(requester, symbol, provider, office_work, info_item,
                                      f"ops-{next(_xid)}").provider_symbol


def client_copy(directory: Path, name: str, dst: Path) -> Deployment:
    """A client-side copy of NAME's current key pair (what the agency holds)."""
    (dst / "pki").mkdir(parents=True)
    for f in ("ca.crt", f"{name}.crt", f"{name}.key"):
        shutil.copy(directory / "pki" / f, dst / "pki" / f)
    return Deployment(dst)


def test_agency_joins_a_serving_deployment_and_takes_part_in_translations(
        fresh_deployment: Path, start_server: StartServer, tmp_path: Path) -> None:
    d = fresh_deployment
    config = d / "config.toml"
    server = start_server(d)
    clients = Clients(Deployment(d), server.address)
    numbers = NumberSource()
    people = numbers.many(5)
    try:
        before = {n: clients.agency("tax-office").issue(n).symbol for n in people}
        chiyoda = {n: clients.agency("city-chiyoda").issue(n).symbol for n in people}

        added = symbolsvc("agency", "add", "--config", str(config), NEW)
        assert added.returncode == 0, added.stderr
        assert "SIGHUP" in added.stdout
        assert (d / "pki" / f"{NEW}.crt").exists()
        assert os.stat(d / "pki" / f"{NEW}.key").st_mode & 0o777 == 0o600
        # its HPKE pair for blind translation (docs/BLIND_TRANSLATION.md)
        assert os.stat(d / "pki" / f"{NEW}.hpke.key").st_mode & 0o777 == 0o600
        assert (d / "pki" / f"{NEW}.hpke.pub").read_text().startswith("symbolsvc-hpke-v1 ")
        assert NEW in load_config(config).principals
        # Adding it twice is refused, with nothing changed.
        again = symbolsvc("agency", "add", "--config", str(config), NEW)
        assert again.returncode == 2 and "already" in again.stderr

        # Not yet a principal of the running server: refused until SIGHUP.
        err = call_error(clients.agency(NEW).issue, people[0])
        assert err.code == grpc.StatusCode.UNAUTHENTICATED
        with (d / "policy.toml").open("a") as f:
            f.write(NEW_RULES)
        hup(server)

        issued = clients.agency(NEW).issue(people[0])
        assert issued.newly_registered
        there = translate(clients, NEW, issued.symbol, "tax-office", "resident-tax",
                          "national-tax-income")
        assert there == before[people[0]]
        theirs = clients.agency(NEW).issue(people[1]).symbol
        back = translate(clients, "tax-office", before[people[1]], NEW, "tax-investigation",
                         "resident-record")
        assert back == theirs
        # Existing symbols unchanged, existing holdings still held.
        for n in people:
            again_tax = clients.agency("tax-office").issue(n)
            assert again_tax.symbol == before[n] and not again_tax.newly_registered
            assert clients.agency("city-chiyoda").issue(n).symbol == chiyoda[n]
        assert server.running and len(server.returncodes) == 0

        # A second auditor, added the same way.
        assert symbolsvc("principal", "add", "--config", str(config), "--role", "auditor",
                         "auditor-2").returncode == 0
        hup(server)
        note = clients.auditor("auditor-2").checkpoint()
        assert note.startswith(load_config(config).log_origin + "\n")
    finally:
        clients.close()


def test_reissue_and_revoke_refuse_the_old_certificate(
        fresh_deployment: Path, start_server: StartServer, tmp_path: Path) -> None:
    """Needs the server to enforce ``[tls] revoked`` (refusal: UNAUTHENTICATED,
    CERTIFICATE_REVOKED)."""
    d = fresh_deployment
    config = d / "config.toml"
    server = start_server(d)
    number = NumberSource().one()
    old = client_copy(d, "city-minato", tmp_path / "old-minato")
    old_client = old.agency("city-minato", server.address)
    fresh_clients = Clients(Deployment(d), server.address)
    try:
        symbol = old_client.issue(number).symbol
        reissued = symbolsvc("cert", "reissue", "--config", str(config), "city-minato")
        assert reissued.returncode == 0, reissued.stderr
        entries = read_entries(d / "pki" / "revoked.txt")
        assert len(entries) == 2
        assert {e.split(":")[0] for e in entries} == {"sha256", "serial"}
        hup(server)
        err = call_error(old_client.issue, number)
        assert err.code == grpc.StatusCode.UNAUTHENTICATED
        assert err.reason == "CERTIFICATE_REVOKED"
        # The new certificate is the same identity: the same symbol.
        again = fresh_clients.agency("city-minato").issue(number)
        assert again.symbol == symbol and not again.newly_registered

        # Revoke the current one too: then no certificate of city-minato works.
        revoked = symbolsvc("cert", "revoke", "--config", str(config), "city-minato")
        assert revoked.returncode == 0 and "SIGHUP" in revoked.stdout
        assert len(read_entries(d / "pki" / "revoked.txt")) == 4
        hup(server)
        current = Deployment(d).agency("city-minato", server.address)
        try:
            assert call_error(current.issue, number).reason == "CERTIFICATE_REVOKED"
        finally:
            current.close()
        # Other principals are unaffected.
        assert fresh_clients.agency("city-chiyoda").issue(number).symbol
    finally:
        old_client.close()
        fresh_clients.close()


def test_agency_remove_refuses_while_it_holds_symbols(
        fresh_deployment: Path, start_server: StartServer) -> None:
    d = fresh_deployment
    config = d / "config.toml"
    server = start_server(d)
    clients = Clients(Deployment(d), server.address)
    numbers = NumberSource().many(3)
    try:
        for n in numbers:
            clients.agency("city-minato").issue(n)
        refused = symbolsvc("agency", "remove", "--config", str(config), "city-minato")
        assert refused.returncode == 2
        assert "holds 3 symbols" in refused.stderr and "--release-all" in refused.stderr
        assert "city-minato" in load_config(config).principals

        removed = symbolsvc("agency", "remove", "--config", str(config), "city-minato",
                            "--release-all")
        assert removed.returncode == 0, removed.stderr
        assert "released 3 holdings" in removed.stdout
        assert "city-minato" not in load_config(config).principals
        assert not (d / "pki" / "city-minato.key").exists()
        assert not (d / "pki" / "city-minato.hpke.key").exists()
        hup(server)
        # The policy still names it: the reload says so.
        assert "city-minato" in server.wait_for_log(r"no principal has: .*")
        err = call_error(clients.agency("city-minato").issue, numbers[0])
        assert err.code == grpc.StatusCode.UNAUTHENTICATED
        check = symbolsvc("policy", "check", "--strict", str(d / "policy.toml"))
        assert check.returncode == 2 and "city-minato" in check.stderr
    finally:
        clients.close()


def test_refusals_change_nothing(deployment_template: Path, tmp_path: Path) -> None:
    d = tmp_path / "dep"
    shutil.copytree(deployment_template, d)
    config = str(d / "config.toml")
    before = {p: p.read_bytes() for p in d.rglob("*") if p.is_file()}
    for args, says in (
            (["agency", "add", "--config", config, "server"], "reserved"),
            (["agency", "add", "--config", config, "City-Minato"], "invalid"),
            (["agency", "add", "--config", config, "city-minato"], "already"),
            (["agency", "add", "--config", config, "x-1", "x-1"], "twice"),
            (["principal", "add", "--config", config, "--role", "auditor", "city-minato"],
             "exists already"),
            (["cert", "revoke", "--config", config, "server"], "cert reissue"),
            (["cert", "revoke", "--config", config, "nobody"], "no principal 'nobody'"),
            (["cert", "reissue", "--config", config, "ca"], "no principal 'ca'"),
            (["agency", "remove", "--config", config, "broker"], "no agency 'broker'")):
        proc = symbolsvc(*args)
        assert proc.returncode == 2, (args, proc)
        assert proc.stderr.count("\n") == 1 and says in proc.stderr, (args, proc.stderr)
    assert {p: p.read_bytes() for p in d.rglob("*") if p.is_file()} == before

    # The server's certificate is reissued like any other (the server takes it at restart).
    old = (d / "pki" / "server.crt").read_bytes()
    assert symbolsvc("cert", "reissue", "--config", config, "server").returncode == 0
    assert (d / "pki" / "server.crt").read_bytes() != old
    assert os.stat(d / "pki" / "server.key").st_mode & 0o777 == 0o600
