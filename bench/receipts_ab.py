"""A/B: the cost of authenticated queued records and signed receipts on the translation
path (``python -m bench.receipts_ab [--rounds N] [--storage URL]``).

Two cores in one process, alternating every round: A without the feature (no receipt
signed, queued rows untagged, the sequencer verifying nothing) and B with it (an HMAC tag
per queued row, one Ed25519 receipt per record, the sequencer checking every tag before it
integrates). Per round and variant: 200 ``Core.translate`` calls one after another (the
unary TranslateSymbol path without gRPC), one ``Core.translate_many`` of 1,000 items
(BatchTranslateSymbols) and one integration of everything queued. Process CPU time (the
writer thread included) and wall time; medians over the rounds, and B/A of the medians.
CPU time is the steadier figure on a shared machine: wall time is mostly waiting for the
disk's fsync and for the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench.plan import nth_number
from symbolsvc.core import Core, TranslateRequest
from symbolsvc.keys import Keyring
from symbolsvc.log.integrate import planner
from symbolsvc.log.queue_auth import QueueAuthenticator
from symbolsvc.log.receipts import ReceiptSigner
from symbolsvc.log.sequencer import checkpoint_signer
from symbolsvc.policy import PolicyHolder
from symbolsvc.registry import Registry
from symbolsvc.registry.backends import open_registry
from symbolsvc.symbols import Deriver

ORIGIN = "bench.local/access-log"
AGENCIES = ("city-chiyoda", "city-minato")
POLICY = ('[groups]\nagencies = ["city-chiyoda", "city-minato"]\n\n[[allow]]\n'
          'requester = "@agencies"\noffice_work = "x"\ninfo_item = "y"\n'
          'providers = ["@agencies"]\n')
SINGLES, BATCH, SUBJECTS = 200, 1000, 1000


class Variant:
    def __init__(self, name: str, on: bool, registry: Registry, deriver: Deriver,
                 policy: Path) -> None:
        key = Ed25519PrivateKey.generate()
        auth = QueueAuthenticator(bytes(32) + b"bench")
        self.name = name
        receipts = ReceiptSigner(ORIGIN, key, 10.0) if on else None
        if on:
            registry.queue_auth.mac = auth.mac
        self.core = Core(deriver, registry, PolicyHolder(policy), receipts=receipts)
        self.plan = planner(checkpoint_signer(ORIGIN, key), auth if on else None)
        self.registry = registry
        self.symbols: list[str] = []
        self.cpu: dict[str, list[float]] = {"translate": [], "batch": [], "integrate": []}
        self.wall: dict[str, list[float]] = {"translate": [], "batch": [], "integrate": []}

    async def setup(self, first: int) -> None:
        numbers = [nth_number(first + i) for i in range(SUBJECTS)]
        for agency in AGENCIES:
            issued = await self.core.issue_many(agency, numbers)
            if agency == AGENCIES[0]:
                self.symbols = [i.symbol for i in issued]  # type: ignore[union-attr]

    def _req(self, i: int, tag: str) -> TranslateRequest:
        return TranslateRequest(AGENCIES[0], self.symbols[i % SUBJECTS], AGENCIES[1], "x", "y",
                                f"{tag}-{i}")

    async def round(self, r: int) -> None:
        async def timed(what: str, coro_fn) -> None:  # type: ignore[no-untyped-def]
            c0, w0 = time.process_time(), time.perf_counter()
            await coro_fn()
            self.cpu[what].append(time.process_time() - c0)
            self.wall[what].append(time.perf_counter() - w0)

        async def singles() -> None:
            for i in range(SINGLES):
                await self.core.translate(self._req(i, f"s{r}"))

        async def batch() -> None:
            out = await self.core.translate_many([self._req(i, f"b{r}") for i in range(BATCH)])
            assert all(not isinstance(o, Exception) for o in out)

        async def integrate() -> None:
            result = await self.registry.integrate(100_000, "bench", 60_000, self.plan)
            assert result.integrated == SINGLES + BATCH and not result.quarantined

        await timed("translate", singles)
        await timed("batch", batch)
        await timed("integrate", integrate)


async def run(rounds: int, storage: str | None, directory: Path) -> list[Variant]:
    policy = directory / "policy.toml"
    policy.write_text(POLICY)
    deriver = Deriver(Keyring.generate())
    variants = []
    for k, (name, on) in enumerate((("A: off", False), ("B: on", True))):
        url = storage.format(name="ab" + "ab"[k]) if storage else f"sqlite:{name[0]}.db"
        variants.append(Variant(name, on, open_registry(url, directory), deriver, policy))
    for k, v in enumerate(variants):
        await v.setup(k * SUBJECTS)
    for r in range(rounds):
        for v in variants if r % 2 == 0 else reversed(variants):
            await v.round(r)
    for v in variants:
        await v.registry.close()
    return variants


def report(variants: list[Variant], rounds: int) -> None:
    per = {"translate": SINGLES, "batch": BATCH, "integrate": SINGLES + BATCH}
    print(f"{rounds} alternating rounds; medians; per record in µs (CPU | wall)")
    print("| path | A: off CPU | B: on CPU | B/A CPU | A: off wall | B: on wall | B/A wall |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    a, b = variants
    for what, n in per.items():
        ca, cb = (statistics.median(v.cpu[what]) / n * 1e6 for v in (a, b))
        wa, wb = (statistics.median(v.wall[what]) / n * 1e6 for v in (a, b))
        print(f"| {what} ({n}) | {ca:.0f} | {cb:.0f} | {cb / ca:.2f} | {wa:.0f} | {wb:.0f} | "
              f"{wb / wa:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--storage", help="a storage URL with {name} for the database name "
                        "(e.g. a PostgreSQL URL to two migrated databases); default SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        variants = asyncio.run(run(args.rounds, args.storage, Path(d)))
    report(variants, args.rounds)


if __name__ == "__main__":
    main()
