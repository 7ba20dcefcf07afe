"""Pages bounded by bytes (issue 10 item 7): resolutions naming 121 holders.

Each resolution's leaf names every one of 121 permitted holders (agency ids of 62
characters: about 7.7 KB a leaf), so 560 of them weigh about 4.3 MB, more than gRPC's
4 MiB message limit: a ListEntries page of 1,000 leaves could not be sent and
``audit verify`` failed every time. Pages now stop at ``symbolsvc.paging.PAGE_BYTES`` of
leaves, ``audit verify`` pages on, and ListAccessRecords pages likewise.

SQLite only: the bound is applied above the storage (log/service.py, disclosure.py), the
same code on both backends, and the set-up (122 agencies' certificates, 560 resolutions)
is the expensive part.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import Clients, NumberSource, StartServer, init_deployment_cli, wait_until
from symbolsvc_client import CallError

from symbolsvc.cli import main
from symbolsvc.paging import PAGE_BYTES

HOLDERS = [f"municipality-{i:03d}-with-a-deliberately-long-agency-identifier-xx"
           for i in range(121)]
RESOLUTIONS = 560
POLICY = """\
[groups]
holders = [{holders}]

[[allow]]
requester   = "pension-service"
office_work = "survivor-pension"
info_item   = "resident-tax-income"
providers   = ["@holders"]
"""


@pytest.mark.sqlite_only("the byte bound is above the storage; the set-up is the cost")
def test_pages_of_large_leaves_fit_and_audit_verifies(
        tmp_path: Path, start_server: StartServer, numbers: NumberSource,
        capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "dep"
    init_deployment_cli(directory, [*HOLDERS, "pension-service"])
    (directory / "policy.toml").write_text(
        POLICY.format(holders=", ".join(f'"{h}"' for h in HOLDERS)))
    server = start_server(directory, {"access_log": {"integrate_interval_ms": 50}})
    clients = Clients(server.deployment, server.address)
    try:
        n = numbers.one()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda a: clients.agency(a).issue(n), HOLDERS))
            requester = clients.agency("pension-service").issue(n).symbol
            portal_symbol = clients.portal().agency.issue(n).symbol
            broker = clients.broker()
            replies = list(pool.map(lambda _: broker.resolve(
                "pension-service", requester, "survivor-pension", "resident-tax-income",
                f"wide-{uuid.uuid4()}"), range(RESOLUTIONS)))
        assert all(len(r.provider_agencies) == len(HOLDERS) for r in replies)
        auditor = clients.auditor()

        def size() -> int:
            try:
                note = auditor.checkpoint()
            except CallError:
                return -1
            return int(note.splitlines()[1])

        wait_until(lambda: size() >= RESOLUTIONS, 120, f"a checkpoint of {RESOLUTIONS} leaves")
        page = auditor.entries(0, RESOLUTIONS)
        leaf_bytes = [len(e.leaf) for e in page]
        assert 1 < len(page) < RESOLUTIONS and min(leaf_bytes) > 7000
        assert sum(leaf_bytes) <= PAGE_BYTES
        rc = main(["audit", "verify", "--deployment", str(directory), "--target",
                   server.address, "--as", "auditor"])
        out, err = capsys.readouterr()
        assert rc == 0, err
        assert f"{RESOLUTIONS} leaves" in out

        portal = clients.portal()
        first = portal.list_records(portal_symbol, 500)
        assert 1 < len(first.records) < 500 and first.next_page_token
        assert sum(len(r.SerializeToString()) for r in first.records) <= 2 * PAGE_BYTES
        assert len(portal.all_records(portal_symbol)) == RESOLUTIONS
    finally:
        clients.close()
