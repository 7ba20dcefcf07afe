"""The access records the service appends, built in one place (docs/DISCLOSURE.md).

* exchanges (TRANSLATE, RESOLVE) name the permission table version and the rule
  that allowed them, and carry WITHHELD_UNTIL when the rule defers disclosure;
* linkage events (ISSUE, RELEASE) name only the agency and the time: no number,
  no symbol, no office work;
* a POLICY record carries a published table itself, under an all-zero pseudonym
  (it is about no subject) and an empty sealed subject.

Every builder returns a :class:`~symbolsvc.registry.NewRecord`; the caller decides
the transaction it is appended in.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Sequence

from .policy import Policy, Rule
from .records import PSEUDONYM_LEN, AccessKind, AccessRecord, Outcome, ext_items
from .registry import ExchangeTag, NewRecord
from .subjects import seal_record_subject
from .symbols import Deriver

NO_SUBJECT = bytes(PSEUDONYM_LEN)
"""The pseudonym of records about no subject (POLICY): no HMAC output is all zeros in
practice, and no portal look-up ever asks for it."""
_U64 = struct.Struct(">Q")
_NOT_HOLDING = bytes((Outcome.PROVIDER_NOT_HOLDING,))


def exchange_record(
    deriver: Deriver, kind: AccessKind, now: int, requester: str, office_work: str,
    info_item: str, exchange_id: str, providers: tuple[str, ...], sid: bytes,
    require: tuple[tuple[str, str], ...], policy: Policy | None, rule: Rule | None,
    tag: ExchangeTag | None = None, refused: tuple[tuple[str, str], ...] | None = None,
    ext: dict[str, bytes] | None = None,
) -> NewRecord:
    """A TRANSLATE or RESOLVE record, naming ``rule`` of ``policy`` when given, appended
    at most once per exchange ``tag`` (docs/EXCHANGES.md). With ``refused``, the record's
    ``otherwise`` is the same record with the outcome PROVIDER_NOT_HOLDING (policy
    extensions kept), requiring only the holdings ``refused`` names. ``ext``: further
    extensions (a verified signed inquiry's, symbolsvc.inquiries), kept on both."""
    pseudonym = deriver.log_pseudonym(sid)
    values = dict(ext) if ext else {}
    withheld = None
    if policy is not None and rule is not None:
        withheld = rule.withheld_until(now)
        values["POLICY_VERSION"] = policy.version
        values["RULE"] = rule.id.encode("utf-8")
        if withheld is not None:
            values["WITHHELD_UNTIL"] = _U64.pack(withheld)
    record = AccessRecord(kind, now, requester, office_work, info_item, exchange_id,
                          providers, pseudonym, ext_items(**values))
    leaf = record.encode()
    otherwise: Callable[[], NewRecord] | None = None
    if refused is not None:
        only = refused

        def otherwise() -> NewRecord:  # built only when the provider's holding is not live
            other = record.with_ext(OUTCOME=_NOT_HOLDING).encode()
            return NewRecord(other, pseudonym, seal_record_subject(deriver, sid, other),
                             only, withheld_until_us=withheld)

    return NewRecord(leaf, pseudonym, seal_record_subject(deriver, sid, leaf), require,
                     withheld_until_us=withheld, otherwise=otherwise, exchange=tag)


def linkage_record(deriver: Deriver, kind: AccessKind, now: int, agency: str,
                   sid: bytes) -> NewRecord:
    """An ISSUE or RELEASE record: the agency and the time, nothing else."""
    return linkage_records(deriver, kind, now, agency, [sid])[0]


def linkage_records(deriver: Deriver, kind: AccessKind, now: int, agency: str,
                    sids: Sequence[bytes]) -> list[NewRecord]:
    """The ISSUE (or RELEASE) records of one batch: every leaf is one prefix (kind, time,
    agency) followed by the subject's pseudonym, so the prefix is encoded once, and the
    sealing nonces are drawn in one call (bulk issuance pays per item only two keyed
    operations and an insert)."""
    prefix = AccessRecord(kind, now, agency, "", "", "", (), NO_SUBJECT).encode()[
        :-PSEUDONYM_LEN]
    nonces = os.urandom(12 * len(sids))
    out = []
    for i, sid in enumerate(sids):
        pseudonym = deriver.log_pseudonym(sid)
        leaf = prefix + pseudonym
        out.append(NewRecord(leaf, pseudonym, seal_record_subject(
            deriver, sid, leaf, nonces[12 * i:12 * i + 12])))
    return out


def policy_record(policy: Policy, now: int) -> NewRecord:
    """The POLICY record publishing ``policy``."""
    record = AccessRecord(AccessKind.POLICY, now, "", "", "", "", (), NO_SUBJECT).with_ext(
        POLICY_VERSION=policy.version, POLICY_TABLE=policy.canonical.encode("utf-8"))
    return NewRecord(record.encode(), NO_SUBJECT, b"")

