"""Deferred disclosure and the verifier's policy check, in process on a real SQLite
registry with an injectable clock (docs/DISCLOSURE.md).

A record made under a rule with ``withhold_days`` is in the tree at once (the auditor
sees it) but list, watch and proof keep it from the portal until its date; the watch
then delivers it exactly once. ``audit verify``'s ledger fails naming the leaf when a
record names a rule or a version the log never published.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from symbolsvc.core import Core, TranslateRequest
from symbolsvc.disclosure import DUE_STEP_US, Disclosure, WatchItem
from symbolsvc.errors import FailedPrecondition
from symbolsvc.keys import Keyring
from symbolsvc.log.integrate import planner
from symbolsvc.log.sequencer import LogNotifier
from symbolsvc.log.service import AccessLog
from symbolsvc.newrecords import policy_record
from symbolsvc.policy import Policy, PolicyHolder
from symbolsvc.policytable import DAY_US
from symbolsvc.publish import publish
from symbolsvc.records import AccessKind, AccessRecord
from symbolsvc.registry.sqlite import SqliteRegistry
from symbolsvc.symbols import Deriver
from symbolsvc.verify.errors import AuditFailure
from symbolsvc.verify.policies import PolicyLedger

POLICY = """
[[allow]]
id = "open"
requester = "pension-service"
office_work = "survivor-pension"
info_item = "resident-tax-income"
providers = ["city-a"]

