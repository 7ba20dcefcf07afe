"""``symbolsvc serve --workers N`` under a service manager: deaths, orphans, signals.

A worker killed with -9 is named in the log (pid and signal) and restarted while the other
keeps serving the port; too many deaths end the set with a non-zero status, never 0. kill -9
of the supervisor takes every worker with it (parent-death signal), and the port is then
free for a new set. SIGHUP reaches every worker. A set refuses a port someone (an orphan of
an earlier set) still listens on.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

from conftest import TEST_POLICY, StartServer
from helpers import SERVING, Clients, NumberSource, ServerProcess, wait_until
from symbolsvc_client import Deployment

from symbolsvc.workers import RESTART_LIMIT

WORKERS = ["--workers", "2"]
MINATO_RULE = """
[[allow]]
requester   = "city-minato"
office_work = "resident-tax"
info_item   = "national-tax-income"
providers   = ["tax-office"]
"""


def worker_pids(server: ServerProcess, since: int = 0) -> dict[int, int]:
    """{worker index: pid} of the latest start of each worker, from the supervisor's log."""
    pids: dict[int, int] = {}
    text = server.log_path.read_bytes()[since:].decode(errors="replace")
    for m in re.finditer(r"symbolsvc: worker (\d+) started \(pid (\d+)\)", text):
        pids[int(m.group(1))] = int(m.group(2))
    return pids


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its reaper counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def healthy(dep: Deployment, address: str) -> bool:
    c = Clients(dep, address)  # a new channel: a new connection, any worker
    try:
        return c.auditor().health("") == SERVING
    finally:
        c.close()


def test_a_killed_worker_is_named_and_restarted(fresh_deployment: Path,
                                                start_server: StartServer) -> None:
    server = start_server(fresh_deployment, extra_args=WORKERS)
    dep = Deployment(fresh_deployment)
    pids = worker_pids(server)
    assert sorted(pids) == [0, 1]
    mark = server.log_size()
    os.kill(pids[0], signal.SIGKILL)
    line = server.wait_for_log(r"worker 0 .* was killed by signal SIGKILL", since=mark)
    assert f"pid {pids[0]}" in line and "restarting it" in line
    # The other worker serves the port meanwhile, and the supervisor is still up.
    assert healthy(dep, server.address)
    server.wait_for_log(r"worker 0 started \(pid \d+\)", since=mark, timeout=30)
    new = worker_pids(server, since=mark)[0]
    server.wait_for_log(rf"worker 0 \(pid {new}\) serving", since=mark, timeout=60)
    assert new != pids[0] and alive(pids[1])
    assert server.running
    # The restarted worker serves too: every fresh connection finds a serving worker.
    for _ in range(6):
        assert healthy(dep, server.address)
    assert server.stop() == 0


def test_a_set_that_cannot_be_kept_whole_exits_non_zero(fresh_deployment: Path,
                                                         start_server: StartServer) -> None:
    server = start_server(fresh_deployment, extra_args=WORKERS)
    assert server.proc is not None
    killed: set[int] = set()

    def next_victim() -> int | None:
        if server.proc is not None and server.proc.poll() is not None:
            return -1  # the set gave up
        return next((p for p in worker_pids(server).values() if p not in killed and alive(p)),
                    None)

    # Deaths the supervisor has not yet seen may let one more worker start: bound, not exact.
    while len(killed) < 2 * RESTART_LIMIT:
        pid = wait_until(next_victim, 60, "a worker not yet killed")
        if pid == -1:
            break
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)
    assert RESTART_LIMIT <= len(killed) < 2 * RESTART_LIMIT
    rc = server.wait(timeout=60)
    assert rc == 1, server.log_tail()
    assert "cannot be kept whole" in server.log_text()
    assert not any(alive(p) for p in worker_pids(server).values())


def test_killing_the_supervisor_takes_every_worker_with_it(fresh_deployment: Path,
                                                           start_server: StartServer) -> None:
    server = start_server(fresh_deployment, extra_args=WORKERS)
    pids = worker_pids(server)
    assert len(pids) == 2 and all(alive(p) for p in pids.values())
    port = server.port
    assert server.kill() == -signal.SIGKILL
    wait_until(lambda: not any(alive(p) for p in pids.values()), 15,
               "every worker to exit after its supervisor")
    # No orphan holds the port: a new set starts on it.
    again = start_server(fresh_deployment, extra_args=WORKERS, listen=f"127.0.0.1:{port}")
    assert again.port == port
    assert healthy(Deployment(fresh_deployment), again.address)


def test_sighup_reaches_every_worker(fresh_deployment: Path, start_server: StartServer,
                                     numbers: NumberSource) -> None:
    server = start_server(fresh_deployment, extra_args=WORKERS)
    dep = Deployment(fresh_deployment)
    c = Clients(dep, server.address)
    n = numbers.one()
    minato = c.agency("city-minato").issue(n).symbol
    c.agency("tax-office").issue(n)
    c.close()
    (fresh_deployment / "policy.toml").write_text(TEST_POLICY + MINATO_RULE)
    mark = server.log_size()
    server.signal(signal.SIGHUP)
    wait_until(lambda: server.log_path.read_bytes()[mark:].decode().count(
        "permission table reloaded: 5 rules") == 2, 15, "both workers to reload")
    # Fresh connections land on either worker; every one sees the new rule.
    for i in range(12):
        fresh = Clients(dep, server.address)
        try:
            reply = fresh.broker().translate("city-minato", minato, "tax-office",
                                             "resident-tax", "national-tax-income", f"hup-{i}")
            assert reply.provider_symbol
        finally:
            fresh.close()
    assert server.stop() == 0


def test_a_second_set_refuses_a_port_an_orphan_holds(fresh_deployment: Path,
                                                      tmp_path: Path) -> None:
    # What an orphaned worker of an earlier set holds: a SO_REUSEPORT listener.
    with socket.socket() as orphan:
        orphan.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        orphan.bind(("127.0.0.1", 0))
        orphan.listen()
        port = orphan.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "symbolsvc", "serve", "--config",
             str(fresh_deployment / "config.toml"), "--listen", f"127.0.0.1:{port}",
             *WORKERS], capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr.decode()
    assert b"still holds the port" in proc.stderr
    assert b"serving on" not in proc.stdout
    assert b"Traceback" not in proc.stderr
