"""Individual numbers for tests, made independently of the code under test.

* :func:`reference_check_digit` — CONTRACT §6 written out again from the text, independent
  of :mod:`symbolsvc.numbers`, so the tests do not check the code against itself.
* :func:`make_number` — the one way tests make a valid number from 11 digits.
* :func:`number_for` — a deterministic valid number for an index.
* :class:`NumberSource` — fresh, distinct valid numbers for a test session.
* :data:`valid_numbers` — a hypothesis strategy of valid individual numbers.
"""

from __future__ import annotations

import itertools
import random
import threading

from hypothesis import strategies as st


def reference_check_digit(first_eleven: str) -> int:
    """CONTRACT §6, literally: P11..P1 left to right, Q_n = n+1 (n<=6) or n-5 (n>=7)."""
    assert len(first_eleven) == 11
    total = 0
    for idx, ch in enumerate(first_eleven):
        n = 11 - idx
        q = n + 1 if n <= 6 else n - 5
        total += (ord(ch) - ord("0")) * q
    r = total % 11
    return 0 if r <= 1 else 11 - r


def reference_remainder(first_eleven: str) -> int:
    total = 0
    for idx, ch in enumerate(first_eleven):
        n = 11 - idx
        total += (ord(ch) - ord("0")) * (n + 1 if n <= 6 else n - 5)
    return total % 11


def make_number(first_eleven: str) -> str:
    """A valid individual number: 11 digits and their check digit (CONTRACT §6)."""
    return first_eleven + str(reference_check_digit(first_eleven))


def number_for(i: int) -> str:
    """A deterministic valid number for index i (distinct for distinct i < 10**11)."""
    return make_number(f"{i:011d}")


def wrong_check_digit(number: str) -> str:
    """The same 11 digits with a check digit that is wrong."""
    return number[:11] + str((int(number[11]) + 1) % 10)


class NumberSource:
    """Fresh, distinct, valid individual numbers (thread-safe), unique within a session.

    The start is random so that two sessions on one deployment do not collide either.
    """

    def __init__(self, seed: int | None = None) -> None:
        rng = random.Random(seed)
        self._counter = itertools.count(rng.randrange(10_000_000_000, 80_000_000_000))
        self._lock = threading.Lock()

    def one(self) -> str:
        with self._lock:
            return make_number(f"{next(self._counter):011d}")

    def many(self, n: int) -> list[str]:
        with self._lock:
            return [make_number(f"{next(self._counter):011d}") for _ in range(n)]


ascii_digits = st.sampled_from("0123456789")
prefixes = st.text(alphabet="0123456789", min_size=11, max_size=11)
valid_numbers = prefixes.map(make_number)
