"""Storage URLs for high availability: libpq multi-host strings and the standby read URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from symbolsvc.errors import ConfigError
from symbolsvc.registry.backends import check_read_url
from symbolsvc.registry.url import PgTarget, redact_url

MULTI = ("postgresql://svc:s%3Acret@db1.internal:5432,db2.internal:5433,[::1]/registry"
         "?target_session_attrs=read-write&pool_max=4")


def test_multi_host_url_keeps_every_host_and_hands_the_password_apart() -> None:
    t = PgTarget.parse(MULTI)
    assert t.conninfo == ("postgresql://svc@db1.internal:5432,db2.internal:5433,[::1]/registry"
                          "?target_session_attrs=read-write")
    assert t.password == "s:cret"
    assert "s:cret" not in t.display and "s%3Acret" not in t.display
    assert t.display == redact_url(MULTI)
    assert t.pool_max == 4 and t.dbname == "registry"
    again = t.with_dbname("other")
    assert again.conninfo.startswith("postgresql://svc@db1.internal:5432,db2.internal:5433,")


@pytest.mark.parametrize("bad", [
    "postgresql://u:pw@db1:5432,db2:notaport/registry",
    "postgresql://u:pw@db1:5432,,db2/registry",
    "postgresql://u:pw@db1:5432,:5433/registry",
    "postgresql://u:pw@db1:99999,db2/registry",
])
def test_a_malformed_multi_host_url_is_refused_without_being_shown(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        PgTarget.parse(bad)
    assert "pw" not in str(err.value) and "db1" not in str(err.value)


def test_a_standby_read_url_needs_postgresql_on_both_sides(tmp_path: Path) -> None:
    pg = "postgresql://svc@db1:5432/registry"
    check_read_url(pg, "", tmp_path)
    check_read_url("sqlite:registry.db", "", tmp_path)
    check_read_url(pg, "postgresql://svc@db2:5432/registry", tmp_path)
    for url, read_url in (("sqlite:registry.db", "postgresql://svc@db2/registry"),
                          (pg, "sqlite:other.db"),
                          (pg, "postgresql://svc:secret@db2:notaport/registry")):
        with pytest.raises(ConfigError) as err:
            check_read_url(url, read_url, tmp_path)
        assert "secret" not in str(err.value)
