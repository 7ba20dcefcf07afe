"""Storage URLs: redaction for messages, and PostgreSQL URLs split for libpq.

* ``sqlite:PATH`` — the embedded default (:mod:`.sqlite`); its schema is created
  and migrated on first start.
* ``postgresql://USER[:PASSWORD]@HOST[:PORT][,HOST[:PORT]...]/DATABASE[?PARAMS]`` (or
  ``postgres://``) — PostgreSQL or a compatible engine (:mod:`.postgres`). Several
  hosts are libpq's multi-host form: with ``target_session_attrs=read-write`` each
  new connection goes to whichever host is the primary now (docs/SCALING.md §1a).
  PARAMS are libpq's (``sslmode``, ``connect_timeout``, ``options``...) plus
  symbolsvc's own ``pool_min`` / ``pool_max`` (connections per replica, split between
  writes and reads) and per-role timeouts (:mod:`.pg_pools`). The
  password may also come from ``PGPASSWORD`` or ``~/.pgpass`` (libpq). The
  schema must have been migrated (``symbolsvc db migrate``).

Passwords never leave this module in a message: every URL shown to a human
goes through :func:`redact_url`. Which backend serves which scheme is decided
in one place, :mod:`.backends`.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import (
    SplitResult,
    parse_qsl,
    quote,
    unquote,
    urlencode,
    urlsplit,
    urlunsplit,
)

from ..errors import ConfigError

PG_SCHEMES = ("postgresql", "postgres")
_OWN_PARAMS = ("pool_min", "pool_max")


# PostgreSQL per-role timeouts (registry/pg_pools.py): URL parameters and defaults (ms).
TIMEOUT_PARAMS = {
    "read_timeout_ms": 10_000,
    "write_timeout_ms": 5_000,
    "lock_timeout_ms": 2_000,
    "idle_in_transaction_timeout_ms": 10_000,
}


def parse_timeouts(params: dict[str, str], display: str) -> tuple[tuple[str, int], ...]:
    """Pop this module's parameters from a URL's query ``params``; ConfigError if bad."""
    out = []
    for name, default in TIMEOUT_PARAMS.items():
        text = params.pop(name, None)
        if text is None:
            out.append((name, default))
            continue
        if not text.isascii() or not text.isdigit() or not 0 < int(text) <= 2**31 - 1:
            raise ConfigError(f"[storage] url {display!r}: {name} must be a positive "
                              "integer (milliseconds)")
        out.append((name, int(text)))
    return tuple(out)


_ENCODE_HINT = ("percent-encode any '@', ':', '/', '?', '#' or '%' in the user name and "
                "password (urllib.parse.quote(password, safe=''))")


def _split_pg_url(url: str) -> SplitResult:
    """The URL's parts, or a one-line ConfigError that shows no part of the URL: a
    password with an unencoded reserved character would otherwise spill into the
    host, path, query or fragment, and from there into a message."""
    try:
        parts = urlsplit(url)
        pg_hosts(parts)  # validates every host and port
    except ValueError as exc:
        why = ("the host is not a valid IPv6 address ([ADDRESS])" if "IPv6" in str(exc)
               else "the port is not a number, or the password holds an unencoded "
               "reserved character")
        raise ConfigError(f"[storage] url is not a valid postgresql:// URL: {why}; "
                          f"{_ENCODE_HINT}") from None
    if parts.fragment or "#" in url or "@" in parts.path or "@" in parts.query:
        raise ConfigError("[storage] url is not a valid postgresql:// URL: its user name "
                          f"or password holds an unencoded reserved character; {_ENCODE_HINT}")
    return parts


def pg_hosts(parts: SplitResult) -> list[str]:
    """The ``HOST[:PORT]`` entries of a (possibly multi-host) URL's authority, each
    validated and normalised (IPv6 in brackets); ValueError if one is malformed."""
    hostlist = parts.netloc.rsplit("@", 1)[-1]
    out = []
    for entry in hostlist.split(","):
        one = urlsplit(f"//{entry}")
        port = one.port
        host = one.hostname or ""
        if not host and (port is not None or "," in hostlist):
            raise ValueError("a host of a multi-host URL is empty")
        if ":" in host:
            host = f"[{host}]"
        out.append(host + (f":{port}" if port else ""))
    return out


def redact_url(url: str) -> str:
    """The URL with any password (in the authority or a ``password=`` parameter) masked;
    a placeholder if it does not parse cleanly (see :func:`_split_pg_url`)."""
    try:
        parts = _split_pg_url(url)
    except ConfigError:
        return "<storage url not shown>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:***@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass(frozen=True)
class PgTarget:
    """A PostgreSQL URL split into what libpq sees, the secret, and symbolsvc's options."""

    conninfo: str  # without the password
    password: str | None
    display: str  # redacted, for messages
    dbname: str
    pool_min: int
    pool_max: int
    # Per-role timeouts (pg_pools.TIMEOUT_PARAMS), from the URL's own parameters.
    timeouts: tuple[tuple[str, int], ...] = ()

    @classmethod
    def parse(cls, url: str) -> PgTarget:
        parts = _split_pg_url(url)
        display = redact_url(url)
        if parts.scheme not in PG_SCHEMES:
            raise ConfigError(f"[storage] url {display!r} is not a postgresql:// URL")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        password = params.pop("password", None)
        if parts.password is not None:
            password = unquote(parts.password)
        own = {k: params.pop(k) for k in _OWN_PARAMS if k in params}
        timeouts = parse_timeouts(params, display)
        try:
            pool_min = int(own.get("pool_min", 2))
            pool_max = int(own.get("pool_max", 10))
        except ValueError:
            raise ConfigError(f"[storage] url {display!r}: pool_min/pool_max must be "
                              "integers") from None
        if not 0 <= pool_min <= pool_max or pool_max < 1:
            raise ConfigError(f"[storage] url {display!r}: need 0 <= pool_min <= pool_max, "
                              "pool_max >= 1")
        netloc = ",".join(pg_hosts(parts))
        if parts.username:
            netloc = f"{quote(unquote(parts.username), safe='')}@{netloc}"
        conninfo = urlunsplit(("postgresql", netloc, parts.path, urlencode(params), ""))
        dbname = unquote(parts.path.lstrip("/")) or params.get("dbname", "")
        return cls(conninfo, password, display, dbname, pool_min, pool_max, timeouts)

    def with_dbname(self, dbname: str) -> PgTarget:
        """The same server and credentials, another database (for ``db create``)."""
        parts = urlsplit(self.conninfo)
        conninfo = urlunsplit((parts.scheme, parts.netloc, "/" + quote(dbname, safe=""),
                               parts.query, ""))
        shown = urlsplit(self.display)
        display = urlunsplit((shown.scheme, shown.netloc, "/" + quote(dbname, safe=""),
                              shown.query, ""))
        return PgTarget(conninfo, self.password, display, dbname, self.pool_min, self.pool_max,
                        self.timeouts)

    def scrub(self, message: str) -> str:
        """``message`` with the password (should a driver ever echo it) masked."""
        if self.password:
            message = message.replace(self.password, "***")
        return message
