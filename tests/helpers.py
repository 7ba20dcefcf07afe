"""Helpers for the end-to-end suite: a real ``symbolsvc serve`` process, deployments, numbers.

Nothing here mocks anything: :class:`ServerProcess` runs ``python -m symbolsvc serve`` on a
deployment directory written by the real ``symbolsvc init``, learns its port from the
``symbolsvc serving on HOST:PORT`` line, and keeps its stderr in a file the tests can grep.
Waiting is always polling against a deadline (:func:`wait_until`), never a bare sleep.
"""

from __future__ import annotations

import itertools
import os
import queue
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from symbolsvc_client import CallError, Deployment
from symbolsvc_client.clients import AgencyClient, AuditorClient, BrokerClient, PortalClient

from symbolsvc.numbers import check_digit

T = TypeVar("T")

SERVING = health_pb2.HealthCheckResponse.SERVING
READY_RE = re.compile(r"^symbolsvc serving on (\S+):(\d+)\s*$")


# -- waiting -------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], T], timeout: float, what: str,
               interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(interval)


# -- numbers -------------------------------------------------------------------------------


def make_number(first_eleven: str) -> str:
    """A valid individual number: 11 digits and their check digit (SPEC §6)."""
    return first_eleven + str(check_digit(first_eleven))


def wrong_check_digit(number: str) -> str:
    """The same 11 digits with a check digit that is wrong."""
    return number[:11] + str((int(number[11]) + 1) % 10)


class NumberSource:
    """Fresh, distinct, valid individual numbers (thread-safe), unique within a session.

    The start is random so that two sessions on one deployment do not collide either.
    """

    def __init__(self, seed: int | None = None) -> None:
        rng = random.Random(seed)
        self._counter = itertools.count(rng.randrange(10_000_000_000, 80_000_000_000))
        self._lock = threading.Lock()

    def one(self) -> str:
        with self._lock:
            return make_number(f"{next(self._counter):011d}")

    def many(self, n: int) -> list[str]:
        with self._lock:
            return [make_number(f"{next(self._counter):011d}") for _ in range(n)]


