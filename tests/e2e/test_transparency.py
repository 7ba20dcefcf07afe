"""What the person sees (issue 13, docs/DISCLOSURE.md), end to end over mTLS on both
backends: holdings with dates and linkage records, exchange records naming the rule and
the published table version, GetPolicy for portal and auditor, and SIGHUP publishing a
new version that later records name.
"""

from __future__ import annotations

import signal
from pathlib import Path

from helpers import NumberSource, StartServer
from helpers.deployments import TEST_POLICY
from helpers.waiting import wait_until
from symbolsvc_client.clients import CallError

from symbolsvc.policytable import parse
from symbolsvc.v1 import disclosure_service_pb2 as pb
from symbolsvc.v1 import disclosure_service_pb2_grpc as pb_grpc

OFFICE, ITEM = "survivor-pension", "resident-tax-income"
NEW_RULE = """
[[allow]]
id = "tax-check"
requester = "city-minato"
office_work = "resident-tax"
info_item = "national-tax-income"
providers = ["tax-office"]
purpose = "To assess resident tax."
basis = "Local Tax Act art. 294"
"""


def test_holdings_linkage_rules_and_published_tables(
        fresh_deployment: Path, start_server: StartServer, numbers: NumberSource) -> None:
    server = start_server(fresh_deployment, {"access_log": {"integrate_interval_ms": 50}})
    dep = server.deployment
    portal, broker, auditor = dep.portal(server.address), dep.broker(server.address), \
        dep.auditor(server.address)
    agencies = {a: dep.agency(a, server.address)
                for a in ("pension-service", "city-chiyoda", "city-minato", "tax-office")}
    try:
        number = numbers.one()
        me = portal.agency.issue(number).symbol
        pension = agencies["pension-service"].issue(number).symbol
        chiyoda = agencies["city-chiyoda"].issue(number).symbol
        assert agencies["city-chiyoda"].issue(number).newly_registered is False  # no record

        # ListHoldings: every linked agency with its date; a release shows at once.
        held = {h.agency: h for h in portal.list_holdings(me).holdings}
        assert set(held) == {"portal", "pension-service", "city-chiyoda"}
        assert all(h.HasField("since") and not h.released for h in held.values())
        assert agencies["city-chiyoda"].release(chiyoda) is True
        held = {h.agency: h for h in portal.list_holdings(me).holdings}
        assert held["city-chiyoda"].released and held["city-chiyoda"].HasField("released_at")
        assert not held["pension-service"].released

        # Exchanges name the rule and the published version; GetPolicy returns that table.
        chiyoda = agencies["city-chiyoda"].issue(number).symbol
        broker.translate("pension-service", pension, "city-chiyoda", OFFICE, ITEM, "x-1")
        broker.resolve("pension-service", pension, OFFICE, ITEM, "x-2")
        records = portal.all_records(me)
        kinds = [r.kind for r in records]
        assert kinds.count(pb.ACCESS_KIND_ISSUE) == 4  # portal, pension, chiyoda twice
        assert kinds.count(pb.ACCESS_KIND_RELEASE) == 1
        release = next(r for r in records if r.kind == pb.ACCESS_KIND_RELEASE)
        assert release.requester_agency == "city-chiyoda" and not release.exchange_id
        exchanges = [r for r in records
                     if r.kind in (pb.ACCESS_KIND_TRANSLATE, pb.ACCESS_KIND_RESOLVE)]
        assert len(exchanges) == 2
        first = portal.get_policy()
        assert {r.policy_version for r in exchanges} == {first.version}
        table = parse(first.canonical_table)
        for r in exchanges:
            rule = table.rule(r.rule)
            assert rule is not None and rule.matches(r.requester_agency, OFFICE, ITEM)
        assert portal.get_policy(first.version).canonical_table == first.canonical_table
        # The auditor may read published tables too; a never-published one is NOT_FOUND.
        stub = pb_grpc.DisclosureServiceStub(auditor.channel)
        got = stub.GetPolicy(pb.GetPolicyRequest(version=first.version), timeout=10)
        assert got.record_id == first.record_id
        try:
            portal.get_policy("0" * 64)
            raise AssertionError("an unknown version was served")
        except CallError as err:
            assert err.reason == "NO_SUCH_POLICY"

        # SIGHUP with a changed table: a new POLICY record, and new records name it.
        (fresh_deployment / "policy.toml").write_text(TEST_POLICY + NEW_RULE)
        mark = server.log_size()
        server.signal(signal.SIGHUP)
        server.wait_for_log(r"permission table reloaded", since=mark)
        second = portal.get_policy()
        assert second.version != first.version and second.record_id > first.record_id
        minato = agencies["city-minato"].issue(number).symbol
        agencies["tax-office"].issue(number)
        broker.translate("city-minato", minato, "tax-office", "resident-tax",
                         "national-tax-income", "x-3")
        newest = portal.list_records(me, 1).records[0]
        assert (newest.policy_version, newest.rule) == (second.version, "tax-check")
        assert newest.purpose == "To assess resident tax."
        assert newest.basis == "Local Tax Act art. 294"
        assert "city-minato" in {h.agency for h in portal.list_holdings(me).holdings}
        wait_until(lambda: all(r.integrated for r in portal.all_records(me)), 20,
                   "records integrated")
    finally:
        for c in (portal, broker, auditor, *agencies.values()):
            c.close()
    assert server.stop() == 0
