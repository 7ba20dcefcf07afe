"""symbolsvc.paging.bounded: the longest prefix within a byte budget, never empty."""

from __future__ import annotations

from symbolsvc.paging import bounded


def test_bounded_prefix() -> None:
    assert bounded([3, 3, 3, 3], int, budget=9) == [3, 3, 3]
    assert bounded([3, 3, 3, 3], int, budget=8) == [3, 3]
    assert bounded([50, 1], int, budget=10) == [50]  # one oversized item still progresses
    assert bounded([], int, budget=10) == []
    assert bounded([1] * 5, int) == [1] * 5