[[allow]]
id = "investigation"
requester = "police"
office_work = "investigation"
info_item = "resident-record"
providers = ["city-a"]
purpose = "A criminal investigation."
basis = "Code of Criminal Procedure art. 197"
withhold_days = 30
"""
T0 = 1_767_225_600_000_000
N1 = "123456789018"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        self.now += 1
        return self.now


async def _integrate(registry: SqliteRegistry) -> None:
    await registry.integrate(1000, "test", 10_000, planner(lambda size, root: f"cp {size}"))


async def _take(it: AsyncIterator[WatchItem], n: int) -> list[WatchItem]:
    out: list[WatchItem] = []
    while len([i for i in out if i.record is not None]) < n:
        out.append(await asyncio.wait_for(anext(it), 30))
    return [i for i in out if i.record is not None]


def test_withheld_records_reach_the_portal_only_after_their_date(tmp_path: Path) -> None:
    async def scenario() -> None:
        (tmp_path / "policy.toml").write_text(POLICY)
        holder = PolicyHolder(tmp_path / "policy.toml")
        deriver = Deriver(Keyring.generate())
        registry = SqliteRegistry(tmp_path / "r.db")
        clock = Clock()
        core = Core(deriver, registry, holder, clock_us=clock)
        notifier = LogNotifier()
        disclosure = Disclosure(deriver, registry, registry, AccessLog(registry), notifier,
                                poll_seconds=0.05, clock_us=clock)
        try:
            await publish(registry, holder.current, clock)
            me = (await core.issue("portal", N1)).symbol
            police = (await core.issue("police", N1)).symbol
            pension = (await core.issue("pension-service", N1)).symbol
            await core.issue("city-a", N1)
            held = await core.translate(TranslateRequest(
                "police", police, "city-a", "investigation", "resident-record", "inv-1"))
            await core.translate(TranslateRequest(
                "pension-service", pension, "city-a", "survivor-pension",
                "resident-tax-income", "open-1"))
            await _integrate(registry)
            # The auditor's view: the withheld record is in the tree with its date.
            leaves = [AccessRecord.decode(leaf) for _, leaf in await registry.entries(0, 100)]
            hidden = next(r for r in leaves if r.exchange_id == "inv-1")
            assert hidden.withheld_until == hidden.time_us + 30 * DAY_US
            ledger = PolicyLedger()
            for i, r in enumerate(leaves):
                ledger.check(i, r)  # passes: every rule exists and permits its record

            page, _, withheld = await disclosure.list_records("portal", me, 0, "")
            assert "inv-1" not in {d.record.exchange_id for d in page}
            assert "open-1" in {d.record.exchange_id for d in page}
            assert (withheld.count, withheld.next_release_us) == (1, hidden.withheld_until)
            with pytest.raises(FailedPrecondition) as info:
                await disclosure.record_proof("portal", me, held.record_id)
            assert info.value.reason == "RECORD_WITHHELD"

            watch = disclosure.watch("portal", "")
            before = await _take(watch, 5)  # 4 ISSUE records and the open translation
            assert "inv-1" not in {i.record.record.exchange_id for i in before if i.record}
            # Resume from the last cursor after the date: the withheld record, once.
            cursor = before[-1].cursor
            clock.now = hidden.time_us + 30 * DAY_US + DUE_STEP_US  # the watch steps by 1 s
            page, _, withheld = await disclosure.list_records("portal", me, 0, "")
            assert "inv-1" in {d.record.exchange_id for d in page} and withheld.count == 0
            await disclosure.record_proof("portal", me, held.record_id)
            resumed = disclosure.watch("portal", cursor)
            (item,) = await _take(resumed, 1)
            assert item.record is not None and item.record.record.exchange_id == "inv-1"
            # The live watch delivers it too once its next step runs.
            (again,) = await _take(watch, 1)
            assert again.record is not None and again.record.record.exchange_id == "inv-1"
        finally:
            notifier.close()
            await registry.close()

    asyncio.run(scenario())


def test_verify_fails_naming_the_record_for_an_unknown_rule_or_version() -> None:
    policy = Policy.from_toml(POLICY)
    published = AccessRecord.decode(policy_record(policy, T0).leaf)
    assert published.kind is AccessKind.POLICY

    def exchange(version: bytes, rule: str) -> AccessRecord:
        return AccessRecord(AccessKind.TRANSLATE, T0 + 5, "pension-service", "survivor-pension",
                            "resident-tax-income", "x", ("city-a",), bytes(32)).with_ext(
            POLICY_VERSION=version, RULE=rule.encode())

    ledger = PolicyLedger()
    ledger.check(0, published)
    ledger.check(1, exchange(policy.version, "open"))
    with pytest.raises(AuditFailure, match=r"leaf 2: names rule 'nope'"):
        ledger.check(2, exchange(policy.version, "nope"))
    with pytest.raises(AuditFailure, match=r"leaf 3: names permission table version 00"):
        ledger.check(3, exchange(bytes(32), "open"))
    with pytest.raises(AuditFailure, match=r"leaf 4: rule 'investigation' does not permit"):
        ledger.check(4, exchange(policy.version, "investigation"))
    with pytest.raises(AuditFailure, match=r"leaf 5: .* names no permission table"):
        ledger.check(5, AccessRecord(AccessKind.RESOLVE, T0, "a", "b", "c", "x", (), bytes(32)))


def test_watch_cursor_carries_the_withholding_mark() -> None:
    from symbolsvc.disclosure import format_cursor, parse_cursor, parse_watch_cursor
    from symbolsvc.errors import InvalidArgument

    big = (1 << 63) - 1
    assert parse_watch_cursor("", 77) == (-1, (77, big))
    assert parse_watch_cursor("L5", 77) == (5, (0, 0))  # before deferred disclosure
    for leaf, mark in ((5, (1000, big)), (0, (1000, 42)), (9, (0, 0))):
        assert parse_watch_cursor(format_cursor(leaf, mark), 77) == (leaf, mark)
    assert parse_cursor(format_cursor(12, (5, 6))) == 12
    for bad in ("L5W", "L5W1.", "L5W01", "L5.3", "L5W1.2.3", f"L5W{1 << 63}"):
        with pytest.raises(InvalidArgument):
            parse_watch_cursor(bad, 0)


def test_a_subjects_withheld_count_reads_only_withheld_rows(tmp_path: Path) -> None:
    """Every ListAccessRecords counts the subject's withheld records. Through the subject
    index SQLite read all of the subject's records for that (2.8 ms at 900 records, a
    growing share of the machine in the soak); schema 7's partial index holds only
    withheld rows. The product's own statement is captured and its plan checked."""
    from symbolsvc.registry import sqlite_transparency
    from symbolsvc.registry.sqlite import SqliteRegistry

    path = tmp_path / "r.db"
    asyncio.run(SqliteRegistry(path).close())  # creates and migrates the schema
    conn = sqlite3.connect(path)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    assert sqlite_transparency.withheld_for_subject(conn, b"\x01" * 32, 999) == (0, None)
    conn.set_trace_callback(None)
    (sql,) = statements
    plan = conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()  # (with its values)
    conn.close()
    assert "COVERING INDEX access_records_withheld_by_subject" in str(plan)
