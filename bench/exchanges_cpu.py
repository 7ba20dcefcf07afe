"""A/B of issue 10 items 4-6 and 8 on the translation path, in process
(``python -m bench.exchanges_cpu [ROUNDS]``).

Variant **on** is the service as it is: the free-form number check, the exchange key
and content digest (and the unique exchange-key index), the refused-translation
record (``NewRecord.otherwise``, built only when needed) and the record-bound
sealed subject. Variant **no-xid** is **on** without the exchange tag (idempotency
off: no digests, nothing in the exchange columns); **no-scan** is **on** without the
free-form number scan (item 8). Variant **off** is the same Core
with all of it removed (the translation's build step as before issue 10, no
exchange tag, no free-form scan).
Both run on their own SQLite registry in one process, alternating, so the ratio is
within one run on one loaded machine. Two calls are measured per round:

* ``BatchTranslateSymbols``-like: ``translate_many`` of 1,000 items (distinct
  exchange ids), process CPU time (event loop and writer thread);
* ``TranslateSymbol``-like: 200 sequential ``translate`` calls, wall time.

CPU time rather than wall time for the batch: on a shared machine the wall time of a
durable batch is mostly waiting for the CPU and the disk.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import count
from pathlib import Path

from bench.plan import nth_number
from symbolsvc import exchanges, inputs
from symbolsvc.core import Core, TranslateRequest
from symbolsvc.errors import SymbolsvcError
from symbolsvc.keys import Keyring
from symbolsvc.policy import PolicyHolder
from symbolsvc.records import AccessKind, AccessRecord
from symbolsvc.registry import Built, NewRecord
from symbolsvc.registry.sqlite import SqliteRegistry
from symbolsvc.subjects import LOG_SEAL_AGENCY
from symbolsvc.symbols import Deriver

POLICY = ('[[allow]]\nrequester = "pension-service"\noffice_work = "survivor-pension"\n'
          'info_item = "resident-tax-income"\nproviders = ["city-chiyoda"]\n')
SUBJECTS = 1000
BATCHES = 4  # batches of 1,000 per sample (one sample: their mean)


class OffCore(Core):
    """The translation's build step as before issue 10: one record requiring both
    holdings, sealed without the record's identity, no exchange tag."""

    def _translation(self, d: Deriver, r: TranslateRequest, now: int, provider_version: int,
                     policy: object, tag: object, ext: object,
                     ) -> Callable[[bytes], Built[tuple[str, bytes] | SymbolsvcError]]:
        def build(sealed_ref: bytes) -> Built[tuple[str, bytes] | SymbolsvcError]:
            try:
                sid = self._unseal(sealed_ref, r.requester_agency, r.symbol)
                provider_symbol = d.symbol(r.provider_agency, sid, provider_version)
                pseudonym = d.log_pseudonym(sid)
                leaf = AccessRecord(AccessKind.TRANSLATE, now, r.requester_agency,
                                    r.office_work, r.info_item, r.exchange_id,
                                    (r.provider_agency,), pseudonym).encode()
                record = NewRecord(leaf, pseudonym, d.seal(sid, LOG_SEAL_AGENCY, ""),
                                   ((r.requester_agency, r.symbol),
                                    (r.provider_agency, provider_symbol)))
            except SymbolsvcError as err:
                return Built(None, err)
            return Built(record, (provider_symbol, leaf))

        return build


async def _setup(core: Core) -> list[str]:
    numbers = [nth_number(i) for i in range(SUBJECTS)]
    issued = await core.issue_many("pension-service", numbers)
    await core.issue_many("city-chiyoda", numbers)
    return [i.symbol for i in issued]  # type: ignore[union-attr]


async def measure(rounds: int, directory: Path) -> dict[str, dict[str, list[float]]]:
    policy = directory / "policy.toml"
    policy.write_text(POLICY)
    keyring = Keyring.generate()
    cores: dict[str, Core] = {}
    for name, cls in (("on", Core), ("no-xid", Core), ("no-scan", Core), ("off", OffCore)):
        cores[name] = cls(Deriver(keyring), SqliteRegistry(directory / f"{name}.db"),
                          PolicyHolder(policy))
    symbols = {name: await _setup(core) for name, core in cores.items()}
    real_scan = inputs.looks_like_individual_number
    real_tag = exchanges.tag
    ids = count()
    out: dict[str, dict[str, list[float]]] = {n: {"batch_cpu": [], "unary_wall": []}
                                              for n in cores}
    for rnd in range(rounds):
        order = list(cores.items())  # ABC then CBA
        for name, core in order if rnd % 2 == 0 else order[::-1]:  # ABBA: no order bias
            inputs.looks_like_individual_number = (  # type: ignore[assignment]
                (lambda value: False) if name in ("off", "no-scan") else real_scan)
            exchanges.tag = real_tag if name in ("on", "no-scan") else (  # type: ignore[assignment]
                lambda *args: None)
            batches = [[TranslateRequest("pension-service", s, "city-chiyoda",
                                         "survivor-pension", "resident-tax-income",
                                         f"bench-{next(ids)}") for s in symbols[name]]
                       for _ in range(BATCHES)]
            start = time.process_time()
            for reqs in batches:
                results = await core.translate_many(reqs)
                assert not any(isinstance(r, SymbolsvcError) for r in results)
            out[name]["batch_cpu"].append((time.process_time() - start) / BATCHES)
            start = time.perf_counter()
            for s in symbols[name][:200]:
                await core.translate(TranslateRequest(
                    "pension-service", s, "city-chiyoda", "survivor-pension",
                    "resident-tax-income", f"bench-{next(ids)}"))
            out[name]["unary_wall"].append(time.perf_counter() - start)
    inputs.looks_like_individual_number = real_scan
    exchanges.tag = real_tag
    for core in cores.values():
        await core.registry.close()
    return out


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 11
    with tempfile.TemporaryDirectory() as d:
        out = asyncio.run(measure(rounds, Path(d)))
    med = {n: {k: statistics.median(v) for k, v in m.items()} for n, m in out.items()}
    for n, m in med.items():
        print(f"{n:>7}: batch of 1,000 median CPU {m['batch_cpu'] * 1000:.1f} ms; "
              f"200 unary translations median wall {m['unary_wall'] * 1000:.0f} ms")
    for k in ("batch_cpu", "unary_wall"):
        for n in ("on", "no-xid", "no-scan"):
            per = [a / b for a, b in zip(out[n][k], out["off"][k], strict=True)]
            print(f"{n}/off {k}: ratio of medians {med[n][k] / med['off'][k]:.3f}, "
                  f"median of per-round ratios {statistics.median(per):.3f}")
    print(f"rounds: {rounds}, alternating (ABCD DCBA ...)")


if __name__ == "__main__":
    main()
