"""What the reference portal costs: a page view against the gRPC calls behind it, and a
record's verification in the browser against the same checks in Python.

    python -m bench.portal [--records 20] [--rounds 5] [--requests 40] [--json out.json]

Starts a fresh deployment, a server and ``symbolsvc portal serve``; one person gets
``--records`` translations. Then, in ``--rounds`` alternating rounds:

* A: ``GET /p/TOKEN/`` through the portal (HTTP, the whole page rendered);
  B: the two calls the page makes (``ListAccessRecords`` + ``ListHoldings``), straight
  over gRPC from this process — the portal's own overhead is A/B;
* C: ``SymbolsvcVerify.verifyRecord`` on one record's proof in headless Chromium
  (WebCrypto SHA-256 and Ed25519); D: the same checks in Python (signed note,
  inclusion proof, leaf decode) — C/D is what checking in the browser costs.

Each round reports medians; the result is the median of the rounds and the ratio within
each round (so a loaded machine slows both sides alike).
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import grpc

from bench.browser import available, chromium
from bench.plan import nth_number
from bench.servers import Spawned
from symbolsvc.log.checkpoint import verify_checkpoint
from symbolsvc.log.hashing import leaf_hash
from symbolsvc.log.verification import verify_inclusion
from symbolsvc.records import AccessRecord
from symbolsvc.v1 import broker_service_pb2 as bpb
from symbolsvc.v1 import broker_service_pb2_grpc as bgrpc
from symbolsvc.v1 import disclosure_service_pb2 as dpb
from symbolsvc.v1 import disclosure_service_pb2_grpc as dgrpc
from symbolsvc.v1 import symbol_service_pb2 as pb
from symbolsvc.v1 import symbol_service_pb2_grpc as pb_grpc

VERIFY_N = """
const [proof, vkey, n, done] = arguments;
(async () => {
  const times = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await SymbolsvcVerify.verifyRecord(proof, vkey, null);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
})().then(done, (e) => done("error: " + e.message));
"""


def _channel(dep: Path, name: str, target: str) -> grpc.Channel:
    pki = dep / "pki"
    creds = grpc.ssl_channel_credentials((pki / "ca.crt").read_bytes(),
                                         (pki / f"{name}.key").read_bytes(),
                                         (pki / f"{name}.crt").read_bytes())
    return grpc.secure_channel(target, creds)


def _ms(fn: Any, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def _python_verify(proof: dict[str, Any], vkey: str) -> None:
    cp = verify_checkpoint(proof["checkpoint"], vkey)
    leaf = base64.b64decode(proof["leaf"])
    verify_inclusion(leaf_hash(leaf), proof["leaf_index"], cp.size,
                     [base64.b64decode(h) for h in proof["hashes"]], cp.root_hash)
    AccessRecord.decode(leaf)


def run(dep: Path, server: Spawned, portal_url: str, args: argparse.Namespace
        ) -> dict[str, Any]:
    chans = {n: _channel(dep, n, server.address) for n in ("city-a", "city-b", "portal",
                                                          "broker")}
    number = nth_number(424242)
    sym = {n: pb_grpc.SymbolServiceStub(chans[n]).IssueSymbol(
        pb.IssueSymbolRequest(individual_number=number)).symbol for n in ("city-a", "city-b",
                                                                          "portal")}
    broker = bgrpc.BrokerServiceStub(chans["broker"])
    for i in range(args.records):
        broker.TranslateSymbol(bpb.TranslateSymbolRequest(
            requester_agency="city-a", symbol=sym["city-a"], provider_agency="city-b",
            office_work="demo-exchange", info_item="demo-record", exchange_id=f"b{i}"))
    disclosure = dgrpc.DisclosureServiceStub(chans["portal"])
    link = subprocess.run([sys.executable, "-m", "symbolsvc", "portal", "link", "--config",
                           str(dep / "config.toml"), sym["portal"]], capture_output=True,
                          text=True, check=True).stdout.strip()
    page = portal_url + link[link.index("/p/"):]
    deadline = time.monotonic() + 120
    while True:  # until every record is in a checkpoint
        records = disclosure.ListAccessRecords(
            dpb.ListAccessRecordsRequest(symbol=sym["portal"], page_size=500)).records
        if all(r.integrated for r in records) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    newest = max(r.record_id for r in records if r.kind == dpb.ACCESS_KIND_TRANSLATE)
    with urllib.request.urlopen(f"{page}proof/{newest}") as reply:  # noqa: S310 (loopback)
        proof = json.loads(reply.read())
    vkey = (dep / "pki" / "log.vkey").read_text().strip()

    def view() -> None:
        with urllib.request.urlopen(page) as reply:  # noqa: S310 (loopback)
            reply.read()

    def calls() -> None:
        disclosure.ListAccessRecords(dpb.ListAccessRecordsRequest(symbol=sym["portal"]))
        disclosure.ListHoldings(dpb.ListHoldingsRequest(symbol=sym["portal"]))

    rounds: list[dict[str, float]] = []
    driver = None
    if available():
        browser_cm = chromium()
        driver = browser_cm.__enter__()
        driver.set_script_timeout(300)
        driver.get(page)
    try:
        for _ in range(args.rounds):
            r = {"page_ms": _ms(view, args.requests), "grpc_ms": _ms(calls, args.requests),
                 "python_verify_ms": _ms(lambda: _python_verify(proof, vkey), args.requests)}
            if driver is not None:
                got = driver.execute_async_script(VERIFY_N, proof, vkey, args.requests)
                assert not isinstance(got, str), got
                r["browser_verify_ms"] = float(got)
            rounds.append(r)
    finally:
        if driver is not None:
            browser_cm.__exit__(None, None, None)
    for ch in chans.values():
        ch.close()

    def med(key: str) -> float:
        return round(statistics.median(r[key] for r in rounds), 3)

    out: dict[str, Any] = {
        "records_on_page": len(records), "proof_hashes": len(proof["hashes"]),
        "rounds": args.rounds, "requests_per_round": args.requests,
        "page_ms": med("page_ms"), "grpc_ms": med("grpc_ms"),
        "page_over_grpc": round(statistics.median(r["page_ms"] / r["grpc_ms"]
                                                  for r in rounds), 2),
        "python_verify_ms": med("python_verify_ms")}
    if driver is not None:
        out["browser_verify_ms"] = med("browser_verify_ms")
        out["browser_over_python"] = round(statistics.median(
            r["browser_verify_ms"] / r["python_verify_ms"] for r in rounds), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.portal", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=40)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="symbolsvc-portal-bench-"))
    dep = root / "dep"
    subprocess.run([sys.executable, "-m", "symbolsvc", "init", str(dep), "--agency", "city-a",
                    "--agency", "city-b"], check=True, capture_output=True)
    config = dep / "config.toml"
    server = Spawned.start("service", [sys.executable, "-m", "symbolsvc", "serve", "--config",
                                       str(config), "--listen", "127.0.0.1:0"])
    with config.open("a") as f:
        f.write(f'\n[portal]\ntarget = "{server.address}"\n')
    portal = subprocess.Popen([sys.executable, "-m", "symbolsvc", "portal", "serve", "--config",
                               str(config), "--listen", "127.0.0.1:0"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert portal.stdout is not None
        line = portal.stdout.readline()
        assert line.startswith("symbolsvc portal serving on "), line
        result = run(dep, server, line.split(" on ", 1)[1].strip(), args)
    finally:
        portal.terminate()
        portal.wait(timeout=30)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
