"""How a subject is referred to at rest: the sealing conventions of holdings and records.

A holding's row carries the subject id sealed to its ``(agency, symbol)``; an
access record's row carries it sealed to :data:`LOG_SEAL_AGENCY` (not a valid
agency id, so the two never clash) and to the record's own RFC 9162 leaf hash,
so a reference swapped or copied between two records fails to open. An opened
record reference must also give the pseudonym the record's leaf names. Unsealing
failure means a damaged or substituted row: it is reported to the operator
(security log, ``symbolsvc_security_events_total``), never to the caller in
detail, and never with the sealed bytes.
"""

from __future__ import annotations

import hmac
import logging

from .errors import SymbolsvcError
from .log.hashing import leaf_hash
from .records import AccessRecord, LeafError
from .secevents import report
from .symbols import Deriver

LOG_SEAL_AGENCY = "@access-log"

log = logging.getLogger("symbolsvc.core")


def unseal_holding(deriver: Deriver, sealed_ref: bytes, agency: str, symbol: str) -> bytes:
    """The subject id of a live holding; ``CORRUPT_HOLDING`` if the row is damaged."""
    try:
        return deriver.unseal(sealed_ref, agency, symbol)
    except ValueError:
        log.error("a holding's sealed subject reference failed authentication",
                  extra={"agency": agency})
        raise SymbolsvcError(
            "CORRUPT_HOLDING",
            "the registry entry for this holding is damaged; the operator has been alerted",
        ) from None


def _record_aad(leaf: bytes) -> str:
    """The record's identity in its sealed reference's associated data."""
    return "leaf:" + leaf_hash(leaf).hex()


def unseal_record_subject(deriver: Deriver, sealed_ref: bytes, leaf: bytes,
                          record_id: int = 0) -> bytes | None:
    """The subject id of the access record ``leaf``, or None (reported) if the row's
    sealed reference is damaged, belongs to another record, or names another subject.

    A reference sealed before records were bound (associated data without the leaf hash)
    still opens, but only to the subject the leaf's pseudonym names."""
    try:
        try:
            sid = deriver.unseal(sealed_ref, LOG_SEAL_AGENCY, _record_aad(leaf))
        except ValueError:
            sid = deriver.unseal(sealed_ref, LOG_SEAL_AGENCY, "")  # written unbound
        pseudonym = AccessRecord.decode(leaf).pseudonym
        if not hmac.compare_digest(deriver.log_pseudonym(sid), pseudonym):
            raise ValueError("another subject")
    except (ValueError, LeafError):
        report("record_subject_mismatch", "an access record's sealed subject reference does "
               "not open for that record; the record is delivered to nobody",
               record_id=record_id)
        return None
    return sid


def seal_record_subject(deriver: Deriver, sid: bytes, leaf: bytes) -> bytes:
    """The sealed subject reference stored with the access record ``leaf``."""
    return deriver.seal(sid, LOG_SEAL_AGENCY, _record_aad(leaf))
