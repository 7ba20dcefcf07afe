"""The permission table (policy.toml): who may obtain what from whom, for which office work.

Format (CONTRACT §9)::

    [groups]
    municipalities = ["city-chiyoda", "city-minato"]

    [[allow]]
    id          = "survivor-income"      # optional: derived from the content if absent
    requester   = "pension-service"      # an agency ID, or "@group"
    office_work = "survivor-pension"
    info_item   = "resident-tax-income"
    providers   = ["@municipalities"]    # agency IDs and/or "@group"s
    purpose     = "..."                  # optional: a sentence for the person
    basis       = "..."                  # optional: the legal basis (a law article)
    withhold_days = 0                    # optional: defer telling the person (≤ the
                                         # configured [policy] max_withhold_days)

A table with no ``[[allow]]`` rule is refused unless it says ``deny_all =
true``: an empty or truncated file must not silently deny every exchange. The
file must be UTF-8.

Groups are expanded once at load time into a frozen index, so a check is one
set lookup and a resolution one dict lookup. A table is immutable; reloading
builds a new one and swaps the reference (see :class:`PolicyHolder`).

Parsing, the canonical form and the version hash are :mod:`.policytable` (pure,
shared with the auditor's verifier); every table the server serves under is first
published as a POLICY record (:mod:`.publish`, docs/DISCLOSURE.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError
from .policytable import IDENT_RE, Rule, Table, TableError, canonical, parse, version_of

__all__ = [
    "DEFAULT_MAX_WITHHOLD_DAYS",
    "IDENT_RE",
    "Policy",
    "PolicyHolder",
    "Rule",
    "is_ident",
]

DEFAULT_MAX_WITHHOLD_DAYS = 365


def is_ident(value: str) -> bool:
    return IDENT_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class Policy:
    """An expanded permission table, its canonical text and version."""

    # (requester, office_work, info_item) -> providers allowed
    providers: dict[tuple[str, str, str], frozenset[str]]
    rules: int
    table: Table
    canonical: str
    version: bytes
    # (requester, office_work, info_item) -> the rules for it, in table order
    _by_triple: dict[tuple[str, str, str], tuple[Rule, ...]] = field(repr=False)

    def allows(self, requester: str, office_work: str, info_item: str, provider: str) -> bool:
        allowed = self.providers.get((requester, office_work, info_item))
        return allowed is not None and provider in allowed

    def permitted_providers(
        self, requester: str, office_work: str, info_item: str
    ) -> frozenset[str]:
        return self.providers.get((requester, office_work, info_item), frozenset())

    def grant(self, requester: str, office_work: str, info_item: str,
              provider: str | None = None) -> Rule | None:
        """The rule a record names: the first rule (in table order) for the triple that
        allows ``provider`` (any rule for the triple when None)."""
        for rule in self._by_triple.get((requester, office_work, info_item), ()):
            if provider is None or provider in rule.provider_set:
                return rule
        return None

    @classmethod
    def from_toml(cls, text: str, source: str = "policy.toml", *,
                  max_withhold_days: int | None = DEFAULT_MAX_WITHHOLD_DAYS) -> Policy:
        try:
            table = parse(text, source, max_withhold_days=max_withhold_days)
        except TableError as exc:
            raise ConfigError(str(exc)) from None
        return cls.of(table)

    @classmethod
    def of(cls, table: Table) -> Policy:
        index: dict[tuple[str, str, str], set[str]] = {}
        by_triple: dict[tuple[str, str, str], list[Rule]] = {}
        for rule in table.rules:
            for requester in rule.requesters:
                key = (requester, rule.office_work, rule.info_item)
                index.setdefault(key, set()).update(rule.provider_set)
                by_triple.setdefault(key, []).append(rule)
        text = canonical(table)
        return cls({k: frozenset(v) for k, v in index.items()}, len(table.rules), table, text,
                   version_of(text), {k: tuple(v) for k, v in by_triple.items()})

    @classmethod
    def load(cls, path: Path, *,
             max_withhold_days: int | None = DEFAULT_MAX_WITHHOLD_DAYS) -> Policy:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the permission table {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 (byte {exc.start}); the permission table "
                              "must be UTF-8 text") from None
        return cls.from_toml(text, str(path), max_withhold_days=max_withhold_days)


class PolicyHolder:
    """The live permission table; :meth:`reload` swaps it atomically or keeps the old one."""

    def __init__(self, path: Path, *,
                 max_withhold_days: int = DEFAULT_MAX_WITHHOLD_DAYS) -> None:
        self.path = path
        self.max_withhold_days = max_withhold_days
        self.current = Policy.load(path, max_withhold_days=max_withhold_days)

    def read(self) -> Policy:
        """Load the file again without swapping (raises :class:`ConfigError`)."""
        return Policy.load(self.path, max_withhold_days=self.max_withhold_days)

    def reload(self) -> Policy:
        """Load the file again; on error raise :class:`ConfigError` and keep the old table."""
        self.current = self.read()
        return self.current
