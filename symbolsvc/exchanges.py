"""Idempotent exchanges: ``(requester_agency, exchange_id)`` names one exchange.

An exchange's record carries two keyed digests (HMAC-SHA256 under K_exchange,
:meth:`~symbolsvc.symbols.Deriver.exchange_digest`), stored beside the record
(never in the leaf): its **key**, over the requester and the exchange id, and
its **digest**, over the whole request (kind, requester, exchange id, symbol,
provider, office work, info item). The storage appends at most one record per
key, atomically with the record (docs/EXCHANGES.md). So:

* a replay with the same content writes nothing and gets the same answer and
  record id (:func:`replayed`);
* the same id with other content is ``ALREADY_EXISTS`` / ``EXCHANGE_ID_REUSED``,
  reported in the security log (:func:`reused`).

:func:`prior` is the look-up for callers that refuse any reuse outright.
"""

from __future__ import annotations

import hmac

from .errors import AlreadyExists
from .records import AccessKind
from .registry import ExchangeTag, HoldingsStore, PriorExchange
from .secevents import report
from .symbols import Deriver


def _encode(*parts: str) -> bytes:
    """Parts joined by NUL: unambiguous, as no validated part can hold a NUL (identifiers,
    symbols and exchange ids are printable ASCII)."""
    return "\x00".join(parts).encode()


def exchange_key(deriver: Deriver, requester: str, exchange_id: str) -> bytes:
    """The stored key of exchange ``(requester, exchange_id)``."""
    return deriver.exchange_digest(b"key\x00" + _encode(requester, exchange_id))


def tag(deriver: Deriver, kind: AccessKind, requester: str, exchange_id: str, symbol: str,
        provider: str, office_work: str, info_item: str) -> ExchangeTag:
    """The key and content digest of one exchange (``provider`` empty for a resolution)."""
    content = _encode(str(int(kind)), requester, exchange_id, symbol, provider, office_work,
                      info_item)
    return ExchangeTag(exchange_key(deriver, requester, exchange_id),
                       deriver.exchange_digest(b"content\x00" + content))


async def prior(registry: HoldingsStore, deriver: Deriver, requester: str,
                exchange_id: str) -> PriorExchange | None:
    """The record exchange ``(requester, exchange_id)`` already wrote, if any."""
    return await registry.prior_exchange(exchange_key(deriver, requester, exchange_id))


def reused(requester: str, exchange_id: str, field: str) -> AlreadyExists:
    """Report (security log, metric) and return the error for an exchange id reused with
    other content."""
    report("exchange_id_reused", "an exchange id was reused for a different exchange; "
           "refused", requester=requester, exchange_id=exchange_id)
    return AlreadyExists(
        "EXCHANGE_ID_REUSED",
        "this exchange_id already names an exchange of this agency with other content; "
        "use a new exchange_id for a new exchange (a replay must repeat the request exactly)",
        field)


def same(found: PriorExchange, mine: ExchangeTag) -> bool:
    """Whether the stored exchange had this content."""
    return hmac.compare_digest(found.digest, mine.digest)
