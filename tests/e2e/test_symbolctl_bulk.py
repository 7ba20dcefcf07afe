"""symbolctl's bulk loads, driven as an operator would: a real subprocess, a real server.

A 20,000-line input with blank and bad lines gets exactly one JSON line per input line,
in order, with the input's line number and one shape for every item; a summary; exit
status 1 because items failed. A load killed (kill -9) in the middle and run again with
``--resume`` ends with every line answered once and every number held once. The kill
lands mid-load by construction: the input comes through a pipe the test keeps open, so
symbolctl cannot finish before the test kills it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    NumberSource,
    RegistryReader,
    ServerProcess,
    wait_until,
    wrong_check_digit,
)

pytestmark = pytest.mark.slow

AGENCY = "city-chiyoda"
LINES = 20_000
SHAPE = {"line", "status", "symbol", "newly_registered", "key_version", "error"}


def symbolctl(server: ServerProcess, *args: str, stdin: str | None = None,
              target: bool = True) -> subprocess.CompletedProcess[str]:
    base = [sys.executable, "-m", "symbolsvc_client.cli", "--deployment", str(server.directory)]
    if target:
        base += ["--target", server.address]
    return subprocess.run([*base, *args], capture_output=True, text=True, input=stdin,
                          timeout=300, check=False)


def make_input(numbers: NumberSource, n: int = LINES) -> tuple[list[str], dict[int, str]]:
    """``n`` lines: mostly valid numbers, every 97th blank, every 89th a bad check digit,
    every 211th malformed. Returns the lines and {line number: kind} of the odd ones."""
    valid = iter(numbers.many(n))
    lines: list[str] = []
    odd: dict[int, str] = {}
    for i in range(1, n + 1):
        if i % 97 == 0:
            lines.append("")
            odd[i] = "blank"
        elif i % 89 == 0:
            lines.append(wrong_check_digit(next(valid)))
            odd[i] = "BAD_CHECK_DIGIT"
        elif i % 211 == 0:
            lines.append("12-34")
            odd[i] = "malformed"
        else:
            lines.append(next(valid))
    return lines, odd


def check_output(out: list[dict], lines: list[str], odd: dict[int, str]) -> None:
    assert [d["line"] for d in out] == list(range(1, len(lines) + 1))
    for d in out:
        assert set(d) == SHAPE, d
        kind = odd.get(d["line"])
        if kind == "blank":
            assert d["status"] == "skipped" and d["symbol"] is None
        elif kind is not None:
            assert d["status"] == "failed" and d["error"]["code"] == "INVALID_ARGUMENT"
            if kind == "BAD_CHECK_DIGIT":
                assert d["error"]["reason"] == "BAD_CHECK_DIGIT"
            assert lines[d["line"] - 1] not in json.dumps(d)  # never echoes the input
        else:
            assert d["status"] in ("new", "existing") and d["error"] is None
            assert d["symbol"].startswith("k") and d["key_version"] >= 1
            assert d["newly_registered"] is (d["status"] == "new")


def holdings(directory: Path) -> int:
    with RegistryReader(directory) as db:
        return int(db.one("SELECT COUNT(*) FROM holdings WHERE agency = ? AND NOT released",
                          (AGENCY,))[0])


def test_bulk_issue_lines_up_with_input(fresh_deployment: Path, start_server,
                                        numbers: NumberSource, tmp_path: Path) -> None:
    server = start_server(fresh_deployment)
    lines, odd = make_input(numbers)
    src = tmp_path / "numbers.txt"
    src.write_text("\n".join(lines) + "\n")
    r = symbolctl(server, "--as", AGENCY, "issue", "--input", str(src))
    assert r.returncode == 1, r.stderr  # some items failed
    out = [json.loads(x) for x in r.stdout.splitlines()]
    check_output(out, lines, odd)
    valid = LINES - len(odd)
    assert sum(d["status"] == "new" for d in out) == valid == holdings(fresh_deployment)
    failed = sum(1 for k in odd.values() if k != "blank")
    skipped = sum(1 for k in odd.values() if k == "blank")
    summary = r.stderr.strip().splitlines()[-1]
    assert f"{LINES} lines" in summary and f"{valid} new" in summary
    assert f"{failed} failed" in summary and f"{skipped} skipped" in summary
    assert "lines/s" in summary
    # The first failures name their input line, not a position in a batch.
    first_bad = min(n for n, k in odd.items() if k != "blank")
    assert f"line {first_bad}: INVALID_ARGUMENT" in r.stderr
    assert "individual_numbers[" not in r.stderr + r.stdout

    # Again: every valid line is now "existing", with the same symbols; and a CSV column.
    csv_path = tmp_path / "people.csv"
    csv_path.write_text("name,number\n" + "".join(f"p{i},{n}\n" for i, n in
                                                  enumerate(lines[:300])))
    r2 = symbolctl(server, "--as", AGENCY, "issue", "--csv", "--column", "number",
                   "--input", str(csv_path))
    out2 = [json.loads(x) for x in r2.stdout.splitlines()]
    assert [d["line"] for d in out2] == list(range(2, 302))  # line 1 is the header
    for d, first in zip(out2, out[:300], strict=True):
        assert d["symbol"] == first["symbol"]
        assert d["status"] == ("existing" if first["status"] == "new" else first["status"])


def test_clean_load_exits_zero_and_reads_the_deployment_target(
        fresh_deployment: Path, start_server, numbers: NumberSource, tmp_path: Path) -> None:
    server = start_server(fresh_deployment)
    # A deployment directory whose config.toml names the server's address: no --target.
    d = tmp_path / "client-side"
    d.mkdir()
    (d / "pki").symlink_to(server.directory / "pki")
    (d / "config.toml").write_text(f'[server]\nlisten = "{server.address}"\n')
    one = numbers.one()
    r = subprocess.run([sys.executable, "-m", "symbolsvc_client.cli", "--deployment", str(d),
                        "--as", AGENCY, "issue", "-"], input=one + "\n", capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc == {"line": 1, "status": "new", "symbol": doc["symbol"],
                   "newly_registered": True, "key_version": doc["key_version"], "error": None}
    # The single-item chunk keeps the shape, defaults included (false, not missing).
    r = symbolctl(server, "--as", AGENCY, "issue", "-", stdin=one + "\n")
    assert r.returncode == 0 and json.loads(r.stdout)["newly_registered"] is False


def test_resume_after_kill(fresh_deployment: Path, start_server, numbers: NumberSource,
                           tmp_path: Path) -> None:
    server = start_server(fresh_deployment)
    lines, odd = make_input(numbers)
    src = tmp_path / "numbers.txt"
    src.write_text("\n".join(lines) + "\n")
    out_path, state = tmp_path / "out.jsonl", tmp_path / "load.state"
    args = [sys.executable, "-m", "symbolsvc_client.cli", "--deployment",
            str(server.directory), "--target", server.address, "--as", AGENCY, "issue",
            "--input", "-", "--output", str(out_path), "--resume", str(state)]
    first = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    assert first.stdin is not None
    # Half the input, and the pipe stays open: the load cannot end before the kill.
    first.stdin.write("\n".join(lines[:LINES // 2]) + "\n")
    first.stdin.flush()

    def progressed() -> int:
        try:
            return json.loads(state.read_text())["next_line"] > 3000
        except (OSError, ValueError):
            return 0

    wait_until(progressed, 120, "the first run to make 3 chunks durable")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    done = json.loads(state.read_text())["next_line"] - 1
    assert 3000 <= done < LINES  # really interrupted in the middle

    with src.open() as stdin:
        second = subprocess.run(args, stdin=stdin, capture_output=True, text=True,
                                timeout=300, check=False)
    assert second.returncode == 1, second.stderr  # the bad lines
    out = [json.loads(x) for x in out_path.read_text().splitlines()]
    check_output(out, lines, odd)  # every line exactly once, in order
    valid = LINES - len(odd)
    assert holdings(fresh_deployment) == valid  # nothing skipped, nothing held twice
    symbols = [d["symbol"] for d in out if d["symbol"]]
    assert len(symbols) == len(set(symbols)) == valid

    # A different input is refused, not silently continued.
    other = tmp_path / "other.txt"
    other.write_text("\n".join(reversed(lines)) + "\n")
    state.write_text(json.dumps({**json.loads(state.read_text()), "next_line": 10}))
    with other.open() as stdin:
        r = subprocess.run(args, stdin=stdin, capture_output=True, text=True, timeout=60,
                           check=False)
    assert r.returncode == 2 and "same input" in r.stderr


def test_bulk_translate_and_release(fresh_deployment: Path, start_server,
                                    numbers: NumberSource, tmp_path: Path) -> None:
    server = start_server(fresh_deployment)
    dep = server.deployment
    subjects = numbers.many(30)
    with dep.agency(AGENCY, server.address) as chiyoda, \
            dep.agency("tax-office", server.address) as tax:
        mine = [chiyoda.issue(n).symbol for n in subjects]
        theirs = [tax.issue(n).symbol for n in subjects[:20]]  # 10 not held by the provider
    src = tmp_path / "symbols.txt"
    src.write_text("\n".join([*mine[:15], "", *mine[15:], "not-a-symbol"]) + "\n")
    r = symbolctl(server, "translate", "--requester", AGENCY, "--provider", "tax-office",
                  "--office-work", "resident-tax", "--info-item", "national-tax-income",
                  "--input", str(src))
    assert r.returncode == 1, r.stderr
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert [d["line"] for d in out] == list(range(1, 33))
    keys = {"line", "status", "provider_symbol", "record_id", "exchange_id", "error"}
    assert all(set(d) == keys for d in out)
    translated = [d for d in out if d["status"] == "translated"]
    assert [d["provider_symbol"] for d in translated] == theirs
    assert out[15]["status"] == "skipped"
    failed = [d for d in out if d["status"] == "failed"]
    assert len(failed) == 11 and {d["error"]["code"] for d in failed} == {"NOT_FOUND",
                                                                           "INVALID_ARGUMENT"}
    assert len({d["exchange_id"] for d in out if d["exchange_id"]}) == 31

    rel = tmp_path / "release.txt"
    rel.write_text("\n".join([mine[0], mine[1], mine[0]]) + "\n")
    r = symbolctl(server, "--as", AGENCY, "release", "--input", str(rel))
    assert r.returncode == 0, r.stderr
    statuses = [json.loads(x)["status"] for x in r.stdout.splitlines()]
    assert statuses[1] == "released"
    # Lines 1 and 3 name one holding and run concurrently: one ends it, the other finds
    # it ended, in either order.
    assert sorted([statuses[0], statuses[2]]) == ["already_released", "released"]


def test_progress_bar_on_a_terminal(fresh_deployment: Path, start_server,
                                    numbers: NumberSource, tmp_path: Path) -> None:
    """stderr a terminal (a pseudo-terminal here): a tqdm bar with rate and ETA; not a
    terminal (every other test): no bar, only the summary."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    server = start_server(fresh_deployment)
    src = tmp_path / "numbers.txt"
    src.write_text("\n".join(numbers.many(3000)) + "\n")
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:  # read while it writes, so the terminal's buffer never fills
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: the writer side is closed and drained
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "symbolsvc_client.cli", "--deployment",
             str(server.directory), "--target", server.address, "--as", AGENCY, "issue",
             "--input", str(src)], stdout=subprocess.PIPE, stderr=secondary, timeout=300,
            check=False)
    finally:
        os.close(secondary)
        reader.join(timeout=30)
        os.close(primary)
    assert proc.returncode == 0
    tty = b"".join(chunks).decode(errors="replace")
    assert "3.00k/3.00k" in tty and "line/s" in tty and "100%" in tty, tty
    assert re.search(r"\d\d:\d\d<\d\d:\d\d", tty)  # elapsed<ETA
    assert "3000 lines: 3000 new" in tty
    assert len(proc.stdout.splitlines()) == 3000
