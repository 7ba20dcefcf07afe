"""Individual-number validation (CONTRACT §6): published and computed vectors, then properties."""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

import pytest
from helpers import (
    VECTORS,
    make_number,
    prefixes,
    reference_check_digit,
    reference_remainder,
    valid_numbers,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from symbolsvc.errors import InvalidArgument
from symbolsvc.numbers import check_digit, validate_individual_number

_DOC: dict[str, Any] = json.loads((VECTORS / "check_digits.json").read_text(encoding="utf-8"))
PUBLISHED = _DOC["published"]["valid"]
COMPUTED = _DOC["computed"]["valid"]
INVALID = _DOC["invalid"]
ALL_VALID = PUBLISHED + [c["number"] for c in COMPUTED]


def _reject(value: object) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        validate_individual_number(value)  # type: ignore[arg-type]
    err = info.value
    assert err.field == "individual_number"
    assert err.code.name == "INVALID_ARGUMENT"
    if isinstance(value, str):
        # the number (or what was sent as one) never appears in the error: no run of
        # three or more of its digits (ASCII or not) shows up in the message
        for run in re.findall(r"\d{3,}", value):
            for text in (str(err), repr(err), err.message):
                assert run not in text
    return err


# -- vectors ---------------------------------------------------------------------


def test_vector_file_is_complete() -> None:
    assert PUBLISHED == ["123456789018", "641717601551", "389419154673", "270722285678"]
    # the computed set covers every remainder, including both r=0 and r=1 (check digit 0)
    assert {c["r"] for c in COMPUTED} == set(range(11))
    reasons = {v["reason"] for v in INVALID}
    assert reasons == {"BAD_FORMAT", "BAD_CHECK_DIGIT"}
    assert all(v["why"] for v in INVALID)


@pytest.mark.parametrize("number", PUBLISHED)
def test_published_valid(number: str) -> None:
    assert validate_individual_number(number) == number.encode("ascii")
    assert check_digit(number[:11]) == int(number[11])
    assert reference_check_digit(number[:11]) == int(number[11])


@pytest.mark.parametrize("vector", COMPUTED, ids=lambda c: c["number"])
def test_computed_valid(vector: dict[str, Any]) -> None:
    number = vector["number"]
    # recompute with the reference implementation, so the file cannot carry a wrong vector
    assert reference_remainder(number[:11]) == vector["r"]
    assert reference_check_digit(number[:11]) == int(number[11])
    assert validate_individual_number(number) == number.encode("ascii")
    assert check_digit(number[:11]) == int(number[11])


@pytest.mark.parametrize("vector", INVALID, ids=lambda v: v["why"])
def test_invalid_vectors(vector: dict[str, Any]) -> None:
    err = _reject(vector["input"])
    assert err.reason == vector["reason"]


def test_check_digit_rejects_non_digits() -> None:
    full_width = "".join(chr(0xFF10 + int(c)) for c in "12345678901")
    for bad in ("", "1234567890", "123456789012", "1234567890a", full_width):
        with pytest.raises(ValueError):
            check_digit(bad)


# -- properties --------------------------------------------------------------------


@given(prefixes)
def test_computed_check_digit_is_the_only_valid_one(prefix: str) -> None:
    c = check_digit(prefix)
    assert c == reference_check_digit(prefix)
    validate_individual_number(prefix + str(c))
    for other in range(10):
        if other != c:
            err = _reject(prefix + str(other))
            assert err.reason == "BAD_CHECK_DIGIT"


def _single_digit_changes(number: str) -> list[tuple[int, str]]:
    return [
        (pos, number[:pos] + d + number[pos + 1 :])
        for pos in range(12)
        for d in "0123456789"
        if d != number[pos]
    ]


def _is_valid(value: str) -> bool:
    try:
        validate_individual_number(value)
    except InvalidArgument:
        return False
    return True


def _assert_single_digit_detection(number: str) -> None:
    """What is true for this weighting.

    Every weight Q_n (2..7) is a unit mod 11 and a digit change is at most 9, so a
    single-digit change always changes r. But the mapping r -> check digit sends both
    r = 0 and r = 1 to 0, so a change is missed exactly when it moves r between 0 and 1
    (only possible when the check digit is 0). A change of the check digit itself is
    always detected, and so is every change of a number whose check digit is not 0.
    """
    r = reference_remainder(number[:11])
    for pos, changed in _single_digit_changes(number):
        if pos == 11:
            assert not _is_valid(changed)
            continue
        r2 = reference_remainder(changed[:11])
        assert r2 != r
        missed = {r, r2} == {0, 1}
        assert _is_valid(changed) is missed
        if number[11] != "0":
            assert not missed


@settings(max_examples=50)
@given(valid_numbers)
@example("000000000000")
@example("179105138130")
def test_single_digit_changes(number: str) -> None:
    _assert_single_digit_detection(number)


@pytest.mark.parametrize("number", ALL_VALID)
def test_single_digit_changes_on_vectors(number: str) -> None:
    _assert_single_digit_detection(number)


def test_single_digit_change_not_always_detected() -> None:
    # the weaker claim above is needed: 0 -> 6 in P1 (weight 2) moves r from 0 to 1
    assert _is_valid("000000000000")
    assert _is_valid("000000000060")


_NON_ASCII_DIGITS = st.characters(categories=["Nd", "No", "Nl"]).filter(lambda c: not c.isascii())
_WHITESPACE = st.sampled_from([" ", "\t", "\n", "\r", "\v", "\f", "\u00a0", "\u3000", "\u2009",
                               "\u200b", "\ufeff"])
_LETTERS = st.characters(categories=["Lu", "Ll", "Lo"])


@given(valid_numbers, st.integers(0, 11), _NON_ASCII_DIGITS)
@example("123456789018", 0, "\uff11")  # full-width 1
@example("123456789018", 11, "\u0668")  # Arabic-Indic 8
@example("123456789018", 2, "\u00b3")  # superscript 3
def test_non_ascii_digit_rejected(number: str, pos: int, ch: str) -> None:
    value = number[:pos] + ch + number[pos + 1 :]
    assert _reject(value).reason == "BAD_FORMAT"


@given(st.sampled_from(["\uff10", "\u0660", "\u06f0", "\u0966", "\u2070", "\u2080", "\U0001d7ce"]),
       valid_numbers)
def test_whole_number_in_other_digit_scripts_rejected(zero: str, number: str) -> None:
    if zero == "\u2070":  # superscripts are not contiguous
        table = "⁰¹²³⁴⁵⁶⁷⁸⁹"
        value = "".join(table[int(c)] for c in number)
    else:
        value = "".join(chr(ord(zero) + int(c)) for c in number)
    assert unicodedata.digit(value[0], None) == int(number[0])
    assert _reject(value).reason == "BAD_FORMAT"


@settings(max_examples=50)
@given(valid_numbers, st.integers(0, 12), _WHITESPACE, st.booleans())
def test_whitespace_rejected(number: str, pos: int, ws: str, replace: bool) -> None:
    if replace:
        pos = min(pos, 11)
        value = number[:pos] + ws + number[pos + 1 :]
    else:
        value = number[:pos] + ws + number[pos:]
    assert _reject(value).reason == "BAD_FORMAT"


@settings(max_examples=50)
@given(valid_numbers, st.integers(0, 11), _LETTERS)
def test_letters_rejected(number: str, pos: int, ch: str) -> None:
    value = number[:pos] + ch + number[pos + 1 :]
    assert _reject(value).reason == "BAD_FORMAT"


@pytest.mark.parametrize("length", [n for n in range(21) if n != 12])
def test_wrong_lengths_rejected(length: int) -> None:
    for value in ("1" * length, make_number("12345678901")[:length] + "0" * (length - 12)):
        assert _reject(value).reason == "BAD_FORMAT"


@given(st.integers(0, 20).filter(lambda n: n != 12).flatmap(
    lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)))
def test_wrong_lengths_rejected_property(value: str) -> None:
    assert _reject(value).reason == "BAD_FORMAT"


@given(st.text(max_size=20))
def test_arbitrary_text_is_bad_format_or_checked(value: str) -> None:
    if len(value) == 12 and value.isascii() and value.isdigit():
        if check_digit(value[:11]) == int(value[11]):
            assert validate_individual_number(value) == value.encode()
        else:
            assert _reject(value).reason == "BAD_CHECK_DIGIT"
    else:
        assert _reject(value).reason == "BAD_FORMAT"


@pytest.mark.parametrize("value", [None, 123456789018, b"123456789018", ["123456789018"]])
def test_non_strings_rejected(value: object) -> None:
    assert _reject(value).reason == "BAD_FORMAT"


def test_lone_surrogate_rejected() -> None:
    assert _reject("12345678901\ud800").reason == "BAD_FORMAT"


def test_error_never_contains_number() -> None:
    number = make_number("31415926535")
    wrong = number[:11] + str((int(number[11]) + 1) % 10)
    for value in (wrong, number + "0", " " + number, number[:11], number.replace("1", "\uff11")):
        err = _reject(value)
        assert number[:11] not in str(err)