def chunked(items: list[T], size: int) -> list[list[T]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


# -- deployments and configuration ---------------------------------------------------------


def init_deployment_cli(directory: Path, agencies: Iterable[str], *extra: str,
                        env: Mapping[str, str] | None = None,
                        check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real ``symbolsvc init DIR --agency ...`` command."""
    args = [sys.executable, "-m", "symbolsvc", "init", str(directory)]
    for a in agencies:
        args += ["--agency", a]
    return subprocess.run([*args, *extra], capture_output=True, text=True, timeout=120,
                          check=check, env={**os.environ, **(env or {})})


def copy_deployment(src: Path, dst: Path) -> Path:
    """A copy of a deployment's configuration, keys and PKI, without its data and logs.

    Much cheaper than a second ``symbolsvc init`` for a test that needs a fresh registry.
    """
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("data", "logs", "config.*.toml"))
    (dst / "data").mkdir(exist_ok=True)
    (dst / "logs").mkdir(exist_ok=True)
    return dst


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump_toml(doc: Mapping[str, Any], prefix: str = "") -> str:
    """A minimal TOML writer for configuration documents (tables of scalars and lists)."""
    lines: list[str] = []
    scalars = {k: v for k, v in doc.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in doc.items() if isinstance(v, Mapping)}
    if prefix and scalars:
        lines.append(f"[{prefix}]")
    lines += [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
    for k, v in tables.items():
        if lines:
            lines.append("")
        lines.append(dump_toml(v, f"{prefix}.{k}" if prefix else k).rstrip("\n"))
    return "\n".join(lines) + "\n"


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def config_with(config: Path, extra: Mapping[str, Mapping[str, Any]] | None,
                name: str = "test") -> Path:
    """``config`` itself when there is nothing to change; else a variant with the ``extra``
    sections merged in, written next to it (so relative paths keep working), e.g.
    ``{"server": {"max_message_bytes": 65536}, "storage": {"url": "postgresql://..."}}``."""
    if not extra:
        return config
    doc = _merge(tomllib.loads(config.read_text()), extra)
    out = config.with_name(f"config.{name}.toml")
    out.write_text(dump_toml(doc))
    return out


# -- the server process ---------------------------------------------------------------------


class ServerProcess:
    """One ``symbolsvc serve`` process on a deployment.

    ``start`` waits (with a deadline) for the readiness line, then for a health Check over
    mTLS to answer SERVING. ``stop`` is SIGTERM, ``kill`` is SIGKILL (kill -9), ``restart``
    starts again on the same deployment (and by default the same port, so clients that
    already hold a channel reconnect by themselves). The server's stderr is appended to
    ``log_path`` across restarts.
    """

    def __init__(self, config: Path, log_path: Path, *, env: Mapping[str, str] | None = None,
                 listen: str = "127.0.0.1:0", extra_args: Iterable[str] = (),
                 health_principal: str = "auditor", start_timeout: float = 30.0) -> None:
        self.config = config
        self.directory = config.parent
        self.log_path = log_path
        self.env = dict(env or {})
        self.listen = listen
        self.extra_args = list(extra_args)
        self.health_principal = health_principal
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = ""
        self.port = 0
        self.stdout_lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.returncodes: list[int] = []

    # -- lifecycle --

    def start(self, listen: str | None = None) -> ServerProcess:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        listen = listen or self.listen
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "symbolsvc", "serve", "--config", str(self.config),
                 "--listen", listen, *self.extra_args],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
            )
        self._lines = queue.Queue()
        threading.Thread(target=self._read_stdout, args=(self.proc, self._lines),
                         daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise RuntimeError(f"server not ready after {self.start_timeout} s:\n"
                                   f"{self.log_tail()}") from None
            if line is None:  # EOF: the process died before it was ready
                rc = self.proc.wait(timeout=30)
                self.returncodes.append(rc)
                raise RuntimeError(f"server exited with {rc} before it was ready:\n"
                                   f"{self.log_tail()}")
            m = READY_RE.match(line)
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                break
        self.wait_healthy(max(1.0, deadline - time.monotonic()))
        return self

    @staticmethod
    def _read_stdout(proc: subprocess.Popen[bytes], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            lines.put(raw.decode(errors="replace"))
        lines.put(None)

    def wait_healthy(self, timeout: float = 15.0) -> None:
        with self.deployment.channel(self.health_principal, self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)

            def serving() -> bool:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n"
                                       f"{self.log_tail()}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                except grpc.RpcError:
                    return False
                return reply.status == SERVING

            wait_until(serving, timeout, f"health SERVING from {self.address}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        rc = self.proc.wait(timeout=timeout)
        self.returncodes.append(rc)
        return rc

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; the exit code (the process is killed if it does not exit)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"server did not exit within {timeout} s of SIGTERM") from None

    def kill(self) -> int:
        """kill -9, and wait."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.kill()
        return self.wait(30)

    def restart(self, same_port: bool = True) -> ServerProcess:
        if self.running:
            self.stop()
        return self.start(f"{self.host}:{self.port}" if same_port and self.port else None)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def deployment(self) -> Deployment:
        return Deployment(self.directory)

    # -- logs --

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, n: int = 4000) -> str:
        return self.log_text()[-n:]

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def wait_for_log(self, pattern: str, timeout: float = 10.0, since: int = 0) -> str:
        """The first line after byte offset ``since`` matching the regex ``pattern``."""
        rx = re.compile(pattern)

        def find() -> str | None:
            text = self.log_path.read_bytes()[since:].decode(errors="replace")
            for line in text.splitlines():
                if rx.search(line):
                    return line
            return None

        return wait_until(find, timeout, f"server log line matching {pattern!r}")

    @property
    def security_log_path(self) -> Path:
        return self.directory / "logs" / "security.jsonl"

    def security_log_text(self) -> str:
        p = self.security_log_path
        return p.read_text(errors="replace") if p.exists() else ""


# -- clients ---------------------------------------------------------------------------------


class Clients:
    """Cached clients, one per principal, for one server address."""

    def __init__(self, deployment: Deployment, address: str) -> None:
        self.deployment = deployment
        self.address = address
        self._cache: dict[tuple[str, str], Any] = {}

    def _get(self, kind: str, name: str, make: Callable[[], T]) -> T:
        key = (kind, name)
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def agency(self, name: str) -> AgencyClient:
        return self._get("agency", name, lambda: self.deployment.agency(name, self.address))

    def broker(self, name: str = "broker") -> BrokerClient:
        return self._get("broker", name, lambda: self.deployment.broker(self.address, name))

    def portal(self, name: str = "portal") -> PortalClient:
        return self._get("portal", name, lambda: self.deployment.portal(self.address, name))

    def auditor(self, name: str = "auditor") -> AuditorClient:
        return self._get("auditor", name, lambda: self.deployment.auditor(self.address, name))

    def close(self) -> None:
        for client in self._cache.values():
            client.close()
        self._cache.clear()


def call_error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> CallError:
    """Call ``fn`` and return the :class:`CallError` it raises; fail if it succeeds."""
    try:
        result = fn(*args, **kwargs)
    except CallError as err:
        return err
    raise AssertionError(f"expected the call to fail, but it returned {result!r}")


# -- the registry, read from outside (either backend) -----------------------------------------


def registry_path(directory: Path) -> Path:
    """The SQLite registry file of a deployment (``sqlite:data/registry.db``)."""
    return directory / "data" / "registry.db"


def _config_file(where: Path) -> Path:
    return where / "config.toml" if where.is_dir() else where


def storage_url(where: Path) -> str:
    """``[storage] url`` of a deployment directory (its config.toml) or of a config file."""
    return str(tomllib.loads(_config_file(where).read_text())["storage"]["url"])


def set_storage_url(directory: Path, url: str) -> None:
    """Point a deployment's config.toml at another registry (before a server starts)."""
    config = directory / "config.toml"
    config.write_text(dump_toml(_merge(tomllib.loads(config.read_text()),
                                       {"storage": {"url": url}})))


def registry_backend(where: Path) -> str:
    """``"sqlite"`` or ``"postgres"``: the registry a deployment (or config file) uses."""
    from symbolsvc.registry.backends import backend_for

    return backend_for(storage_url(where)).name


def _sqlite_file(where: Path) -> Path:
    url = storage_url(where)
    path = Path(url.removeprefix("sqlite:"))
    return path if path.is_absolute() else _config_file(where).parent / path


def open_readonly(db: Path) -> sqlite3.Connection:
    """A read-only connection to the live SQLite registry (the server keeps writing)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.execute("PRAGMA query_only = 1")
    return conn


class RegistryReader:
    """Read-only SQL on a deployment's live registry, whichever its backend.

    ``where`` is a deployment directory or a server's config file. Statements use ``?``
    placeholders and SQL both backends accept (e.g. ``NOT released``, not ``released = 0``).
    """

    def __init__(self, where: Path) -> None:
        from symbolsvc.registry.backends import backend_for

        url = storage_url(where)
        backend = backend_for(url)
        self.backend = backend.name
        self._db = backend.inspect(url, _config_file(where).parent)

    def __enter__(self) -> RegistryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def execute(self, sql: str, params: tuple[Any, ...] = ()
                ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows."""
        return self._db.execute(sql, params)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.execute(sql, params)[1]

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        (row,) = self.query(sql, params)
        return row

    def tables(self) -> list[str]:
        return self._db.tables()

    def rows(self, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        return self.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - names from tables()


def row_counts(where: Path) -> dict[str, int]:
    """Row count of every table in a deployment's registry."""
    with RegistryReader(where) as db:
        return {t: db.one(f'SELECT COUNT(*) FROM "{t}"')[0]  # noqa: S608
                for t in db.tables()}


def registry_bytes(db: Path) -> dict[str, bytes]:
    """The raw bytes of the SQLite file and of its -wal (and -shm) files, where present."""
    out: dict[str, bytes] = {}
    for suffix in ("", "-wal", "-shm"):
        p = Path(str(db) + suffix)
        if p.exists():
            out[p.name] = p.read_bytes()
    return out


def registry_dump(where: Path) -> dict[str, bytes]:
    """Everything a deployment's registry stores, as bytes to scan, by source.

    SQLite: the database file and its WAL, byte for byte. PostgreSQL: ``pg_dump``'s plain
    SQL dump of the database (schema and every row, bytea in hex) and every stored value
    of every table in its raw form (bytea as its bytes), so a binary encoding cannot hide
    behind the dump's hex.
    """
    if registry_backend(where) == "sqlite":
        return registry_bytes(_sqlite_file(where))
    from symbolsvc.registry.url import PgTarget

    target = PgTarget.parse(storage_url(where))
    env = {**os.environ, **({"PGPASSWORD": target.password} if target.password else {})}
    dump = subprocess.run(["pg_dump", "--no-owner", "--no-privileges", "-d", target.conninfo],
                          capture_output=True, check=True, timeout=120, env=env).stdout
    values: list[bytes] = []
    with RegistryReader(where) as db:
        for table in db.tables():
            for row in db.rows(table)[1]:
                values += [v if isinstance(v, bytes) else str(v).encode() for v in row]
    return {"pg_dump": dump, "stored values": b"\x00".join(values)}


class RegistrySnapshot:
    """A copy of a deployment's registry, taken and put back while no server runs on it.

    SQLite: a copy of the file (through the backup API). PostgreSQL: a database made
    from the live one as its template; :meth:`restore` drops the live database and renames
    the copy to its name, so the deployment's config stays as it is.
    """

    def __init__(self, directory: Path, tmp: Path) -> None:
        self.directory = directory
        self.backend = registry_backend(directory)
        if self.backend == "sqlite":
            live = _sqlite_file(directory)
            self._copy = tmp / f"snapshot-{time.monotonic_ns()}.db"
            src, out = sqlite3.connect(f"file:{live}?mode=ro", uri=True), sqlite3.connect(
                self._copy)
            try:
                src.backup(out)
            finally:
                src.close()
                out.close()
        else:
            from postgres_fixtures import clone_database

            from symbolsvc.registry.url import PgTarget

            self._live = PgTarget.parse(storage_url(directory)).dbname
            self._clone: str | None = clone_database(self._live)

    def restore(self) -> None:
        if self.backend == "sqlite":
            live = _sqlite_file(self.directory)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{live}{suffix}").unlink(missing_ok=True)
            shutil.copy(self._copy, live)
        else:
            from postgres_fixtures import replace_database

            assert self._clone is not None, "already restored"
            replace_database(self._live, self._clone)
            self._clone = None

    def discard(self) -> None:
        if self.backend == "postgres" and self._clone is not None:
            from postgres_fixtures import drop_database

            drop_database(self._clone)
            self._clone = None


# -- load ---------------------------------------------------------------------------------------


class BulkLoad:
    """Open-ended bulk issuance against a server, on threads, remembering every acknowledged
    symbol.

    One bidirectional StreamIssueSymbols for ``stream_agency`` (chunks of ``chunk``) and
    ``batch_threads`` threads of BatchIssueSymbols for ``batch_agency``, all at once. The
    stream first sends ``stream_prefix``, then fresh numbers from ``numbers``; the batches
    draw fresh numbers too. Neither ever runs out: the load goes on until the server goes
    away (the calls then fail; the failures are kept in ``errors``), :meth:`stop` is called,
    or ``max_seconds`` pass. So a kill or a SIGTERM sent while the load runs lands in the
    middle of it by construction, however fast the machine. A symbol counts as acknowledged
    only once its chunk's or batch's reply has arrived.
    """

    def __init__(self, deployment: Deployment, address: str, numbers: NumberSource, *,
                 stream_agency: str, batch_agency: str, stream_prefix: Sequence[str] = (),
                 batch_threads: int = 2, chunk: int = 500, batch_size: int = 250,
                 max_seconds: float = 300.0) -> None:
        self.deployment = deployment
        self.address = address
        self.numbers = numbers
        self.stream_agency, self.stream_prefix = stream_agency, list(stream_prefix)
        self.batch_agency = batch_agency
        self.batch_threads, self.chunk, self.batch_size = batch_threads, chunk, batch_size
        self.acked: dict[str, dict[str, str]] = {stream_agency: {}, batch_agency: {}}
        self.errors: list[tuple[str, CallError]] = []  # ("stream" | "batch", error)
        self.item_errors: list[str] = []
        self.stream_finished = False  # the server ended the stream without an error
        self._deadline = time.monotonic() + max_seconds
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._clients: list[AgencyClient] = []

    def start(self) -> BulkLoad:
        self._threads.append(threading.Thread(target=self._stream, daemon=True))
        for _ in range(self.batch_threads):
            self._threads.append(threading.Thread(target=self._batches, daemon=True))
        for t in self._threads:
            t.start()
        return self

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _client(self, agency: str) -> AgencyClient:
        client = self.deployment.agency(agency, self.address)
        with self._lock:
            self._clients.append(client)
        return client

    def _record(self, agency: str, numbers: list[str], results: Iterable[Any]) -> None:
        with self._lock:
            for n, r in zip(numbers, results, strict=True):
                if r.WhichOneof("outcome") == "issued":
                    self.acked[agency][n] = r.issued.symbol
                else:
                    self.item_errors.append(r.error.reason)

    def _stream(self) -> None:
        sent: dict[int, list[str]] = {}

        def chunks() -> Iterator[list[str]]:
            for i, part in enumerate(chunked(self.stream_prefix, self.chunk)):
                sent[i] = part
                yield part
            i = len(sent)
            while self._running():
                sent[i] = self.numbers.many(self.chunk)
                yield sent[i]
                i += 1

        client = self._client(self.stream_agency)
        try:
            for reply in client.issue_stream(chunks(), timeout=self._deadline - time.monotonic()):
                self._record(self.stream_agency, sent.pop(reply.chunk_id), reply.results)
            self.stream_finished = True
        except CallError as err:
            self.errors.append(("stream", err))

    def _batches(self) -> None:
        client = self._client(self.batch_agency)
        while self._running():
            batch = self.numbers.many(self.batch_size)
            try:
                results = client.issue_batch(batch)
            except CallError as err:
                self.errors.append(("batch", err))
                return
            self._record(self.batch_agency, batch, results)

    def count(self, agency: str) -> int:
        with self._lock:
            return len(self.acked[agency])

    def snapshot(self) -> dict[str, dict[str, str]]:
        with self._lock:
            return {a: dict(m) for a, m in self.acked.items()}

    def stop(self) -> None:
        """Send nothing more: the stream ends after its last chunk, the batch threads after
        their current batch."""
        self._stop.set()

    def join(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
            assert not t.is_alive(), "a load thread did not finish"
        for c in self._clients:
            c.close()


def assert_still_issued(client: AgencyClient, acked: Mapping[str, str]) -> None:
    """Every acknowledged number still yields the same symbol, and it is not a new holding."""
    items = list(acked.items())
    for part in chunked(items, 1000):
        results = client.issue_batch([n for n, _ in part])
        for (_, symbol), r in zip(part, results, strict=True):
            assert r.WhichOneof("outcome") == "issued", r
            assert r.issued.symbol == symbol, "an acknowledged symbol changed"
            assert r.issued.newly_registered is False, "an acknowledged holding was lost"
