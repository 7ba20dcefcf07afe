"""PostgreSQL for the tests: a throwaway database per test, or a skip that says how to enable.

The server is ``$SYMBOLSVC_TEST_PG_URL`` or, by default, the local one CI runs
(``postgresql://postgres@127.0.0.1:5432/test``, trust auth). Each test gets its own
database (``symbolsvc_t_<random>``), created empty and dropped afterwards, so tests
never see each other's rows and can run against a shared server.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from functools import cache
from pathlib import Path

import pytest

from symbolsvc.registry.migrations import pg_migrate
from symbolsvc.registry.postgres import connect_sync
from symbolsvc.registry.url import PgTarget

PG_ENV = "SYMBOLSVC_TEST_PG_URL"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
ENABLE_HINT = (
    f"set {PG_ENV}=postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE (a server where USER may "
    "CREATE DATABASE) to run the PostgreSQL tests"
)


@cache
def _probe() -> tuple[str | None, str]:
    url = os.environ.get(PG_ENV) or DEFAULT_PG_URL
    target = PgTarget.parse(url)
    try:
        with connect_sync(target, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        return None, f"PostgreSQL not reachable at {target.display} ({exc}); {ENABLE_HINT}"
    return url, ""


def require_postgres() -> str:
    """The test server's URL, or skip the calling test with how to enable it (fail instead
    with ``SYMBOLSVC_REQUIRE_PG=1``, as CI sets)."""
    url, why = _probe()
    if url is None:
        if os.environ.get("SYMBOLSVC_REQUIRE_PG") == "1":
            pytest.fail(why)
        pytest.skip(why)
    return url


def _admin() -> PgTarget:
    return PgTarget.parse(require_postgres())


DB_PREFIX = "symbolsvc_t_"


def create_database(migrate: bool = True) -> tuple[str, str]:
    """A new empty database (schema migrated unless ``migrate=False``): its name and URL.
    The caller drops it (:func:`drop_database`)."""
    admin = _admin()
    name = f"{DB_PREFIX}{secrets.token_hex(6)}"
    with connect_sync(admin) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    target = admin.with_dbname(name)
    try:
        if migrate:
            with connect_sync(target) as conn:
                pg_migrate(conn, target.display)
    except BaseException:
        drop_database(name)
        raise
    return name, _url_of(target)


@contextmanager
def fresh_database(migrate: bool = True) -> Iterator[str]:
    """A new empty database (schema migrated unless ``migrate=False``); its URL."""
    name, url = create_database(migrate)
    try:
        yield url
    finally:
        drop_database(name)


def drop_database(name: str) -> None:
    with connect_sync(_admin()) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clone_database(name: str) -> str:
    """A copy of database ``name`` (no one may be connected to it); the copy's name."""
    clone = f"{DB_PREFIX}{secrets.token_hex(6)}"
    with connect_sync(_admin()) as conn:
        conn.execute(f'CREATE DATABASE "{clone}" TEMPLATE "{name}"')
    return clone


def replace_database(name: str, clone: str) -> None:
    """Drop database ``name`` and rename ``clone`` to it (a restore from a copy)."""
    with connect_sync(_admin()) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'ALTER DATABASE "{clone}" RENAME TO "{name}"')


def _url_of(target: PgTarget) -> str:
    """The full URL (with the password, if any) of ``target``: for config files in tests."""
    if not target.password:
        return target.conninfo
    scheme, rest = target.conninfo.split("://", 1)
    from urllib.parse import quote

    user, host = rest.split("@", 1) if "@" in rest else ("", rest)
    return f"{scheme}://{user}:{quote(target.password, safe='')}@{host}"


def pg_available() -> bool:
    return _probe()[0] is not None


PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateCluster:
    """A throwaway PostgreSQL 15 server of this test alone (initdb in a temp directory,
    a free port, trust auth), so an outage test can stop and start a real server
    without touching the shared one other test runs are using.

    ``standby_of``: instead of initdb, a streaming-replication hot standby of that
    server (pg_basebackup), replicating as ``name``. ``settings``: extra ``-c`` options."""

    def __init__(self, *, standby_of: PrivateCluster | None = None, name: str = "primary",
                 settings: dict[str, str] | None = None) -> None:
        # Not under pytest's tmp_path: its parents are private to root, and the server
        # runs as 'postgres'.
        self.dir = Path(tempfile.mkdtemp(prefix="symbolsvc-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = _free_port()
        self.settings = dict(settings or {})
        if standby_of is None:
            self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
                               "-U", "postgres", "--no-sync", "-E", "UTF8"])
        else:
            # -R: standby.signal and primary_conninfo; the name makes it a synchronous
            # standby when the primary lists it in synchronous_standby_names.
            self._as_postgres([str(PG_BIN / "pg_basebackup"), "-D", str(self.data), "-R",
                               "-X", "stream", "-c", "fast", "--no-sync", "-d",
                               f"host=127.0.0.1 port={standby_of.port} user=postgres "
                               f"application_name={name}"])
            self.settings["primary_conninfo"] = (
                f"'host=127.0.0.1 port={standby_of.port} user=postgres "
                f"application_name={name}'")
            self.settings.setdefault("hot_standby_feedback", "on")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    @staticmethod
    def available() -> str:
        """'' when a private cluster can be made here, else why not."""
        if not (PG_BIN / "pg_ctl").exists():
            return f"no PostgreSQL 15 binaries in {PG_BIN}"
        if os.geteuid() != 0:
            return "making a private PostgreSQL cluster needs root (to run it as 'postgres')"
        return ""

    def _as_postgres(self, args: list[str]) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=sys.stderr, timeout=120)

    def start(self) -> None:
        # Settings on the command line, not in the data directory: a standby copied from
        # this one must not inherit the primary's synchronous_standby_names.
        extra = "".join(f" -c {k}={v}" for k, v in self.settings.items())
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                           str(self.dir / "server.log"), "-o",
                           f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
                           + extra, "start"])

    def crash(self) -> None:
        """kill -9 of the postmaster and every process it started (a host crash)."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
                    and _ppid(p) == pid]
        for victim in (pid, *children):
            with suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        self.crashed = True

    def promote(self) -> None:
        """pg_ctl promote: this standby becomes a primary (waits until it accepts writes)."""
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "promote"])

    def stop(self) -> None:
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast",
                           "stop"])

    crashed = False

    def destroy(self) -> None:
        if not self.crashed:
            with suppress(subprocess.CalledProcessError):
                self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _ppid(proc: Path) -> int:
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return -1
    return int(stat.rsplit(")", 1)[1].split()[1])


class Replica:
    """One ``symbolsvc serve`` process on a free port; :meth:`kill` is kill -9."""

    def __init__(self, config: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = log
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "symbolsvc", "serve", "--config", str(config),
             "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=self._log, env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()  # the readiness line, or EOF on failure
        if not line.startswith("symbolsvc serving on "):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"replica did not start: {line!r}\n{log.read_text()[-3000:]}")
        self.address = line.rsplit(" ", 1)[1].strip()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def init_deployment(directory: Path, storage_url: str, agencies: list[str]) -> Path:
    """``symbolsvc init`` a deployment and point its [storage] url at ``storage_url``."""
    args = [sys.executable, "-m", "symbolsvc", "init", str(directory)]
    for a in agencies:
        args += ["--agency", a]
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    config = directory / "config.toml"
    lines = [f'url = "{storage_url}"' if ln.startswith("url = ") else ln
             for ln in config.read_text().splitlines()]
    config.write_text("\n".join(lines) + "\n")
    return config
