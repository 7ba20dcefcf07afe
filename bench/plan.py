"""What one client process runs: the plan, its request builder and reply scoring.

A plan carries a *mix*: one or more RPCs with a weight and a batch size each
(a single ``--rpc`` run is a mix of one). Requests draw agencies and subjects
from the plan's population (see :mod:`bench.scenario` for the skewed one).
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass
from typing import Any

from .schedule import Schedule

# RPC -> (caller identity kind, batched)
RPCS = {
    "IssueSymbol": ("agency", False),
    "BatchIssueSymbols": ("agency", True),
    "StreamIssueSymbols": ("agency", True),
    "TranslateSymbol": ("broker", False),
    "BatchTranslateSymbols": ("broker", True),
    "ResolveProviders": ("broker", False),
    "ListAccessRecords": ("portal", False),
}
NEEDS_POPULATION = ("TranslateSymbol", "BatchTranslateSymbols", "ResolveProviders",
                    "ListAccessRecords")
NUMBER_SPACE = 10**11
PROCESS_STRIDE = 10**9  # individual numbers per client process and phase


@dataclass(frozen=True)
class Subject:
    """A pre-registered subject: its number, its holders' symbols, the portal's symbol."""

    number: str
    holders: tuple[tuple[str, str], ...]  # (agency, that agency's symbol)
    portal_symbol: str = ""


@dataclass(frozen=True)
class Plan:
    """Everything one client process needs; pickled to it."""

    target: str
    ca: bytes
    identities: dict[str, tuple[bytes, bytes]]  # name -> (cert, key)
    mix: tuple[tuple[str, float, int], ...]  # (rpc, weight, batch)
    mode: str  # "closed" | "open"
    concurrency: int  # callers (closed) / streams (open StreamIssueSymbols), this process
    schedule: Schedule  # open loop: offered rate over time, this process
    channels: int
    start_at: float  # wall clock (time.time()) at which the warm-up begins (set at go)
    warmup: float
    max_calls: int
    max_inflight: int
    timeout: float
    number_base: int
    issuers: tuple[str, ...]  # agencies that issue, drawn with issuer_weights
    issuer_weights: tuple[float, ...]
    new_fraction: float = 1.0  # issue: share of numbers that are new (else a held subject)
    fixed_pair: bool = True  # translate: holders[0] asks holders[1] (else a random pair)
    office_work: str = "demo-exchange"
    info_item: str = "demo-record"
    population: tuple[Subject, ...] = ()
    co_interval_ms: float | None = None  # closed loop: None = the warm-up's median latency
    keep_samples: bool = False
    progress_every: float = 1.0
    seed: int = 0  # draws of RPCs, agencies and subjects: the same for service and baseline

    @property
    def duration(self) -> float:
        return self.schedule.duration

    def rpcs(self) -> list[str]:
        return [m[0] for m in self.mix]


def nth_number(n: int) -> str:
    """The ``n``-th individual number: 11 digits of ``n`` and the check digit (CONTRACT §6)."""
    from symbolsvc.numbers import check_digit

    first = f"{n % NUMBER_SPACE:011d}"
    return first + str(check_digit(first))


class Requests:
    """Builds the next request of a plan: (rpc, caller identity, request message)."""

    def __init__(self, plan: Plan) -> None:
        from symbolsvc.v1 import broker_service_pb2 as bpb
        from symbolsvc.v1 import disclosure_service_pb2 as dpb
        from symbolsvc.v1 import symbol_service_pb2 as spb

        self.plan = plan
        self._spb, self._bpb, self._dpb = spb, bpb, dpb
        self._next_number = plan.number_base
        self._seq = itertools.count(1)
        self._rng = random.Random(plan.seed)
        self._cum = list(itertools.accumulate(m[1] for m in plan.mix))
        self._issuer_cum = list(itertools.accumulate(plan.issuer_weights))

    def pick(self) -> tuple[str, int]:
        """The next call's RPC and batch size, drawn by weight."""
        if len(self.plan.mix) == 1:
            return self.plan.mix[0][0], self.plan.mix[0][2]
        i = bisect.bisect_right(self._cum, self._rng.random() * self._cum[-1])
        rpc, _, batch = self.plan.mix[min(i, len(self.plan.mix) - 1)]
        return rpc, batch

    def _issuer(self) -> str:
        if len(self.plan.issuers) == 1:
            return self.plan.issuers[0]
        i = bisect.bisect_right(self._issuer_cum, self._rng.random() * self._issuer_cum[-1])
        return self.plan.issuers[min(i, len(self.plan.issuers) - 1)]

    def numbers(self, k: int) -> tuple[list[str], str | None]:
        """``k`` numbers for one issuing call (new ones, or held subjects' by new_fraction),
        and the home agency of the last held subject drawn (None if all are new)."""
        p = self.plan
        if p.new_fraction >= 1.0 or not p.population:
            start = self._next_number
            self._next_number += k
            return [nth_number(n) for n in range(start, start + k)], None
        out, home = [], None
        for _ in range(k):
            if self._rng.random() < p.new_fraction:
                out.append(nth_number(self._next_number))
                self._next_number += 1
            else:
                s = self._rng.choice(p.population)
                out.append(s.number)
                home = s.holders[0][0]
        return out, home

    def _pair(self) -> tuple[Subject, tuple[str, str], str]:
        s = self._rng.choice(self.plan.population)
        if self.plan.fixed_pair or len(s.holders) < 2:
            return s, s.holders[0], s.holders[-1][0]
        a, b = self._rng.sample(s.holders, 2)
        return s, a, b[0]

    def _translate(self) -> Any:
        p = self.plan
        _, (requester, symbol), provider = self._pair()
        return self._bpb.TranslateSymbolRequest(
            requester_agency=requester, symbol=symbol, provider_agency=provider,
            office_work=p.office_work, info_item=p.info_item,
            exchange_id=f"bench-{p.number_base}-{next(self._seq)}")

    def build(self, rpc: str, batch: int) -> tuple[str, Any]:
        """(caller identity, request) for one call of ``rpc``."""
        p, spb, bpb = self.plan, self._spb, self._bpb
        if rpc == "IssueSymbol":
            # A held subject is re-issued by the agency holding it (not a new holding).
            nums, home = self.numbers(1)
            return home or self._issuer(), spb.IssueSymbolRequest(individual_number=nums[0])
        if rpc == "BatchIssueSymbols":
            return self._issuer(), spb.BatchIssueSymbolsRequest(
                individual_numbers=self.numbers(batch)[0])
        if rpc == "StreamIssueSymbols":
            return self._issuer(), spb.StreamIssueSymbolsRequest(
                chunk_id=next(self._seq), individual_numbers=self.numbers(batch)[0])
        if rpc == "TranslateSymbol":
            return "broker", self._translate()
        if rpc == "BatchTranslateSymbols":
            return "broker", bpb.BatchTranslateSymbolsRequest(
                requests=[self._translate() for _ in range(batch)])
        if rpc == "ListAccessRecords":
            s = self._rng.choice(p.population)
            return "portal", self._dpb.ListAccessRecordsRequest(symbol=s.portal_symbol,
                                                                page_size=50)
        _, (requester, symbol), _ = self._pair()
        return "broker", bpb.ResolveProvidersRequest(
            requester_agency=requester, symbol=symbol, office_work=p.office_work,
            info_item=p.info_item, exchange_id=f"bench-{p.number_base}-{next(self._seq)}")


def score(rpc: str, reply: Any) -> tuple[int, int, int]:
    """(items, item errors, items that were not new holdings) of one reply."""
    if rpc == "IssueSymbol":
        return 1, 0, 0 if reply.newly_registered else 1
    if rpc in ("BatchIssueSymbols", "StreamIssueSymbols"):
        bad = sum(1 for r in reply.results if r.WhichOneof("outcome") != "issued")
        old = sum(1 for r in reply.results
                  if r.WhichOneof("outcome") == "issued" and not r.issued.newly_registered)
        return len(reply.results), bad, old
    if rpc == "BatchTranslateSymbols":
        bad = sum(1 for r in reply.results if r.WhichOneof("outcome") != "translated")
        return len(reply.results), bad, 0
    return 1, 0, 0
