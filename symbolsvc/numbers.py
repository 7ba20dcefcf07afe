"""Validation of individual numbers (個人番号).

An individual number is exactly 12 ASCII digits; the 12th is a check digit
over the first 11 (Ministerial ordinance No. 85 of 2014, Art. 5; CONTRACT §6).
Error messages say what is wrong with the input and never repeat it.
"""

from __future__ import annotations

import re
from operator import mul

from .errors import InvalidArgument

NUMBER_LENGTH = 12

# Weights Q_n for P_n, n = 1..11, where P_1 is the digit just left of the check
# digit. Listed here from P_11 (leftmost) to P_1, to zip with the string.
_WEIGHTS = tuple((n + 1) if n <= 6 else (n - 5) for n in range(11, 0, -1))
_DIGITS = frozenset(b"0123456789")
_ZERO_SUM = 48 * sum(_WEIGHTS)  # sum(P_n * Q_n) over ASCII codes exceeds it by this much
# A run of 12 or more digits, ASCII or full-width (U+FF10..U+FF19), in a free-form string.
_DIGIT_RUN = re.compile("[0-9\uff10-\uff19]{12,}")
_FULL_WIDTH = str.maketrans({0xFF10 + d: 0x30 + d for d in range(10)})


def check_digit(first_eleven: str) -> int:
    """Return the check digit for 11 ASCII digits (CONTRACT §6).

    r = sum(P_n * Q_n) mod 11; the check digit is 0 when r <= 1, else 11 - r.
    """
    if len(first_eleven) != 11 or not first_eleven.isascii() or not first_eleven.isdigit():
        raise ValueError("check_digit needs exactly 11 ASCII digits")
    r = sum(int(c) * w for c, w in zip(first_eleven, _WEIGHTS, strict=True)) % 11
    return 0 if r <= 1 else 11 - r


def validate_individual_number(value: str, field: str = "individual_number") -> bytes:
    """Check an individual number and return it as 12 ASCII bytes.

    Raises :class:`InvalidArgument` with reason ``BAD_FORMAT`` (not 12 ASCII
    digits: wrong length, full-width digits, letters, whitespace, empty) or
    ``BAD_CHECK_DIGIT``. The number itself never appears in the message.
    """
    if not isinstance(value, str):
        raise InvalidArgument("BAD_FORMAT", "individual number must be a string", field)
    if len(value) != NUMBER_LENGTH:
        raise InvalidArgument(
            "BAD_FORMAT",
            f"individual number must be exactly 12 ASCII digits (got {len(value)} characters)",
            field,
        )
    raw = value.encode("utf-8", "surrogatepass") if not value.isascii() else value.encode("ascii")
    if len(raw) != NUMBER_LENGTH or not _DIGITS.issuperset(raw):
        raise InvalidArgument(
            "BAD_FORMAT",
            "individual number must contain only the ASCII digits 0-9 "
            "(no spaces, hyphens, letters or full-width digits)",
            field,
        )
    r = (sum(map(mul, raw[:11], _WEIGHTS)) - _ZERO_SUM) % 11  # check_digit, on the bytes
    if (0 if r <= 1 else 11 - r) != raw[11] - 48:
        raise InvalidArgument(
            "BAD_CHECK_DIGIT", "individual number has a wrong check digit", field
        )
    return raw


def _passes_check(twelve: str) -> bool:
    raw = twelve.encode("ascii")
    r = (sum(map(mul, raw[:11], _WEIGHTS)) - _ZERO_SUM) % 11
    return (0 if r <= 1 else 11 - r) == raw[11] - 48


def looks_like_individual_number(value: str) -> bool:
    """Whether a free-form string holds a run of 12 digits (ASCII or full-width) that
    passes the CONTRACT §6 check digit: an individual number that must not be stored,
    logged or echoed. Every 12-digit window of a longer run counts. A string without
    such a run costs one regular-expression scan."""
    for m in _DIGIT_RUN.finditer(value):
        run = m.group().translate(_FULL_WIDTH)
        if any(_passes_check(run[i:i + NUMBER_LENGTH])
               for i in range(len(run) - NUMBER_LENGTH + 1)):
            return True
    return False
