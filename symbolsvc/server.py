"""Assemble and run the gRPC server: mTLS, the interceptor, the four services, health, reflection.

Lifecycle: open the keyring, the permission table and the registry; start
the access log's sequencer (:mod:`.log.sequencer`) and serving; on SIGHUP
reload the permission table (a bad file is refused and the old table kept); on
SIGTERM or SIGINT end watch streams (UNAVAILABLE, resumable), stop accepting
calls, let in-flight calls finish within the grace period, integrate what is
queued (the sequencer's final step) and drain the registry's queued writes, so
no acknowledged write is lost.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer as AioHealthServicer  # health.aio's (typed)
from grpc_reflection.v1alpha import reflection

from . import metrics_http, stderr_bridge
from .config import Config, Principal
from .core import Core
from .disclosure import Disclosure
from .errors import ConfigError, ResourceExhausted, SymbolsvcError, Unavailable
from .hostlimits import check_fd_budget, check_secret_modes, fd_need
from .interceptor import GuardInterceptor
from .keyload import open_keys, reload_keys
from .limits import Limiter
from .log.sequencer import LogNotifier, Sequencer
from .log.service import AccessLog
from .log.witnessing import Submitter
from .logsetup import setup_logging
from .memguard import EXIT_STATUS as MEMORY_EXIT_STATUS
from .memguard import MemoryGuard
from .metrics import MetricsInterceptor, sample_domain
from .policy import PolicyHolder
from .publish import publish, reload_and_publish
from .registry import LogStore, Registry
from .registry.backends import open_registry
from .reload import reload_principals, warn_unknown_agencies
from .revocation import PeerCheck
from .server_options import probe_options, server_options
from .services.audit import AuditService
from .services.broker import BrokerService
from .services.disclosure import DisclosureService
from .services.symbol import SymbolService
from .stalls import GcTimer, watch_loop
from .tracing import Tracing
from .transparency import Transparency
from .trust import trust_for
from .v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    broker_service_pb2,
    broker_service_pb2_grpc,
    disclosure_service_pb2,
    disclosure_service_pb2_grpc,
    symbol_service_pb2,
    symbol_service_pb2_grpc,
)

log = logging.getLogger("symbolsvc.server")

HEALTH_RESERVE = 64
"""Calls gRPC admits beyond [server] max_concurrent_rpcs, for health checks only."""

SERVICE_NAMES = (
    symbol_service_pb2.DESCRIPTOR.services_by_name["SymbolService"].full_name,
    broker_service_pb2.DESCRIPTOR.services_by_name["BrokerService"].full_name,
    disclosure_service_pb2.DESCRIPTOR.services_by_name["DisclosureService"].full_name,
    audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
)

BROKER_SERVICE = SERVICE_NAMES[1]
ACCESS_LOG_HEALTH = "symbolsvc.access_log"
"""Health name of the access log: NOT_SERVING while degraded (lag beyond the maximum
merge delay, a stalled sequencer lease, unreviewed quarantined records)."""


@dataclass
class App:
    """Everything a running server holds; built once, closed once."""

    config: Config
    core: Core
    policy: PolicyHolder
    registry: Registry
    access_log: AccessLog
    disclosure: Disclosure
    notifier: LogNotifier
    sequencer: Sequencer | None  # None: the storage backend cannot sequence (yet)
    transparency: Transparency  # ListHoldings, GetPolicy
    submitter: Submitter | None = None  # witnessing ([witness.NAME]; docs/WITNESS.md)


def build_app(config: Config) -> App:
    keys = open_keys(config)
    deriver = keys.deriver
    policy = PolicyHolder(config.policy_file, max_withhold_days=config.max_withhold_days)
    registry = open_registry(config.storage_url, config.base, config.storage_read_url,
                             config.storage_read_max_lag_ms)
    registry.queue_auth.mac = keys.queue_auth.mac  # every queued row is tagged (QUEUE_AUTH.md)
    inquiries, blinder = trust_for(config)
    core = Core(deriver, registry, policy, receipts=keys.receipts, inquiries=inquiries,
                blinder=blinder)
    notifier = LogNotifier()
    sequencer = None
    if isinstance(registry, LogStore):
        sequencer = Sequencer(
            registry, keys.sign, notifier,
            interval_ms=config.log_integrate_interval_ms, batch=config.log_integrate_batch,
            lease_ms=config.log_lease_ms, auth=keys.queue_auth,
            max_merge_delay=config.log_max_merge_delay)
    else:
        log.error("the %s registry cannot sequence the access log yet: records queue "
                  "but are not integrated", type(registry).__name__)
    # Watchers wait on the notifier, which this process's sequencer advances when it
    # integrates and, on PostgreSQL, every replica's integration through LISTEN/NOTIFY
    # (run() starts registry.follow_growth); without such a channel the sequencer reads
    # the size another replica reached every interval: one store read per process, not
    # per watcher. [access_log] watch_poll_ms is only a safety net.
    access_log = AccessLog(registry)
    disclosure = Disclosure(core.deriver, registry, registry, access_log, notifier,
                            poll_seconds=config.watch_poll_ms / 1000)
    transparency = Transparency(core.deriver, registry, registry, policy,
                                agencies_of(config.by_identity()))
    submitter = None
    if config.witnesses and sequencer is not None:
        seq = sequencer
        submitter = Submitter(
            registry, access_log, notifier.wait_for_growth,
            [(w.url, w.vkey) for w in config.witnesses], is_leader=lambda: seq.leader,
            timeout_ms=config.settings["witnessing"]["timeout_ms"],
            retry_ms=config.settings["witnessing"]["retry_ms"])
    return App(config, core, policy, registry, access_log, disclosure, notifier, sequencer,
               transparency, submitter)


def agencies_of(identities: dict[str, Principal]) -> Callable[[], list[str]]:
    """The deployment's agencies now (``identities`` is updated in place on SIGHUP)."""
    return lambda: sorted({p.name for p in identities.values() if "agency" in p.roles})


