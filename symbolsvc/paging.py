"""Pages bounded by bytes as well as by count (issue 10 item 7).

A page of leaves (ListEntries) or of access records (ListAccessRecords) stops once
its leaves add up to :data:`PAGE_BYTES`, well under gRPC's default 4 MiB message
limit, however large a single legitimate leaf is (a resolution naming every permitted
holder). A page always holds at least one item, so paging always progresses; the
caller pages on from where the page stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")

PAGE_BYTES = 1 << 20
"""Most leaf bytes one page carries (after its first item)."""


def bounded(items: Sequence[T], size: Callable[[T], int], budget: int = PAGE_BYTES) -> list[T]:
    """The longest prefix of ``items`` (at least one) whose sizes add up to ``budget``."""
    out: list[T] = []
    total = 0
    for item in items:
        total += size(item)
        if out and total > budget:
            break
        out.append(item)
    return out
