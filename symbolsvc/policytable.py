"""The permission table's published form: parse, canonicalise, hash (docs/DISCLOSURE.md).

Pure (standard library only), so the auditor's verifier (:mod:`symbolsvc.verify`)
parses the tables it finds in POLICY records with exactly the code the server
loads them with. :mod:`symbolsvc.policy` wraps it for the server.

A table's *canonical form* is a TOML text written by :func:`canonical`: groups
sorted by name (members sorted, distinct), then every ``[[allow]]`` rule in file
order with its keys in a fixed order, providers sorted and distinct, optional
keys only when set, and every rule's ``id`` written out (derived from the rule's
content when the file gave none). Parsing the canonical form gives the same table
again, so ``canonical(parse(canonical(t))) == canonical(t)``. The table's
*version* is the SHA-256 of the canonical form's UTF-8 bytes.

The canonical writer is hand-written on purpose: the bytes are hashed into the
access log forever, so they must not change with a TOML library's release.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

IDENT_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
RULE_KEYS = ("id", "requester", "office_work", "info_item", "providers", "purpose", "basis",
             "withhold_days")
MAX_TEXT = 1000  # characters of purpose or basis
DAY_US = 86_400 * 1_000_000
HEADER = "# symbolsvc canonical permission table v1\n"


class TableError(ValueError):
    """The table is not a valid permission table; the message names where."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One ``[[allow]]`` rule, as written (``requester``/``providers`` may name groups) and
    expanded (``requesters``/``provider_set``: agency IDs)."""

    id: str
    requester: str
    office_work: str
    info_item: str
    providers: tuple[str, ...]
    purpose: str
    basis: str
    withhold_days: int
    requesters: frozenset[str]
    provider_set: frozenset[str]

    def matches(self, requester: str, office_work: str, info_item: str) -> bool:
        return (requester in self.requesters and office_work == self.office_work
                and info_item == self.info_item)

    def withheld_until(self, time_us: int) -> int | None:
        """When a record made at ``time_us`` under this rule is disclosed (None: at once)."""
        return time_us + self.withhold_days * DAY_US if self.withhold_days else None


@dataclass(frozen=True, slots=True)
class Table:
    groups: dict[str, tuple[str, ...]]
    rules: tuple[Rule, ...]
    deny_all: bool

    def rule(self, rule_id: str) -> Rule | None:
        for r in self.rules:
            if r.id == rule_id:
                return r
        return None

    def permitted(self, requester: str, office_work: str, info_item: str) -> frozenset[str]:
        """Every provider any rule allows for the triple."""
        out: set[str] = set()
        for r in self.rules:
            if r.matches(requester, office_work, info_item):
                out |= r.provider_set
        return frozenset(out)


def is_ident(value: str) -> bool:
    return IDENT_RE.fullmatch(value) is not None


def parse(text: str, source: str = "policy.toml", *, max_withhold_days: int | None = None
          ) -> Table:
    """Parse and validate a table (the file or a canonical form)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TableError(f"{source}: not valid TOML: {exc}") from None
    unknown = set(doc) - {"groups", "allow", "deny_all"}
    if unknown:
        raise TableError(f"{source}: unknown top-level keys {sorted(unknown)}")
    groups = _groups(doc.get("groups", {}), source)
    raw_rules = doc.get("allow", [])
    if not isinstance(raw_rules, list):
        raise TableError(f"{source}: 'allow' must be an array of tables ([[allow]])")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_rules, 1):
        rule = _rule(raw, groups, f"{source}: [[allow]] #{i}", max_withhold_days)
        if rule.id in seen:
            raise TableError(f"{source}: [[allow]] #{i}: rule id {rule.id!r} is also the id of "
                             f"rule #{seen[rule.id]} (ids are unique; two rules without an id "
                             "and with the same content get the same derived id)")
        seen[rule.id] = i
        rules.append(rule)
    deny_all = doc.get("deny_all", False)
    if not isinstance(deny_all, bool):
        raise TableError(f"{source}: deny_all must be true or false")
    if not rules and not deny_all:
        # An empty or truncated file would otherwise deny every exchange of the nation.
        raise TableError(f"{source}: no [[allow]] rules; to deny every exchange on "
                         "purpose, write `deny_all = true`")
    if rules and deny_all:
        raise TableError(f"{source}: deny_all = true but the table has [[allow]] rules")
    return Table(groups, tuple(rules), deny_all)


