"""The Prometheus ``/metrics`` endpoint, in one process or across ``--workers``.

One process: prometheus-client's own HTTP server (a daemon thread) over its default
registry. ``--workers N``: prometheus-client's multiprocess mode. The parent points
``PROMETHEUS_MULTIPROC_DIR`` at an empty directory before it spawns the workers (each
worker's metrics then live in files there), serves ``/metrics`` itself with a
``MultiProcessCollector`` that sums the workers' files, and marks a worker's gauges
dead when it exits. Counters and histograms add up across workers; each gauge declares
how it combines (max, or livesum for sequencer leadership).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from .errors import ConfigError

ENV = "PROMETHEUS_MULTIPROC_DIR"


def _bind(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        raise ConfigError(f"[server] metrics_listen {address!r} is not HOST:PORT") from None


def serve(address: str) -> None:
    """Single-process /metrics over the default registry."""
    from prometheus_client import start_http_server

    host, port = _bind(address)
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {address}: {exc.strerror}") from None


def ensure_multiprocess_dir() -> None:
    """prometheus-client opens files in ``$ENV`` as soon as metrics are defined: make sure
    an operator-given directory exists before that."""
    given = os.environ.get(ENV)
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)


def prepare_multiprocess() -> Path:
    """An empty directory for the workers' metric files, exported in ``$ENV``."""
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for f in path.glob("*.db"):  # a previous run's values must not be summed in
            f.unlink()
    else:
        path = Path(tempfile.mkdtemp(prefix="symbolsvc-metrics-"))
        os.environ[ENV] = str(path)
        atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def serve_multiprocess(address: str, path: Path) -> None:
    """The parent's /metrics: the sum of every worker's metrics."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))
    host, port = _bind(address)
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {address}: {exc.strerror}") from None


def worker_exited(pid: int | None) -> None:
    """A worker process is gone: its live gauges stop counting (multiprocess mode only)."""
    path = os.environ.get(ENV)
    if pid is None or not path:
        return
    from prometheus_client.multiprocess import mark_process_dead

    mark_process_dead(pid, path)
