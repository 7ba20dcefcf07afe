"""CONTRACT §5.3 and §5.4 on what is really stored, on each registry backend: the registry,
dumped whole, contains no individual number and joins nothing across agencies; no symbol is
in the access log's rows; no number is in the server's logs.

What "dumped whole" means is the backend's (helpers.registry_dump): for SQLite the database
file and its WAL byte for byte; for PostgreSQL pg_dump's plain dump of the database and every
stored value in its raw form.

One server on a fresh deployment issues a set of numbers for several agencies, translates and
resolves between them and releases a few holdings; the registry is then read while the server
runs and again after it has stopped.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    NumberSource,
    Registries,
    RegistryReader,
    ServerProcess,
    chunked,
    config_with,
    copy_deployment,
    registry_backend,
    registry_dump,
    registry_path,
)
from symbolsvc_client import Deployment

from symbolsvc.v1 import broker_service_pb2 as broker_pb

N = 150
AGENCIES = ("city-chiyoda", "tax-office", "pension-service", "city-minato")


@dataclass
class Scenario:
    server: ServerProcess
    numbers: list[str]
    # agency -> number -> symbol
    symbols: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.server.directory

    @property
    def backend(self) -> str:
        return registry_backend(self.server.config)

    def all_symbols(self) -> list[str]:
        return [s for m in self.symbols.values() for s in m.values()]


def digest(symbol: str) -> bytes:
    """The raw HMAC inside a symbol "k<v>.<base32>"."""
    body = symbol.split(".", 1)[1].upper()
    return base64.b32decode(body + "=" * (-len(body) % 8))[:32]


def number_encodings(number: str) -> list[bytes]:
    """The ways a number could sit in a file: text in ASCII and UTF-16, as an integer (SQLite
    stores one of 12 digits as 6 big-endian bytes; PostgreSQL a bigint as 8 little-endian
    ones), and its first eleven digits."""
    return [number.encode(), number.encode("utf-16-le"), number.encode("utf-16-be"),
            int(number).to_bytes(6, "big"), int(number).to_bytes(8, "little"),
            number[:11].encode()]


@pytest.fixture(scope="module")
def scenario(deployment_template: Path, tmp_path_factory: pytest.TempPathFactory,
             server_extra_config: Mapping[str, Mapping[str, Any]],
             session_registries: Registries) -> Iterator[Scenario]:
    directory = session_registries.provision(copy_deployment(
        deployment_template, tmp_path_factory.mktemp("privacy") / "dep"))
    config = config_with(directory / "config.toml", server_extra_config, "privacy")
    server = ServerProcess(config, directory.parent / "server.log").start()
    numbers = NumberSource().many(N)
    sc = Scenario(server, numbers)
    dep = Deployment(directory)
    try:
        held_by = {"city-chiyoda": numbers, "tax-office": numbers,
                   "pension-service": numbers[:60], "city-minato": numbers[:60]}
        for agency, nums in held_by.items():
            with dep.agency(agency, server.address) as client:
                results = client.issue_batch(nums)
            sc.symbols[agency] = {n: r.issued.symbol for n, r in zip(nums, results, strict=True)}
        with dep.portal(server.address) as portal:
            sc.symbols["portal"] = {n: portal.agency.issue(n).symbol for n in numbers[:10]}

        def req(requester: str, provider: str, office: str, item: str, n: str,
                x: str) -> broker_pb.TranslateSymbolRequest:
            return broker_pb.TranslateSymbolRequest(
                requester_agency=requester, symbol=sc.symbols[requester][n],
                provider_agency=provider, office_work=office, info_item=item, exchange_id=x)

        with dep.broker(server.address) as broker:
            reqs = [req("city-chiyoda", "tax-office", "resident-tax", "national-tax-income", n,
                        f"a-{i}") for i, n in enumerate(numbers)]
            reqs += [req("tax-office", "city-chiyoda", "tax-investigation", "resident-record",
                         n, f"b-{i}") for i, n in enumerate(numbers[:50])]
            reqs += [req("pension-service", "city-minato", "survivor-pension",
                         "resident-tax-income", n, f"c-{i}") for i, n in enumerate(numbers[:50])]
            for part in chunked(reqs, 1000):
                for r, q in zip(broker.translate_batch(part), part, strict=True):
                    provider = sc.symbols[q.provider_agency]
                    assert r.translated.provider_symbol in provider.values()
            # A number in a free-form field: refused per item, never echoed, logged or
            # stored (issue 10 item 8; the tests below scan logs and registry for it).
            bad = [req("city-chiyoda", "tax-office", "resident-tax", "national-tax-income",
                       numbers[0], f"x-{numbers[0]}"),
                   req("city-chiyoda", "tax-office", f"resident-tax-{numbers[1]}",
                       "national-tax-income", numbers[1], "bad-1"),
                   req("city-chiyoda", "tax-office", "resident-tax", "national-tax-income",
                       numbers[2], "x-" + full_width(numbers[2])),
                   req("city-chiyoda", "tax-office", "resident-tax", "national-tax-income",
                       numbers[3], "fine-after-bad")]
            out = broker.translate_batch(bad)
            assert [r.error.reason for r in out[:3]] == ["LOOKS_LIKE_INDIVIDUAL_NUMBER"] * 3
            assert [r.error.field for r in out[:3]] == [
                "requests[0].exchange_id", "requests[1].office_work", "requests[2].exchange_id"]
            assert all(n[:11] not in r.error.message for r, n in zip(out, numbers, strict=False))
            assert out[3].translated.provider_symbol
            for n in numbers[:20]:
                r = broker.resolve("pension-service", sc.symbols["pension-service"][n],
                                   "survivor-pension", "resident-tax-income", f"r-{n[-4:]}")
                assert list(r.provider_agencies) == ["city-chiyoda", "city-minato"]
        with dep.agency("city-minato", server.address) as minato:
            for n in numbers[:10]:
                assert minato.release(sc.symbols["city-minato"][n])
        yield sc
    finally:
        server.stop()


def full_width(number: str) -> str:
    return number.translate({0x30 + d: 0xFF10 + d for d in range(10)})


def assert_no_number_in_registry(sc: Scenario) -> None:
    dump = registry_dump(sc.server.config)
    if sc.backend == "sqlite":
        assert registry_path(sc.directory).name in dump
    # Not vacuous: the holdings' symbols are stored as they are, and the scan sees them.
    everything = b"".join(dump.values())
    assert all(s.encode() in everything for s in sc.all_symbols()[:20])
    for name, data in dump.items():
        for n in sc.numbers:
            for enc in number_encodings(n):
                assert enc not in data, f"an individual number ({enc!r} form) is in {name}"


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def test_registry_contains_no_number_while_serving(scenario: Scenario) -> None:
    assert scenario.server.running
    if scenario.backend == "sqlite":
        wal = registry_path(scenario.directory).with_name("registry.db-wal")
        assert wal.exists(), "expected a WAL file while the server runs (WAL mode)"
    assert_no_number_in_registry(scenario)


def test_one_subjects_rows_for_two_agencies_share_no_value(scenario: Scenario) -> None:
    with RegistryReader(scenario.server.config) as db:
        cols, all_rows = db.rows("holdings")
    assert {"agency", "symbol"} <= set(cols)
    a_i, s_i = cols.index("agency"), cols.index("symbol")
    by_key = {(r[a_i], r[s_i]): r for r in all_rows}
    # A column with at most two values in the whole table is a flag (e.g. released): one
    # bit joins nothing. Every other value must be unique to its row across the pair.
    flags = {c for i, c in enumerate(cols) if len({r[i] for r in all_rows}) <= 2}
    assert "symbol" not in flags and "sealed_subject" not in flags
    compared = 0
    for n in scenario.numbers:
        held = [(a, m[n]) for a, m in scenario.symbols.items() if n in m]
        for (a1, s1), (a2, s2) in itertools.combinations(held, 2):
            r1, r2 = by_key[(a1, s1)], by_key[(a2, s2)]
            v1 = [as_bytes(v) for c, v in zip(cols, r1, strict=True) if c not in flags]
            v2 = [as_bytes(v) for c, v in zip(cols, r2, strict=True) if c not in flags]
            assert not set(v1) & set(v2), f"{a1} and {a2} rows of one subject share a value"
            # Nor a shared fragment: no 8-byte window of one row's values in the other's.
            blob2 = b"\x00".join(v2)
            for v in v1:
                for i in range(len(v) - 7):
                    assert v[i:i + 8] not in blob2, f"{a1}/{a2} rows share bytes"
            # Neither row carries the other agency's symbol, as text or as its raw HMAC.
            for row, other in ((v1, s2), (v2, s1)):
                blob = b"\x00".join(row)
                assert other.encode() not in blob and digest(other) not in blob
            compared += 1
    assert compared >= N  # the comparison was not vacuous


def test_no_symbol_and_no_number_outside_holdings(scenario: Scenario) -> None:
    """Access records (and every other table but holdings) hold no symbol of any agency."""
    symbols = scenario.all_symbols()
    needles = [s.encode() for s in symbols] + [digest(s) for s in symbols]
    needles += [enc for n in scenario.numbers for enc in number_encodings(n)]
    with RegistryReader(scenario.server.config) as db:
        tables = db.tables()
        assert "access_records" in tables
        _, records = db.rows("access_records")
        # 150 + 50 + 50 translations, the one valid item beside the refused ones, and 20
        # resolutions; the refused items left nothing.
        assert len(records) == 271
        for table in tables:
            if table == "holdings":
                continue
            _, content = db.rows(table)
            for row in content:
                blob = b"\x00".join(as_bytes(v) for v in row)
                for needle in needles:
                    assert needle not in blob, f"a symbol or number is in {table}"


def test_logs_contain_no_number(scenario: Scenario) -> None:
    logs = scenario.server.log_text() + scenario.server.security_log_text()
    assert logs  # the server did log something
    for n in scenario.numbers:
        assert n not in logs and n[:11] not in logs
        assert full_width(n)[:11] not in logs and full_width(n)[:11].encode("unicode_escape") \
            .decode() not in logs


def test_registry_contains_no_number_after_stopping(scenario: Scenario) -> None:
    assert scenario.server.stop() == 0
    assert_no_number_in_registry(scenario)
    with RegistryReader(scenario.server.config) as db:
        assert db.one("SELECT COUNT(*) FROM holdings")[0] == len(scenario.all_symbols())
