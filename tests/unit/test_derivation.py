"""Keyed derivation (symbolsvc.symbols): symbols, subject ids, log pseudonyms, sealing."""

from __future__ import annotations

import base64
import re

import pytest
from helpers import make_number, valid_numbers
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolsvc.errors import InvalidArgument
from symbolsvc.keys import Keyring
from symbolsvc.numbers import validate_individual_number
from symbolsvc.symbols import Deriver, symbol_version

KEYRING = Keyring.generate()
D = Deriver(KEYRING)
OTHER = Deriver(Keyring.generate())

agencies = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=24)
FAST = settings(max_examples=40, deadline=None)
SYMBOL_RE = re.compile(r"k([1-9][0-9]*)\.([a-z2-7]{52})")


def _sid(d: Deriver, number: str) -> bytes:
    return d.subject_id(validate_individual_number(number))


def _mac(symbol: str) -> bytes:
    body = symbol.split(".", 1)[1].upper()
    return base64.b32decode(body + "=" * (-len(body) % 8))


@FAST
@given(valid_numbers, agencies)
def test_deterministic_per_number_agency_version(number: str, agency: str) -> None:
    sid = _sid(D, number)
    assert sid == _sid(D, number)
    assert len(sid) == 32
    s1 = D.symbol(agency, sid)
    assert s1 == D.symbol(agency, sid, 1)
    # a second Deriver over the same keyring (another replica) agrees
    again = Deriver(KEYRING)
    assert again.symbol(agency, again.subject_id(number.encode())) == s1


@FAST
@given(valid_numbers, agencies, agencies)
def test_different_agencies_different_symbols(number: str, a: str, b: str) -> None:
    sid = _sid(D, number)
    if a == b:
        assert D.symbol(a, sid) == D.symbol(b, sid)
    else:
        assert D.symbol(a, sid) != D.symbol(b, sid)


@FAST
@given(valid_numbers, valid_numbers, agencies)
def test_different_numbers_different_symbols(n1: str, n2: str, agency: str) -> None:
    if n1 != n2:
        assert _sid(D, n1) != _sid(D, n2)
        assert D.symbol(agency, _sid(D, n1)) != D.symbol(agency, _sid(D, n2))


@FAST
@given(valid_numbers, agencies)
def test_symbol_syntax(number: str, agency: str) -> None:
    symbol = D.symbol(agency, _sid(D, number))
    m = SYMBOL_RE.fullmatch(symbol)
    assert m is not None, symbol
    assert symbol.startswith("k1.")
    assert len(m.group(2)) == 52
    assert symbol.isascii()
    assert symbol_version(symbol) == 1
    assert len(_mac(symbol)) == 32


@FAST
@given(valid_numbers, agencies)
def test_two_keyrings_give_unrelated_symbols(number: str, agency: str) -> None:
    sid_a, sid_b = _sid(D, number), _sid(OTHER, number)
    assert sid_a != sid_b
    assert D.symbol(agency, sid_a) != OTHER.symbol(agency, sid_b)
    # the subject id alone does not determine the symbol either: the agency key matters
    assert D.symbol(agency, sid_a) != OTHER.symbol(agency, sid_a)


@FAST
@given(valid_numbers, agencies)
def test_number_not_recoverable_as_substring(number: str, agency: str) -> None:
    sid = _sid(D, number)
    symbol = D.symbol(agency, sid)
    raw = number.encode("ascii")
    assert number not in symbol
    assert raw not in sid
    for encoding in (sid.hex(), base64.b64encode(sid).decode(), base64.b32encode(sid).decode()):
        assert number not in encoding
    pseudonym = D.log_pseudonym(sid)
    assert raw not in pseudonym and number not in pseudonym.hex()


def test_subject_id_is_keyed() -> None:
    """CONTRACT §5.2: no unkeyed hash of the number is ever derived."""
    import hashlib

    number = make_number("12345678901").encode()
    sid = D.subject_id(number)
    for name in ("sha256", "sha3_256", "blake2s"):
        assert sid != hashlib.new(name, number).digest()
    assert sid != D.subject_id(make_number("12345678902").encode())


