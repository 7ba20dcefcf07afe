"""How a subject is referred to at rest: the sealing conventions of holdings and records.

A holding's row carries the subject id sealed to its ``(agency, symbol)``; an
access record's row carries it sealed to :data:`LOG_SEAL_AGENCY` (not a valid
agency id, so the two never clash). Unsealing failure means a damaged or
substituted row: it is reported to the operator, never to the caller in
detail, and never with the sealed bytes.
"""

from __future__ import annotations

import logging

from .errors import SymbolsvcError
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


def unseal_record_subject(deriver: Deriver, sealed_ref: bytes) -> bytes | None:
    """The subject id of an access record, or None (reported) if the row is damaged."""
    try:
        return deriver.unseal(sealed_ref, LOG_SEAL_AGENCY, "")
    except ValueError:
        log.error("an access record's sealed subject reference failed authentication")
        return None


def seal_record_subject(deriver: Deriver, sid: bytes, nonce: bytes | None = None) -> bytes:
    """The sealed subject reference stored with an access record."""
    return deriver.seal(sid, LOG_SEAL_AGENCY, "", nonce)
