"""Validation of the brokered-exchange requests' fields (CONTRACT §4 check order).

Every check raises :class:`~symbolsvc.errors.InvalidArgument` naming the field,
never repeating a value that could hold an individual number. Free-form fields
(exchange id, office work, info item, provider agency) are checked first for an
individual number (``LOOKS_LIKE_INDIVIDUAL_NUMBER``): such a value is refused
before it can reach a log line, an error message or the access log.
"""

from __future__ import annotations

from typing import Protocol

from .errors import InvalidArgument
from .numbers import looks_like_individual_number
from .policy import is_ident
from .symbols import symbol_version

MAX_BATCH = 1000
MAX_EXCHANGE_ID = 128


class Exchange(Protocol):
    @property
    def requester_agency(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def office_work(self) -> str: ...
    @property
    def info_item(self) -> str: ...
    @property
    def exchange_id(self) -> str: ...


def check_batch(n: int, field: str) -> None:
    if n == 0:
        raise InvalidArgument("EMPTY_BATCH", "the batch is empty", field)
    if n > MAX_BATCH:
        raise InvalidArgument(
            "BATCH_TOO_LARGE", f"a batch holds at most {MAX_BATCH} items (got {n})", field
        )


def check_ident(value: str, field: str) -> None:
    if not is_ident(value):
        raise InvalidArgument(
            "BAD_IDENTIFIER",
            f"{field} must be 1-64 lower-case ASCII letters, digits, '.', '_' or '-'",
            field,
        )


def check_free_form(value: str, field: str) -> None:
    """Refuse a free-form value holding an individual number (never echoed)."""
    if looks_like_individual_number(value):
        raise InvalidArgument(
            "LOOKS_LIKE_INDIVIDUAL_NUMBER",
            f"{field} contains a 12-digit run that passes the individual-number check digit; "
            "free-form fields must never carry an individual number (nothing was recorded)",
            field,
        )


def check_exchange(r: Exchange, prefix: str, provider: str | None = None) -> None:
    """The fields of a translation (``provider`` given) or resolution, in order."""
    check_free_form(r.exchange_id, prefix + "exchange_id")
    check_free_form(r.office_work, prefix + "office_work")
    check_free_form(r.info_item, prefix + "info_item")
    if provider is not None:
        check_free_form(provider, prefix + "provider_agency")
    check_ident(r.requester_agency, prefix + "requester_agency")
    symbol_version(r.symbol, prefix + "symbol")
    check_ident(r.office_work, prefix + "office_work")
    check_ident(r.info_item, prefix + "info_item")
    x = r.exchange_id
    if not (0 < len(x) <= MAX_EXCHANGE_ID and x.isascii() and x.isprintable()):
        raise InvalidArgument(
            "BAD_EXCHANGE_ID",
            f"exchange_id must be 1-{MAX_EXCHANGE_ID} printable ASCII characters",
            prefix + "exchange_id",
        )