def test_key_versions() -> None:
    kr = Keyring.generate()
    kr.symbol_keys[2] = bytes(range(32))
    kr.current_version = 2
    d = Deriver(kr)
    sid = d.subject_id(b"123456789018")
    s1, s2 = d.symbol("city-a", sid, 1), d.symbol("city-a", sid)
    assert s1.startswith("k1.") and s2.startswith("k2.")
    assert symbol_version(s1) == 1 and symbol_version(s2) == 2
    assert _mac(s1) != _mac(s2)
    with pytest.raises(InvalidArgument) as info:
        d.symbol("city-a", sid, 3)
    assert info.value.reason == "UNKNOWN_KEY_VERSION"


@pytest.mark.parametrize(
    "bad",
    ["", "k1", "k1.", "k0." + "a" * 52, "k1." + "a" * 51, "k1." + "a" * 53, "K1." + "a" * 52,
     "k1." + "A" * 52, "k1." + "1" * 52, "k1." + "8" * 52, "k01." + "a" * 52,
     "k123456." + "a" * 52, "k1:" + "a" * 52, " k1." + "a" * 52, "k1." + "a" * 52 + "\n",
     "k\uff11." + "a" * 52, "k1." + "a" * 51 + "=", "x" * 10_000],
)
def test_symbol_version_rejects(bad: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        symbol_version(bad, "requests[3].symbol")
    assert info.value.reason == "BAD_SYMBOL"
    assert info.value.field == "requests[3].symbol"


@FAST
@given(valid_numbers, agencies)
def test_seal_round_trip_and_fresh_nonce(number: str, agency: str) -> None:
    sid = _sid(D, number)
    symbol = D.symbol(agency, sid)
    a, b = D.seal(sid, agency, symbol), D.seal(sid, agency, symbol)
    assert a != b  # fresh nonce: no value repeats between rows
    assert a[1:13] != b[1:13]
    assert D.unseal(a, agency, symbol) == sid
    assert D.unseal(b, agency, symbol) == sid
    assert sid not in a


@FAST
@given(valid_numbers, agencies, agencies)
def test_unseal_binds_agency_and_symbol(number: str, agency: str, other: str) -> None:
    sid = _sid(D, number)
    symbol = D.symbol(agency, sid)
    sealed = D.seal(sid, agency, symbol)
    if other != agency:
        with pytest.raises(ValueError):
            D.unseal(sealed, other, symbol)
        with pytest.raises(ValueError):  # moved to the other agency's row
            D.unseal(sealed, other, D.symbol(other, sid))
    with pytest.raises(ValueError):
        D.unseal(sealed, agency, D.symbol(agency, _sid(D, make_number("99999999999"))))
    # the AAD separator prevents agency/symbol boundary games
    with pytest.raises(ValueError):
        D.unseal(sealed, agency + "\x00" + symbol[:2], symbol[2:])
    with pytest.raises(ValueError):  # another keyring cannot open it
        OTHER.unseal(sealed, agency, symbol)


@settings(max_examples=50, deadline=None)
@given(valid_numbers, st.data())
def test_unseal_detects_any_flipped_bit(number: str, data: st.DataObject) -> None:
    sid = _sid(D, number)
    symbol = D.symbol("city-a", sid)
    sealed = D.seal(sid, "city-a", symbol)
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    damaged = bytearray(sealed)
    damaged[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ValueError):
        D.unseal(bytes(damaged), "city-a", symbol)


def test_unseal_rejects_truncated_and_unknown_format() -> None:
    sid = _sid(D, "123456789018")
    symbol = D.symbol("city-a", sid)
    sealed = D.seal(sid, "city-a", symbol)
    for n in range(len(sealed)):
        with pytest.raises(ValueError):
            D.unseal(sealed[:n], "city-a", symbol)
    with pytest.raises(ValueError):
        D.unseal(sealed + b"\x00", "city-a", symbol)
    with pytest.raises(ValueError):
        D.unseal(b"\x02" + sealed[1:], "city-a", symbol)


@FAST
@given(valid_numbers, st.lists(agencies, min_size=1, max_size=8))
def test_log_pseudonym_is_no_agency_symbol(number: str, agency_list: list[str]) -> None:
    sid = _sid(D, number)
    pseudonym = D.log_pseudonym(sid)
    assert len(pseudonym) == 32
    assert pseudonym == D.log_pseudonym(sid)
    assert pseudonym != sid
    for agency in agency_list:
        symbol = D.symbol(agency, sid)
        assert _mac(symbol) != pseudonym
        assert pseudonym.hex() not in symbol
    # keyed: another keyring's pseudonym for the same number is unrelated
    assert OTHER.log_pseudonym(_sid(OTHER, number)) != pseudonym