def _credentials(config: Config) -> grpc.ServerCredentials:
    try:
        return grpc.ssl_server_credentials(
            [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
            root_certificates=config.tls_ca.read_bytes(),
            require_client_auth=True,
        )
    except OSError as exc:
        raise ConfigError(f"cannot read TLS files: {exc}") from None


async def run(
    config: Config,
    listen: str | None = None,
    *,
    reuseport: bool = False,
    on_ready: Callable[[str, int], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT. ``reuseport`` and ``on_ready`` are for the workers of
    :mod:`.workers`: they share one port, and the parent announces readiness once."""
    # gRPC core's stderr lines become JSON records; handshake failures security events.
    setup_logging(config.security_log, fmt=config.log_format, stream=stderr_bridge.install())
    check_secret_modes((config.keyring, config.passphrase_file, config.tls_key))
    check_fd_budget(fd_need(config.max_concurrent_rpcs, HEALTH_RESERVE, 16))
    app = build_app(config)
    warn_unknown_agencies(app.policy.current, config.path)
    address = listen or config.listen
    try:
        peers = PeerCheck(config.tls_ca.read_bytes(), config.revoked)
    except OSError as exc:
        raise ConfigError(f"cannot read the CA certificate: {exc}") from None
    limiter = Limiter(config.limits, config.max_concurrent_rpcs)
    tracing = Tracing(config)
    server = grpc.aio.server(
        # Outermost first: tracing spans, then metrics and the logging context, then the guard.
        interceptors=[*tracing.interceptors, MetricsInterceptor(bool(config.metrics_listen)),
                      GuardInterceptor(identities := config.by_identity(), limiter=limiter,
                                       peers=peers)],
        options=server_options(config.connection_limits, config.max_message_bytes,
                               reuseport=reuseport),
        # The limiter enforces max_concurrent_rpcs on everything but health; gRPC's own cap
        # sits above it so probes still answer when the server is at its limit.
        maximum_concurrent_rpcs=config.max_concurrent_rpcs + HEALTH_RESERVE,
    )
    symbol_service_pb2_grpc.add_SymbolServiceServicer_to_server(SymbolService(app.core), server)
    broker_service_pb2_grpc.add_BrokerServiceServicer_to_server(BrokerService(app.core), server)
    app.transparency.agencies = agencies_of(identities)  # follows SIGHUP's principals
    disclosure_service_pb2_grpc.add_DisclosureServiceServicer_to_server(
        DisclosureService(app.disclosure, app.transparency), server)
    audit_service_pb2_grpc.add_AuditServiceServicer_to_server(
        AuditService(app.access_log), server)
    health_servicer = AioHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if not reuseport:
        check_bindable(address)  # a busy port is one line, not gRPC's traceback
    try:
        port = server.add_secure_port(address, _credentials(config))
    except RuntimeError:
        port = 0
    if port == 0:
        raise ConfigError(f"cannot listen on {address}")

    if config.metrics_listen and not reuseport:  # with --workers, the parent serves it
        metrics_http.serve(config.metrics_listen)

    probe_server = None
    if config.health_listen:
        probe_server = _probe_server(config.health_listen, health_servicer)

    # The table is in the log before any exchange can name it (docs/DISCLOSURE.md).
    await publish(app.registry, app.policy.current)
    if app.sequencer is not None:
        await app.sequencer.start()
    if app.submitter is not None:
        await app.submitter.start()
    await server.start()
    if probe_server is not None:
        await probe_server.start()
    for name in ("", *SERVICE_NAMES, ACCESS_LOG_HEALTH):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    reloads: set[asyncio.Task[None]] = set()

    def on_sighup() -> None:
        _reload(app, reloads, peers)
        reload_principals(config.path, identities, app.policy.current)

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    guard = MemoryGuard(config.connection_limits.max_rss_mib, stop.set)
    guard.start()
    host = address.rsplit(":", 1)[0]
    if on_ready is not None:
        on_ready(host, port)
    else:
        # Tests and scripts read this line to learn the port (with --listen HOST:0).
        print(f"symbolsvc serving on {host}:{port}", flush=True)
    log.info("serving on %s:%d (mTLS, %d principals)", host, port, len(config.principals))
    log.info("access log %s: records are kept for at least %d years (retention_years); "
             "nothing deletes a leaf: archive, never delete (docs/ACCESS_LOG.md, Retention)",
             config.log_origin, config.log_retention_years)

    monitor = asyncio.create_task(_watch_storage(app.registry, health_servicer, app.sequencer))
    sampler = asyncio.create_task(sample_domain(app.notifier, app.sequencer, app.policy))
    # The loop's lag and the collector's pauses (stalls.py), where metrics are served.
    gc_timer = GcTimer()
    stalls = None
    if config.metrics_listen:
        gc_timer.install()
        stalls = asyncio.create_task(watch_loop(gc_timer))
    # Other replicas' integrations wake this process's watchers as they commit.
    growth = asyncio.create_task(app.registry.follow_growth(app.notifier.advance)) \
        if isinstance(app.registry, LogStore) else None
    await stop.wait()

    log.info("stopping: finishing in-flight calls (grace %.0f s)", config.grace_seconds)
    monitor.cancel()
    sampler.cancel()
    if stalls is not None:
        stalls.cancel()
    gc_timer.remove()
    if growth is not None:
        growth.cancel()
    await health_servicer.enter_graceful_shutdown()
    app.notifier.close()  # watch streams end now (UNAVAILABLE), not after the grace period
    # Past the memory bound, connections still growing it get a short grace only.
    await server.stop(min(config.grace_seconds, 1.0) if guard.tripped else config.grace_seconds)
    if probe_server is not None:
        await probe_server.stop(0)
    if app.submitter is not None:
        await app.submitter.stop()
    if app.sequencer is not None:
        await app.sequencer.stop()  # the final integration
    await app.registry.close()
    tracing.shutdown()
    log.info("stopped; all acknowledged writes are on disk")
    guard.cancel()
    if guard.tripped:
        raise SystemExit(MEMORY_EXIT_STATUS)


async def _watch_storage(registry: Registry, servicer: AioHealthServicer,
                         sequencer: Sequencer | None = None, interval: float = 1.0) -> None:
    """Health follows the database: NOT_SERVING while ``registry.ping()`` fails, SERVING
    again by itself once it answers (checked every ``interval`` seconds). Beyond that, the
    broker is NOT_SERVING while the access log's integration lag exceeds the maximum merge
    delay, and ``symbolsvc.access_log`` while the log is degraded (log/merge_delay.py)."""
    serving = True
    shown: dict[str, bool] = {}
    while True:
        await asyncio.sleep(interval)
        why = ""
        try:
            await asyncio.wait_for(registry.ping(), timeout=3 * interval)
            if not await _writes_fit(registry):
                why = "disk full: health NOT_SERVING until a write fits again"
        except (Unavailable, TimeoutError):
            why = "registry unreachable: health NOT_SERVING until it answers"
        ok = not why
        if ok != serving:
            serving = ok
            if ok:
                log.info("registry reachable and writable again: health SERVING")
            else:
                log.error("registry %s", why)
        watch = sequencer.watch if sequencer is not None else None
        wanted = {name: ok for name in ("", *SERVICE_NAMES)}
        wanted[BROKER_SERVICE] = ok and (watch is None or watch.broker_serving)
        wanted[ACCESS_LOG_HEALTH] = ok and (watch is None or watch.log_serving)
        for name, up in wanted.items():
            if shown.get(name, True) != up:
                await servicer.set(name, health_pb2.HealthCheckResponse.SERVING if up
                                   else health_pb2.HealthCheckResponse.NOT_SERVING)
            shown[name] = up


async def _writes_fit(registry: Registry) -> bool:
    """False while the registry's last write failed for lack of room and a probe write
    still fails (backends without the signal always fit)."""
    if getattr(registry, "write_failure", None) is None:
        return True
    try:
        await registry.probe_write()  # type: ignore[attr-defined]
    except ResourceExhausted:
        return False
    return True


def _reload(app: App, tasks: set[asyncio.Task[None]], peers: PeerCheck) -> None:
    """SIGHUP: the permission table and the revocation list now, the keyring in the
    background (keyload.py)."""
    _spawn(tasks, _reload_policy(app))
    try:
        revoked = peers.reload()
    except ConfigError as exc:
        log.error("revocation list NOT reloaded; keeping the previous one: %s", exc)
    else:
        log.info("revocation list reloaded: %d entries", revoked)
    _spawn(tasks, reload_keys(app.config, [app.core, app.disclosure, app.transparency],
                            app.sequencer, app.core))


def _spawn(tasks: set[asyncio.Task[None]], work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _reload_policy(app: App) -> None:
    """Read the table, publish it as a POLICY record, then swap it in; on any error keep
    the previous table (no exchange is ever allowed under an unpublished table)."""
    try:
        table = await reload_and_publish(app.policy, app.registry)
    except (ConfigError, SymbolsvcError) as exc:
        log.error("permission table NOT reloaded; keeping the previous one: %s", exc)
        return
    log.info("permission table reloaded: %d rules", table.rules)


def _probe_server(address: str, servicer: AioHealthServicer) -> grpc.aio.Server:
    """Plaintext health for probes without a certificate: loopback only (CONTRACT §3)."""
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"[server] health_listen must be a loopback address, not {address!r}")
    probe = grpc.aio.server(options=probe_options())
    health_pb2_grpc.add_HealthServicer_to_server(servicer, probe)
    check_bindable(address)
    try:
        port = probe.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise ConfigError(f"cannot listen on {address}")
    return probe


def check_bindable(address: str) -> None:
    """Raise ConfigError naming the reason (e.g. address in use) if ``address`` cannot be
    bound; port 0 always can. gRPC itself reports only that binding failed."""
    host, _, port_text = address.rpartition(":")
    try:
        port = int(port_text)
        infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"cannot listen on {address}: {exc}") from None
    if port == 0:
        return
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                raise ConfigError(f"cannot listen on {address}: {exc.strerror}") from None
