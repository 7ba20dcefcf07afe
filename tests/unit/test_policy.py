"""The permission table (symbolsvc.policy): CONTRACT §9 format, groups, errors, reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from symbolsvc.errors import ConfigError
from symbolsvc.policy import Policy, PolicyHolder, is_ident

CONTRACT_EXAMPLE = """
[groups]
municipalities = ["city-chiyoda", "city-minato"]

[[allow]]
requester   = "pension-service"      # an agency ID, or "@group"
office_work = "survivor-pension"
info_item   = "resident-tax-income"
providers   = ["@municipalities"]    # agency IDs and/or "@group"s
"""

RULE = """
[[allow]]
requester   = "pension-service"
office_work = "survivor-pension"
info_item   = "resident-tax-income"
providers   = ["city-chiyoda"]
"""


def test_spec_example() -> None:
    p = Policy.from_toml(CONTRACT_EXAMPLE)
    assert p.rules == 1
    key = ("pension-service", "survivor-pension", "resident-tax-income")
    assert p.permitted_providers(*key) == {"city-chiyoda", "city-minato"}
    assert p.allows(*key, "city-chiyoda")
    assert p.allows(*key, "city-minato")
    assert not p.allows(*key, "city-shibuya")
    assert not p.allows(*key, "pension-service")
    # each of the four coordinates matters
    assert not p.allows("city-chiyoda", "survivor-pension", "resident-tax-income", "city-minato")
    assert not p.allows("pension-service", "child-allowance", "resident-tax-income",
                        "city-minato")
    assert not p.allows("pension-service", "survivor-pension", "other-item", "city-minato")
    assert p.permitted_providers("pension-service", "survivor-pension", "other") == frozenset()
    # a group name is not itself an agency
    assert not p.allows(*key, "municipalities")
    assert not p.allows(*key, "@municipalities")


def test_groups_expand_in_requester_and_providers_and_merge() -> None:
    p = Policy.from_toml("""
[groups]
cities = ["city-a", "city-b"]
wards  = ["ward-x"]
empty  = []

[[allow]]
requester   = "@cities"
office_work = "child-allowance"
info_item   = "resident-record"
providers   = ["@wards", "tax-office", "@empty"]

[[allow]]
requester   = "city-a"
office_work = "child-allowance"
info_item   = "resident-record"
providers   = ["pension-service", "ward-x"]

[[allow]]
requester   = "@empty"
office_work = "nothing"
info_item   = "nothing"
providers   = ["city-a"]
""")
    assert p.rules == 3
    assert p.permitted_providers("city-a", "child-allowance", "resident-record") == {
        "ward-x", "tax-office", "pension-service"}
    assert p.permitted_providers("city-b", "child-allowance", "resident-record") == {
        "ward-x", "tax-office"}
    assert p.permitted_providers("ward-x", "child-allowance", "resident-record") == frozenset()
    assert not any(k[1] == "nothing" for k in p.providers)


def test_empty_table_allows_nothing() -> None:
    p = Policy.from_toml("")
    assert p.rules == 0
    assert not p.allows("a", "b", "c", "d")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[allow]\n", "not valid TOML"),
        ("color = 1\n", "unknown top-level keys ['color']"),
        ("groups = [1]\n", "[groups] must be a table"),
        ("[groups]\ng = 'city-a'\n", "group 'g' must be a list"),
        ("[groups]\nBig = ['city-a']\n", "'Big' is not a valid identifier"),
        ("[groups]\ng = ['City A']\n", "member of group 'g': 'City A' is not a valid identifier"),
        ("[groups]\ng = ['@h']\nh = ['city-a']\n", "member of group 'g': '@h'"),
        ("[groups]\ng = [7]\n", "member of group 'g': 7 is not a valid identifier"),
        ("allow = 3\n", "'allow' must be an array of tables"),
        ("allow = [1]\n", "[[allow]] #1: must be a table"),
        (RULE + RULE.replace('requester   = "pension-service"', 'requester = "@nope"'),
         "[[allow]] #2 requester: unknown group '@nope'"),
        (RULE.replace('["city-chiyoda"]', '["@nope"]'), "[[allow]] #1 providers: unknown group"),
        (RULE + "extra = 1\n", "[[allow]] #1: unknown keys ['extra']"),
        (RULE.replace('requester   = "pension-service"\n', ""), "[[allow]] #1 requester: missing"),
        (RULE.replace('office_work = "survivor-pension"\n', ""),
         "[[allow]] #1 office_work: missing"),
        (RULE.replace('info_item   = "resident-tax-income"\n', ""),
         "[[allow]] #1 info_item: missing"),
        (RULE.replace('providers   = ["city-chiyoda"]\n', ""),
         "[[allow]] #1: providers must be a non-empty list"),
        (RULE.replace('["city-chiyoda"]', "[]"), "providers must be a non-empty list"),
        (RULE.replace('["city-chiyoda"]', '"city-chiyoda"'), "providers must be a non-empty list"),
        (RULE.replace('["city-chiyoda"]', "[1]"), "[[allow]] #1 providers: 1 is not a valid"),
        (RULE.replace('"pension-service"', '["pension-service"]'),
         "[[allow]] #1 requester: ['pension-service'] is not a valid identifier"),
        (RULE.replace('"survivor-pension"', "12"), "office_work: 12 is not a valid identifier"),
        (RULE.replace('"survivor-pension"', '"Survivor Pension"'),
         "office_work: 'Survivor Pension' is not a valid identifier"),
        (RULE.replace('"resident-tax-income"', '"-leading"'), "info_item: '-leading'"),
        (RULE.replace('"resident-tax-income"', '"a' + "b" * 64 + '"'), "info_item"),
        (RULE.replace('"city-chiyoda"', '"city-chiyoda", "市役所"'), "'市役所' is not a valid"),
    ],
)
def test_malformed_tables_are_rejected_with_a_clear_message(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        Policy.from_toml(text, "deploy/policy.toml")
    message = str(info.value)
    assert message.startswith("deploy/policy.toml: ")
    assert expected in message


@pytest.mark.parametrize(
    ("value", "ok"),
    [("city-chiyoda", True), ("a", True), ("a.b_c-d", True), ("0", True), ("a" * 64, True),
     ("a" * 65, False), ("", False), ("-a", False), ("a-", False), ("A", False), ("a b", False),
     ("@g", False), ("\uff41", False), ("a\n", False)],
)
def test_is_ident(value: str, ok: bool) -> None:
    assert is_ident(value) is ok


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Policy.load(tmp_path / "policy.toml")
    assert "policy.toml" in str(info.value)


def test_holder_reload_swaps_or_keeps(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(CONTRACT_EXAMPLE, encoding="utf-8")
    holder = PolicyHolder(path)
    first = holder.current
    key = ("pension-service", "survivor-pension", "resident-tax-income")
    assert first.allows(*key, "city-minato")

    path.write_text(RULE, encoding="utf-8")
    second = holder.reload()
    assert holder.current is second
    assert not second.allows(*key, "city-minato")
    assert second.allows(*key, "city-chiyoda")
    assert first.allows(*key, "city-minato")  # tables are immutable snapshots

    for broken in ("[[allow]\n", RULE + "bogus = true\n", "[groups]\ng = '@x'\n"):
        path.write_text(broken, encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            holder.reload()
        assert str(path) in str(info.value)
        assert holder.current is second

    path.unlink()
    with pytest.raises(ConfigError):
        holder.reload()
    assert holder.current is second


def test_holder_refuses_to_start_on_a_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text("nonsense = ", encoding="utf-8")
    with pytest.raises(ConfigError):
        PolicyHolder(path)
