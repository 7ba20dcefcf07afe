"""What the page shows, as plain values: protobuf replies in, view objects out.

Times stay integers (microseconds since the epoch) until :mod:`.i18n` formats
them in the person's language; ``to_json`` is what the live-update stream sends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..v1 import disclosure_service_pb2 as pb

KINDS = {pb.ACCESS_KIND_TRANSLATE: "translate", pb.ACCESS_KIND_RESOLVE: "resolve",
         pb.ACCESS_KIND_ISSUE: "issue", pb.ACCESS_KIND_RELEASE: "release",
         pb.ACCESS_KIND_POLICY: "policy"}
OUTCOMES = {pb.ACCESS_OUTCOME_PROVIDER_NOT_HOLDING: "provider_not_holding"}


@dataclass(frozen=True, slots=True)
class RecordView:
    record_id: int
    time_us: int
    kind: str
    requester: str
    providers: tuple[str, ...]
    office_work: str
    info_item: str
    subject_symbol: str
    integrated: bool
    leaf_index: int
    outcome: str  # "answered" or why not
    rule: str
    purpose: str
    basis: str
    withheld_until_us: int | None
    inquiry_signed: bool

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        out.pop("subject_symbol")  # the page knows whose records it shows
        out["providers"] = list(self.providers)
        return out


@dataclass(frozen=True, slots=True)
class HoldingView:
    agency: str
    since_us: int | None
    released: bool
    released_at_us: int | None


def record_view(r: pb.AccessRecord) -> RecordView:
    return RecordView(
        record_id=r.record_id,
        time_us=r.time.ToMicroseconds(),
        kind=KINDS.get(r.kind, "unknown"),
        requester=r.requester_agency,
        providers=tuple(r.provider_agencies),
        office_work=r.office_work,
        info_item=r.info_item,
        subject_symbol=r.subject_symbol,
        integrated=r.integrated,
        leaf_index=r.leaf_index,
        outcome=OUTCOMES.get(r.outcome, "answered"),
        rule=r.rule,
        purpose=r.purpose,
        basis=r.basis,
        withheld_until_us=r.withheld_until.ToMicroseconds() if r.HasField("withheld_until")
        else None,
        inquiry_signed=r.inquiry_signed,
    )


def holding_view(h: pb.Holding) -> HoldingView:
    return HoldingView(
        agency=h.agency,
        since_us=h.since.ToMicroseconds() if h.HasField("since") else None,
        released=h.released,
        released_at_us=h.released_at.ToMicroseconds() if h.HasField("released_at") else None,
    )
