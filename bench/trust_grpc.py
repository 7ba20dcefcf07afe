"""Signed inquiries and blind translation end to end over gRPC and mutual TLS, A/B
(``python -m bench.trust_grpc [ROUNDS] [BATCH]``; docs/BENCHMARKS.md).

One ``symbolsvc serve`` per configuration (off, signed, blind with an X25519 or an
ML-KEM-768 + X25519 provider key, signed + blind), each on its own copy of one deployment
(same keys, so the same symbols) with its own SQLite registry, all running at once. Each
round sends one ``BatchTranslateSymbols`` of BATCH items to every server in turn; measured
per item: the server process's CPU time (``/proc``, 10 ms ticks) and the call's wall time.
Medians over ROUNDS, with ratios to the same call on the server with both features off.
The agency's signatures are made before the clock starts.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from symbolsvc_client import Deployment
from symbolsvc_client.trust import sign_inquiry
from symbolsvc_client.v1 import broker_service_pb2 as pb

from bench.plan import nth_number
from bench.servers import Spawned
from symbolsvc.deploy import init_deployment

POLICY = ('[[allow]]\nrequester = "city-a"\noffice_work = "w"\ninfo_item = "i"\n'
          'providers = ["city-b"]\n')
LIMITS = ("\n[limits.roles.broker]\nrate = 1000000\nburst = 1000000\n"
          "[limits.roles.agency]\nrate = 1000000\nburst = 1000000\n")
CONFIGS = {
    "off": "",
    "signed": "require_signed_inquiries = true\n",
    "blind-x25519": "blind_translation = true\n",
    "blind-hybrid": "blind_translation = true\n",
    "signed+blind-hybrid": "require_signed_inquiries = true\nblind_translation = true\n",
}


def _deployments(base: Path) -> dict[str, Path]:
    template = base / "template"
    init_deployment(template, ["city-a", "city-b"])
    (template / "policy.toml").write_text(POLICY)
    out = {}
    for name, broker in CONFIGS.items():
        d = base / name.replace("+", "-")
        shutil.copytree(template, d, ignore=shutil.ignore_patterns("data", "logs"))
        (d / "data").mkdir()
        (d / "logs").mkdir()
        with (d / "config.toml").open("a") as f:
            f.write(LIMITS + ("\n[broker]\n" + broker if broker else ""))
        if name == "blind-x25519":
            from symbolsvc.pki import write_hpke_pair

            write_hpke_pair(d / "pki", "city-b", "x25519")
        out[name] = d
    return out


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    with tempfile.TemporaryDirectory() as tmp:
        deps = _deployments(Path(tmp))
        servers: dict[str, Spawned] = {}
        try:
            for name, d in deps.items():
                servers[name] = Spawned.start(name, [
                    sys.executable, "-m", "symbolsvc", "serve", "--config",
                    str(d / "config.toml"), "--listen", "127.0.0.1:0"])
            samples = run(deps, servers, rounds, batch)
        finally:
            for s in servers.values():
                s.stop()
    report(samples, rounds, batch)


def run(deps: dict[str, Path], servers: dict[str, Spawned], rounds: int, batch: int
        ) -> dict[str, list[tuple[float, float]]]:
    numbers = [nth_number(i) for i in range(batch)]
    symbols: dict[str, list[str]] = {}
    brokers = {}
    for name, d in deps.items():
        dep, addr = Deployment(d), servers[name].address
        with dep.agency("city-a", addr) as a, dep.agency("city-b", addr) as b:
            symbols[name] = [r.issued.symbol for r in a.issue_batch(numbers)]
            b.issue_batch(numbers)
        brokers[name] = dep.broker(addr)
    out: dict[str, list[tuple[float, float]]] = {n: [] for n in deps}
    try:
        for r in range(rounds):
            for name, d in deps.items():
                reqs = []
                for j, sym in enumerate(symbols[name]):
                    xid = f"{r}-{j}"
                    if name.startswith("signed"):
                        reqs.append(sign_inquiry(
                            d / "pki" / "city-a.key", requester="city-a", symbol=sym,
                            provider="city-b", office_work="w", info_item="i",
                            exchange_id=xid).translate_request())
                    else:
                        reqs.append(pb.TranslateSymbolRequest(
                            requester_agency="city-a", symbol=sym, provider_agency="city-b",
                            office_work="w", info_item="i", exchange_id=xid))
                cpu0, wall0 = servers[name].cpu_seconds(), time.perf_counter()
                results = brokers[name].translate_batch(reqs)
                wall = time.perf_counter() - wall0
                cpu = servers[name].cpu_seconds() - cpu0
                bad = [x for x in results if x.WhichOneof("outcome") != "translated"]
                if bad:
                    raise SystemExit(f"{name}: {bad[0]}")
                out[name].append((cpu / batch, wall / batch))
    finally:
        for b in brokers.values():
            b.close()
    return out


def report(samples: dict[str, list[tuple[float, float]]], rounds: int, batch: int) -> None:
    off_cpu = statistics.median(c for c, _ in samples["off"])
    off_wall = statistics.median(w for _, w in samples["off"])
    print(f"BatchTranslateSymbols over gRPC, {batch} items per call, medians of {rounds} "
          "alternating rounds")
    print("| configuration | server CPU µs/item | ratio | wall µs/item | ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, s in samples.items():
        cpu = statistics.median(c for c, _ in s)
        wall = statistics.median(w for _, w in s)
        print(f"| {name} | {cpu * 1e6:.0f} | {cpu / off_cpu:.2f} | {wall * 1e6:.0f} | "
              f"{wall / off_wall:.2f} |")


if __name__ == "__main__":
    main()
