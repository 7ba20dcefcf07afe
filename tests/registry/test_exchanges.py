"""Exchange keys and refused-exchange records on every backend (issue 10 items 5, 6).

At most one record per exchange key, atomically with the record (a replay in the same
group, in another call, or from a second replica appends nothing); a record whose
required holdings are not live appends its ``otherwise`` instead.
"""

from __future__ import annotations

import asyncio

from registry.store_target import Target
from symbolsvc.registry import Built, ExchangeTag, NewHolding, NewRecord, Registry

P1 = b"\x01" * 32


def _sym(i: int) -> str:
    return "k1." + f"{i:052d}".translate(str.maketrans("0123456789", "abcdefghij"))


def _tag(n: int, content: int = 0) -> ExchangeTag:
    return ExchangeTag(b"K%031d" % n, b"D%031d" % content)


def _rec(leaf: bytes, *require: tuple[str, str], tag: ExchangeTag | None = None,
         otherwise: NewRecord | None = None) -> NewRecord:
    return NewRecord(leaf, P1, b"sealed-" + leaf, require,
                     None if otherwise is None else (lambda: otherwise), tag)


def test_one_record_per_exchange_key(registry: Registry, aio: asyncio.Runner) -> None:
    async def body() -> None:
        assert await registry.prior_exchange(_tag(1).key) is None
        ids = await registry.append_records([
            _rec(b"a", tag=_tag(1)), _rec(b"b", tag=_tag(1, 2)), _rec(b"c", tag=_tag(2)),
            _rec(b"d"), _rec(b"e")])  # untagged records never clash
        assert ids[0] is not None and ids[1] is None and ids[2] is not None
        assert ids[3] is not None and ids[4] is not None
        again = await asyncio.gather(*(registry.append_records([_rec(b"x%d" % i, tag=_tag(1))])
                                       for i in range(5)))
        assert again == [[None]] * 5
        found = await registry.prior_exchange(_tag(1).key)
        assert found is not None and (found.record_id, found.leaf) == (ids[0], b"a")
        assert found.digest == _tag(1).digest
        rows = await registry.records_after(0, 100)
        assert [r.leaf for r in rows] == [b"a", b"c", b"d", b"e"]

    aio.run(body())


def test_otherwise_appended_when_a_holding_is_not_live(registry: Registry,
                                                       aio: asyncio.Runner) -> None:
    async def body() -> None:
        await registry.issue([NewHolding("city-a", _sym(1), b"s1")])
        a, gone = ("city-a", _sym(1)), ("city-b", _sym(9))
        out = await registry.append_for_holdings([
            (a, lambda s: Built(_rec(b"both", a, a, otherwise=_rec(b"refused", a)), 0)),
            (a, lambda s: Built(_rec(b"one", a, gone, otherwise=_rec(b"refused1", a)), 1)),
            (a, lambda s: Built(_rec(b"none", gone, otherwise=_rec(b"refused2", gone)), 2)),
            (a, lambda s: Built(_rec(b"t", a, gone, tag=_tag(7),
                                     otherwise=_rec(b"t-refused", a)), 3)),
            (a, lambda s: Built(_rec(b"t2", a, a, tag=_tag(7),
                                     otherwise=_rec(b"t2-refused", a)), 4)),
        ])
        assert [(o.held, o.record_id is not None, o.fallback) for o in out[:3]] == [
            (True, True, False), (True, True, True), (True, False, False)]
        # two items of one exchange in one group: exactly one of them is appended (which
        # one is the backend's order), the other finds its key taken
        assert (out[3].record_id is None) != (out[4].record_id is None)
        winner = b"t-refused" if out[3].record_id is not None else b"t2"
        assert out[3].fallback == (winner == b"t-refused")
        rows = await registry.records_after(0, 100)
        assert sorted(r.leaf for r in rows) == sorted([b"both", b"refused1", winner])
        found = await registry.prior_exchange(_tag(7).key)
        assert found is not None and found.leaf == winner

    aio.run(body())


def test_two_replicas_replaying_one_exchange_append_once(target: Target) -> None:
    async def run() -> list[list[int | None]]:
        a, b = target.open(), target.open()
        try:
            return await asyncio.gather(*(
                reg.append_records([_rec(b"r%d" % i, tag=_tag(5))])
                for i, reg in enumerate([a, b] * 10)))
        finally:
            await a.close()
            await b.close()

    results = asyncio.run(run())
    assert sum(r[0] is not None for r in results) == 1
    ((count,),) = target.query("SELECT count(*) FROM access_records")
    assert count == 1
