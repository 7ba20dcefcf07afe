"""The permission table (policy.toml): who may obtain what from whom, for which office work.

Format (CONTRACT §9)::

    [groups]
    municipalities = ["city-chiyoda", "city-minato"]

    [[allow]]
    requester   = "pension-service"      # an agency ID, or "@group"
    office_work = "survivor-pension"
    info_item   = "resident-tax-income"
    providers   = ["@municipalities"]    # agency IDs and/or "@group"s

Groups are expanded once at load time into a frozen index, so a check is one
set lookup and a resolution one dict lookup. A table is immutable; reloading
builds a new one and swaps the reference (see :class:`PolicyHolder`).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

# Agency IDs, office works and info items: lower-case ASCII words joined by
# '-', '_' or '.', as in the contract's examples; bounded so they fit in a leaf.
IDENT_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")


def is_ident(value: str) -> bool:
    return IDENT_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class Policy:
    """An expanded permission table."""

    # (requester, office_work, info_item) -> providers allowed
    providers: dict[tuple[str, str, str], frozenset[str]]
    rules: int

    def allows(self, requester: str, office_work: str, info_item: str, provider: str) -> bool:
        allowed = self.providers.get((requester, office_work, info_item))
        return allowed is not None and provider in allowed

    def permitted_providers(
        self, requester: str, office_work: str, info_item: str
    ) -> frozenset[str]:
        return self.providers.get((requester, office_work, info_item), frozenset())

    @classmethod
    def from_toml(cls, text: str, source: str = "policy.toml") -> Policy:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        unknown = set(doc) - {"groups", "allow"}
        if unknown:
            raise ConfigError(f"{source}: unknown top-level keys {sorted(unknown)}")
        groups = _groups(doc.get("groups", {}), source)
        table: dict[tuple[str, str, str], set[str]] = {}
        rules = doc.get("allow", [])
        if not isinstance(rules, list):
            raise ConfigError(f"{source}: 'allow' must be an array of tables ([[allow]])")
        for i, rule in enumerate(rules, 1):
            where = f"{source}: [[allow]] #{i}"
            if not isinstance(rule, dict):
                raise ConfigError(f"{where}: must be a table")
            extra = set(rule) - {"requester", "office_work", "info_item", "providers"}
            if extra:
                raise ConfigError(f"{where}: unknown keys {sorted(extra)}")
            office_work = _ident(rule.get("office_work"), f"{where} office_work")
            info_item = _ident(rule.get("info_item"), f"{where} info_item")
            requesters = _expand([rule.get("requester")], groups, f"{where} requester")
            providers_ = rule.get("providers")
            if not isinstance(providers_, list) or not providers_:
                raise ConfigError(f"{where}: providers must be a non-empty list")
            providers = _expand(providers_, groups, f"{where} providers")
            for requester in requesters:
                table.setdefault((requester, office_work, info_item), set()).update(providers)
        return cls({k: frozenset(v) for k, v in table.items()}, len(rules))

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the permission table {path}: {exc.strerror}") from None
        return cls.from_toml(text, str(path))


def _ident(value: object, where: str) -> str:
    if value is None:
        raise ConfigError(f"{where}: missing (a required key)")
    if not isinstance(value, str) or not is_ident(value):
        raise ConfigError(
            f"{where}: {value!r} is not a valid identifier "
            "(lower-case ASCII letters, digits, '.', '_', '-'; at most 64 characters)"
        )
    return value


def _groups(raw: object, source: str) -> dict[str, list[str]]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: [groups] must be a table")
    groups: dict[str, list[str]] = {}
    for name, members in raw.items():
        _ident(name, f"{source}: group name")
        if not isinstance(members, list):
            raise ConfigError(f"{source}: group {name!r} must be a list of agency IDs")
        groups[name] = [_ident(m, f"{source}: member of group {name!r}") for m in members]
    return groups


def _expand(names: Iterable[object], groups: dict[str, list[str]], where: str) -> set[str]:
    out: set[str] = set()
    for name in names:
        if isinstance(name, str) and name.startswith("@"):
            if name[1:] not in groups:
                raise ConfigError(f"{where}: unknown group {name!r}")
            out.update(groups[name[1:]])
        else:
            out.add(_ident(name, where))
    return out


class PolicyHolder:
    """The live permission table; :meth:`reload` swaps it atomically or keeps the old one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.current = Policy.load(path)

    def reload(self) -> Policy:
        """Load the file again; on error raise :class:`ConfigError` and keep the old table."""
        self.current = Policy.load(self.path)
        return self.current