def canonical(table: Table) -> str:
    """The canonical TOML text of ``table`` (see the module docstring)."""
    out = [HEADER]
    if table.deny_all:
        out.append("deny_all = true\n")
    if table.groups:
        out.append("\n[groups]\n")
        for name in sorted(table.groups):
            out.append(f"{_q(name)} = {_list(table.groups[name])}\n")
    for r in table.rules:
        out.append("\n[[allow]]\n")
        out.append(f"id = {_q(r.id)}\nrequester = {_q(r.requester)}\n")
        out.append(f"office_work = {_q(r.office_work)}\ninfo_item = {_q(r.info_item)}\n")
        out.append(f"providers = {_list(r.providers)}\n")
        if r.purpose:
            out.append(f"purpose = {_q(r.purpose)}\n")
        if r.basis:
            out.append(f"basis = {_q(r.basis)}\n")
        if r.withhold_days:
            out.append(f"withhold_days = {r.withhold_days}\n")
    return "".join(out)


def version_of(canonical_text: str) -> bytes:
    """The table version: SHA-256 of the canonical form."""
    return hashlib.sha256(canonical_text.encode("utf-8")).digest()


def derived_id(requester: str, office_work: str, info_item: str, providers: Iterable[str],
               purpose: str, basis: str, withhold_days: int) -> str:
    """A rule's id when the file gives none: stable in the rule's content alone."""
    content = json.dumps([requester, office_work, info_item, sorted(set(providers)), purpose,
                          basis, withhold_days], ensure_ascii=False, separators=(",", ":"))
    return "r-" + hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]


def _q(s: str) -> str:
    # Identifiers and checked free text hold no control character, so JSON's string
    # syntax is TOML's basic string here (only '"' and '\\' are escaped).
    return json.dumps(s, ensure_ascii=False)


def _list(items: Iterable[str]) -> str:
    return "[" + ", ".join(_q(s) for s in items) + "]"


def _rule(raw: object, groups: dict[str, tuple[str, ...]], where: str,
          max_withhold_days: int | None) -> Rule:
    if not isinstance(raw, dict):
        raise TableError(f"{where}: must be a table")
    extra = set(raw) - set(RULE_KEYS)
    if extra:
        raise TableError(f"{where}: unknown keys {sorted(extra)}")
    office_work = _ident(raw.get("office_work"), f"{where} office_work")
    info_item = _ident(raw.get("info_item"), f"{where} info_item")
    requester = raw.get("requester")
    requesters = _expand([requester], groups, f"{where} requester")
    providers_ = raw.get("providers")
    if not isinstance(providers_, list) or not providers_:
        raise TableError(f"{where}: providers must be a non-empty list")
    provider_set = _expand(providers_, groups, f"{where} providers")
    assert isinstance(requester, str)
    providers = tuple(sorted(set(providers_)))
    purpose = _text(raw.get("purpose", ""), f"{where} purpose")
    basis = _text(raw.get("basis", ""), f"{where} basis")
    days = raw.get("withhold_days", 0)
    if not isinstance(days, int) or isinstance(days, bool) or days < 0:
        raise TableError(f"{where} withhold_days: must be a whole number of days, 0 or more")
    if max_withhold_days is not None and days > max_withhold_days:
        raise TableError(f"{where} withhold_days: {days} is more than the configured maximum "
                         f"([policy] max_withhold_days = {max_withhold_days})")
    if "id" in raw:
        rule_id = _ident(raw["id"], f"{where} id")
    else:
        rule_id = derived_id(requester, office_work, info_item, providers, purpose, basis, days)
    return Rule(rule_id, requester, office_work, info_item, providers, purpose, basis, days,
                frozenset(requesters), frozenset(provider_set))


def _text(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise TableError(f"{where}: must be a string")
    if len(value) > MAX_TEXT:
        raise TableError(f"{where}: at most {MAX_TEXT} characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in value):
        raise TableError(f"{where}: must not contain control characters (one line of text)")
    return value


def _ident(value: object, where: str) -> str:
    if value is None:
        raise TableError(f"{where}: missing (a required key)")
    if not isinstance(value, str) or not is_ident(value):
        raise TableError(
            f"{where}: {value!r} is not a valid identifier "
            "(lower-case ASCII letters, digits, '.', '_', '-'; at most 64 characters)"
        )
    return value


def _groups(raw: object, source: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise TableError(f"{source}: [groups] must be a table")
    groups: dict[str, tuple[str, ...]] = {}
    for name, members in raw.items():
        _ident(name, f"{source}: group name")
        if not isinstance(members, list):
            raise TableError(f"{source}: group {name!r} must be a list of agency IDs")
        groups[name] = tuple(sorted({_ident(m, f"{source}: member of group {name!r}")
                                     for m in members}))
    return groups


def _expand(names: Iterable[object], groups: dict[str, tuple[str, ...]], where: str
            ) -> set[str]:
    out: set[str] = set()
    for name in names:
        if isinstance(name, str) and name.startswith("@"):
            if name[1:] not in groups:
                raise TableError(f"{where}: unknown group {name!r}")
            out.update(groups[name[1:]])
        else:
            out.add(_ident(name, where))
    return out
