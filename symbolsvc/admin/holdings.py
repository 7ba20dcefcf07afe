"""Direct registry access for ``agency remove``: count and end one agency's holdings.

Both backends are safe to change under a running server: SQLite serialises writers (WAL,
busy timeout) and PostgreSQL row locks do the same. Releasing writes no access record,
as the ReleaseSymbol RPC does not either.
"""

from __future__ import annotations

import sqlite3

from ..config import Config
from ..errors import ConfigError
from ..registry.open import PgTarget, backend_of

_COUNT = "SELECT count(*) FROM holdings WHERE agency = {p} AND released = {no}"
_RELEASE = "UPDATE holdings SET released = {yes} WHERE agency = {p} AND released = {no}"


def _run(config: Config, template: str, agency: str) -> int:
    if backend_of(config.storage_url) == "sqlite":
        path = config.sqlite_path()
        if not path.exists():
            return 0
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            try:
                cur = conn.execute(template.format(p="?", yes=1, no=0), (agency,))
                return cur.fetchone()[0] if cur.description else cur.rowcount
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise ConfigError(f"{path}: {exc}") from None
    import psycopg

    from ..registry.postgres import connect_sync

    target = PgTarget.parse(config.storage_url)
    with connect_sync(target) as conn:
        try:
            cur = conn.execute(template.format(p="%s", yes="TRUE", no="FALSE"), (agency,))
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0]
            raise ConfigError(target.scrub(f"{target.display}: {first}")) from None
        return cur.fetchone()[0] if cur.description else cur.rowcount


def live_holdings(config: Config, agency: str) -> int:
    return _run(config, _COUNT, agency)


def release_all_holdings(config: Config, agency: str) -> int:
    return _run(config, _RELEASE, agency)
