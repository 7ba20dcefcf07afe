"""Issue 13's storage on every backend (docs/DISCLOSURE.md): ISSUE/RELEASE records in the
holding's own transaction (exactly for new holdings and live releases), holding rows,
withheld records kept from the subject's listing until their date, due reads for the
watch, and policy publication once per version.
"""

from __future__ import annotations

import asyncio

from symbolsvc.log.integrate import planner
from symbolsvc.registry import NewHolding, NewRecord, Registry


def _sym(i: int) -> str:
    return "k1." + f"{i:052d}".translate(str.maketrans("0123456789", "abcdefghij"))


P1 = b"\x01" * 32


def _rec(tag: str, withheld: int | None = None) -> NewRecord:
    return NewRecord(b"leaf-" + tag.encode(), P1, b"sealed-" + tag.encode(), (), withheld)


def _h(agency: str, i: int, at: int) -> NewHolding:
    return NewHolding(agency, _sym(i), b"sealed:%d" % i, _rec(f"issue-{agency}-{i}-{at}"))


async def _leaves(registry: Registry) -> list[bytes]:
    return [r.leaf for r in await registry.records_after(0, 1000)]


def test_linkage_records_exactly_with_new_holdings_and_live_releases(
        registry: Registry, aio: asyncio.Runner) -> None:
    async def body() -> None:
        assert await registry.issue([_h("city-a", 1, 100), _h("city-b", 1, 100)]) == [True, True]
        assert await registry.issue([_h("city-a", 1, 200)]) == [False]  # exists: no record
        assert await _leaves(registry) == [b"leaf-issue-city-a-1-100",
                                           b"leaf-issue-city-b-1-100"]
        assert await registry.release("city-a", _sym(1), record=_rec("release-1")) is True
        assert await registry.release("city-a", _sym(1),
                                      record=_rec("release-2")) is False  # no record
        (a, b, missing) = await registry.holding_rows(
            [("city-a", _sym(1)), ("city-b", _sym(1)), ("city-c", _sym(1))])
        assert missing is None and a is not None and b is not None
        assert (a.released, a.sealed_subject, b.released) == (True, b"sealed:1", False)
        assert await registry.issue([_h("city-a", 1, 500)]) == [True]  # re-created
        (a,) = await registry.holding_rows([("city-a", _sym(1))])
        assert a is not None and not a.released
        assert (await _leaves(registry))[2:] == [b"leaf-release-1", b"leaf-issue-city-a-1-500"]

    aio.run(body())


def test_withheld_records_and_due_reads(registry: Registry, aio: asyncio.Runner) -> None:
    async def body() -> None:
        ids = await registry.append_records([_rec("open"), _rec("held-a", 1000),
                                             _rec("held-b", 1000), _rec("held-c", 2000)])
        listed = await registry.records_for_subject(P1, None, 10, now_us=999)
        assert [r.leaf for r in listed] == [b"leaf-open"]
        assert await registry.withheld_for_subject(P1, 999) == (3, 1000)
        assert await registry.withheld_for_subject(P1, 1000) == (1, 2000)
        assert len(await registry.records_for_subject(P1, None, 10, now_us=1000)) == 3
        assert len(await registry.records_for_subject(P1, None, 10)) == 4  # the auditor's
        await registry.integrate(100, "t", 10_000, planner(lambda size, root: f"cp {size}"))
        due = await registry.withheld_due((0, 0), 1000, 10, 10)
        assert [(r.withheld_until_us, r.id) for r in due] == [(1000, ids[1]), (1000, ids[2])]
        assert due[0].leaf_index is not None
        after_first = await registry.withheld_due((1000, due[0].id), 5000, 10, 10)
        assert [r.id for r in after_first] == [ids[2], ids[3]]
        assert await registry.withheld_due((0, 0), 5000, -1, 10) == []  # not yet passed

    aio.run(body())


def test_policy_published_once_per_version(registry: Registry, aio: asyncio.Runner) -> None:
    async def body() -> None:
        v1, v2 = b"\x11" * 32, b"\x22" * 32
        assert await registry.policy_version(v1) is None
        first = await registry.publish_policy(v1, _rec("policy-1"), 100)
        again = await registry.publish_policy(v1, _rec("policy-1-again"), 200)
        assert again == first and first.loaded_at_us == 100
        second = await registry.publish_policy(v2, _rec("policy-2"), 300)
        assert second.record_id > first.record_id
        assert await registry.policy_version(v2) == second
        assert await _leaves(registry) == [b"leaf-policy-1", b"leaf-policy-2"]

    aio.run(body())

