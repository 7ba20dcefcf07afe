"""The cost of issue 14's signed inquiries and blind translation on the translation path
(``python -m bench.trust_cost [ROUNDS] [BATCH]``; docs/BENCHMARKS.md).

One in-process ``Core`` per configuration over ONE SQLite registry (same deriver, same
holdings): ``BatchTranslateSymbols``-sized calls of BATCH translations, configurations
alternating within each round, medians over ROUNDS. Reported per configuration: the
process CPU time and the wall time per translated item, and each as a ratio to the same
call with the features off. Signatures are made before the clock starts (signing is the
agency's cost, not the service's). Also: one ECDSA P-256 verification and one HPKE seal per
suite, alone (``timeit``).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

from symbolsvc_client.trust import sign_inquiry

from bench.plan import nth_number
from symbolsvc import inquiry, sealing
from symbolsvc.blinding import Blinder
from symbolsvc.core import Core, Translated, TranslateRequest
from symbolsvc.inquiries import InquiryChecker
from symbolsvc.keys import Keyring
from symbolsvc.pki import issue_leaf, make_ca, spiffe_id, write_hpke_pair, write_pair
from symbolsvc.policy import PolicyHolder
from symbolsvc.records import AccessKind
from symbolsvc.registry.sqlite import SqliteRegistry
from symbolsvc.symbols import Deriver

POLICY = ('[[allow]]\nrequester = "city-a"\noffice_work = "w"\ninfo_item = "i"\n'
          'providers = ["city-b"]\n')
CONFIGS = ("off", "signed", "blind-x25519", "blind-hybrid", "signed+blind-hybrid")


def _pki(base: Path, suite: str) -> Path:
    d = base / f"pki-{suite}"
    ca = make_ca()
    write_pair(ca, d, "ca")
    for name in ("city-a", "city-b"):
        write_pair(issue_leaf(ca, name, spiffe_id("agency", name)), d, name)
    write_hpke_pair(d, "city-b", suite)
    return d


async def measure(rounds: int, batch: int, base: Path) -> dict[str, list[tuple[float, float]]]:
    (base / "policy.toml").write_text(POLICY)
    deriver, policy = Deriver(Keyring.generate()), PolicyHolder(base / "policy.toml")
    registry = SqliteRegistry(base / "registry.db")
    pki_x, pki_h = _pki(base, sealing.X25519), _pki(base, sealing.HYBRID)
    clock = lambda: time.time_ns() // 1000  # noqa: E731
    checker = InquiryChecker(pki_h, required=True, window_s=3600, clock_us=clock)
    cores = {
        "off": Core(deriver, registry, policy),
        "signed": Core(deriver, registry, policy, inquiries=checker),
        "blind-x25519": Core(deriver, registry, policy, blinder=Blinder(pki_x)),
        "blind-hybrid": Core(deriver, registry, policy, blinder=Blinder(pki_h)),
        "signed+blind-hybrid": Core(deriver, registry, policy, inquiries=checker,
                                    blinder=Blinder(pki_h)),
    }
    numbers = [nth_number(i) for i in range(batch)]
    symbols = [i.symbol for i in await cores["off"].issue_many("city-a", numbers)
               if not isinstance(i, Exception)]
    await cores["off"].issue_many("city-b", numbers)
    key = pki_h / "city-a.key"
    out: dict[str, list[tuple[float, float]]] = {c: [] for c in CONFIGS}
    for r in range(rounds):
        for name in CONFIGS:
            signed = name.startswith("signed")
            reqs = []
            for j, sym in enumerate(symbols):
                xid = f"{name}-{r}-{j}"
                sig, at = b"", 0
                if signed:
                    s = sign_inquiry(key, requester="city-a", symbol=sym, provider="city-b",
                                     office_work="w", info_item="i", exchange_id=xid)
                    sig, at = s.signature, s.issued_at_us
                reqs.append(TranslateRequest("city-a", sym, "city-b", "w", "i", xid, sig, at))
            cpu0, wall0 = time.process_time(), time.perf_counter()
            results = await cores[name].translate_many(reqs)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            bad = [x for x in results if not isinstance(x, Translated)]
            if bad:
                raise SystemExit(f"{name}: {bad[0]!r}")
            out[name].append((cpu / len(reqs), wall / len(reqs)))
    await registry.close()
    return out


def micro(base: Path) -> dict[str, float]:
    """CPU microseconds per operation, alone: verify one signature, seal one symbol."""
    pki = _pki(base, sealing.X25519)
    keys = inquiry.agency_keys(pki)["city-a"]
    s = sign_inquiry(pki / "city-a.key", requester="city-a", symbol="k1." + "a" * 52,
                     provider="city-b", office_work="w", info_item="i", exchange_id="x")
    inq = inquiry.Inquiry(AccessKind.TRANSLATE, "city-a",
                          inquiry.symbol_digest("city-a", "x", s.symbol), "city-b", "w", "i",
                          "x", s.issued_at_us)
    assert inquiry.verify(keys, inq, s.signature)
    cpu = time.process_time  # CPU, not wall: the machine is shared
    res = {"ECDSA P-256 verify": timeit.timeit(
        lambda: inquiry.verify(keys, inq, s.signature), number=500, timer=cpu) / 500}
    info = sealing.info("x", "city-a")
    for suite in (sealing.X25519, sealing.HYBRID):
        k = sealing.public_key(sealing.generate(suite)[1])
        res[f"HPKE seal {suite}"] = timeit.timeit(
            lambda k=k: k.seal(b"k1." + b"a" * 52, info), number=500, timer=cpu) / 500
    return {k: v * 1e6 for k, v in res.items()}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    with tempfile.TemporaryDirectory() as d:
        out = asyncio.run(measure(rounds, batch, Path(d)))
        ops = micro(Path(d))
    off_cpu = statistics.median(c for c, _ in out["off"])
    off_wall = statistics.median(w for _, w in out["off"])
    print(f"translate_many, {batch} items per call, medians of {rounds} alternating rounds")
    print("| configuration | CPU µs/item | ratio | wall µs/item | ratio |")
    print("|---|---|---|---|---|")
    for name, samples in out.items():
        cpu = statistics.median(c for c, _ in samples)
        wall = statistics.median(w for _, w in samples)
        print(f"| {name} | {cpu * 1e6:.0f} | {cpu / off_cpu:.2f} | {wall * 1e6:.0f} | "
              f"{wall / off_wall:.2f} |")
    for op, us in ops.items():
        print(f"{op}: {us:.0f} µs CPU")


if __name__ == "__main__":
    main()
