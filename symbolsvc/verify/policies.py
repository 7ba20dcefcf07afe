"""The verifier's policy check (docs/DISCLOSURE.md): every exchange record names a
permission table that the log published before it, and a rule of that table that
permits the exchange exactly as recorded (withholding included).

Tables are parsed with :mod:`symbolsvc.policytable`, the server's own pure parser.
Records without a policy version (written before tables were published) pass
only until the log's first POLICY record.
"""

from __future__ import annotations

import hashlib
import hmac

from ..policytable import Table, TableError, canonical, parse
from ..records import AccessKind, AccessRecord
from .errors import AuditFailure


class PolicyLedger:
    """The tables published so far, in leaf order, checking each record against them."""

    def __init__(self) -> None:
        self._tables: dict[bytes, Table] = {}

    def check(self, index: int, record: AccessRecord) -> None:
        where = f"leaf {index}"
        if record.kind is AccessKind.POLICY:
            self._publish(where, record)
        elif record.kind in (AccessKind.TRANSLATE, AccessKind.RESOLVE):
            self._exchange(where, record)

    def _publish(self, where: str, record: AccessRecord) -> None:
        version, text = record.policy_version, record.policy_table
        if version is None or text is None:
            raise AuditFailure(f"{where}: a POLICY record without its version or table")
        if not hmac.compare_digest(hashlib.sha256(text.encode("utf-8")).digest(), version):
            raise AuditFailure(f"{where}: the POLICY record's table does not hash to its "
                               "version")
        try:
            table = parse(text, f"{where} (POLICY {version.hex()[:16]})")
        except TableError as exc:
            raise AuditFailure(f"{where}: the published table is not valid: {exc}") from None
        if canonical(table) != text:
            raise AuditFailure(f"{where}: the published table is not in canonical form")
        self._tables[version] = table

    def _exchange(self, where: str, r: AccessRecord) -> None:
        version, rule_id = r.policy_version, r.rule
        if version is None and rule_id is None:
            if self._tables:
                raise AuditFailure(f"{where}: a {r.kind.name} record names no permission table "
                                   "version and rule, after tables were published")
            return
        if version is None or rule_id is None:
            raise AuditFailure(f"{where}: a {r.kind.name} record names only half of "
                               "(policy version, rule)")
        table = self._tables.get(version)
        if table is None:
            raise AuditFailure(f"{where}: names permission table version {version.hex()}, "
                               "which the log did not publish before it")
        rule = table.rule(rule_id)
        if rule is None:
            raise AuditFailure(f"{where}: names rule {rule_id!r}, which does not exist in "
                               f"table version {version.hex()}")
        if not rule.matches(r.requester, r.office_work, r.info_item):
            raise AuditFailure(f"{where}: rule {rule_id!r} does not permit {r.requester!r} to "
                               f"ask for {r.info_item!r} for {r.office_work!r}")
        allowed = (rule.provider_set if r.kind is AccessKind.TRANSLATE
                   else table.permitted(r.requester, r.office_work, r.info_item))
        if not set(r.providers) <= allowed:
            raise AuditFailure(f"{where}: rule {rule_id!r} of table version {version.hex()} "
                               f"does not permit providers {sorted(set(r.providers) - allowed)}")
        if r.withheld_until != rule.withheld_until(r.time_us):
            raise AuditFailure(f"{where}: withheld_until does not follow rule {rule_id!r}'s "
                               "withhold_days")
