"""The per-item primitives of the batch rows, alone: a bound no storage or gRPC work can beat.

    python -m bench.primitives [--items 1000] [--repeat 7]

Not part of CI. For issue 16's rows 3 and 4 (one issued number) and row 5 (one
translation) this times, in a hot loop over ``--items`` items, the product's own
functions that every item must pass through, with no storage, no gRPC and no event
loop: validation and the check digit, the keyed HMACs, the AES-GCM-SIV seals, the
access record and its sealed subject, the queued row's tag and its check before
integration, the leaf hash and the tree append. Best of ``--repeat`` loops, µs per item.

A row's measured time per item can only be larger than its primitives' time plus what
its denominator does per item, so ``floor / (floor + primitives)`` bounds the ratio a
row can reach on this machine, whatever else is made free: the check digit, two
HMACs and two seals per item cost more than the storage floor's whole insert.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.plan import nth_number
from symbolsvc import exchanges
from symbolsvc.core import TranslateRequest
from symbolsvc.inputs import check_exchange, check_ident
from symbolsvc.keys import Keyring
from symbolsvc.log.compact import Frontier
from symbolsvc.log.hashing import leaf_hash
from symbolsvc.log.queue_auth import QueueAuthenticator
from symbolsvc.newrecords import exchange_record, linkage_records
from symbolsvc.numbers import validate_individual_number
from symbolsvc.records import AccessKind
from symbolsvc.registry import NewHolding, NewRecord
from symbolsvc.symbols import Deriver

AGENCY, PROVIDER = "city-chiyoda", "city-minato"
NOW = 1_760_000_000_000_000


def _queued(auth: QueueAuthenticator, first_id: int, recs: Sequence[NewRecord]) -> None:
    """A record's tag when appended, its check and tree append when integrated."""
    frontier = Frontier()
    for i, r in enumerate(recs, first_id):
        tag = auth.mac(i, r)
        x = r.exchange
        row = (i, r.leaf, r.pseudonym, r.sealed_subject, tag,
               *((x.key, x.digest) if x is not None else (None, None)))
        if auth.check(row) is not None:
            raise AssertionError("a tag did not verify")
        frontier.append(leaf_hash(r.leaf))


def issue_items(d: Deriver, auth: QueueAuthenticator, numbers: list[str]) -> None:
    """Row 3 and 4's per-item work: Core.issue_many and rotation.issue_subjects' calls."""
    sids = [d.subject_id(validate_individual_number(n, "individual_numbers[0]"))
            for n in numbers]
    records = linkage_records(d, AccessKind.ISSUE, NOW, AGENCY, sids)
    nonces = os.urandom(12 * len(sids))
    version = d.current_version
    for i, sid in enumerate(sids):
        symbol = d.symbol(AGENCY, sid, version)
        NewHolding(AGENCY, symbol, d.seal(sid, AGENCY, symbol, nonces[12 * i:12 * i + 12]))
    _queued(auth, 1, records)


def translate_items(d: Deriver, auth: QueueAuthenticator, requests: list[tuple[str, bytes, str]]
                    ) -> None:
    """Row 5's per-item work: Core.translate_many's checks and tag, then the write unit's
    build (unseal, the provider's symbol, the record) and the queued row."""
    records = []
    for n, (symbol, sealed, exchange_id) in enumerate(requests):
        r = TranslateRequest(AGENCY, symbol, PROVIDER, "survivor-pension",
                             "resident-tax-income", exchange_id)
        prefix = f"requests[{n}]."
        check_exchange(r, prefix, r.provider_agency)
        d.version_of(r.symbol, prefix + "symbol")
        check_ident(r.provider_agency, prefix + "provider_agency")
        tag = exchanges.tag(d, AccessKind.TRANSLATE, r.requester_agency, r.exchange_id,
                            r.symbol, r.provider_agency, r.office_work, r.info_item)
        sid = d.unseal(sealed, AGENCY, symbol)
        provider_symbol = d.symbol(PROVIDER, sid, d.current_version)
        requester = (AGENCY, symbol)
        records.append(exchange_record(
            d, AccessKind.TRANSLATE, NOW, AGENCY, r.office_work, r.info_item, r.exchange_id,
            (PROVIDER,), sid, (requester, (PROVIDER, provider_symbol)), None, None, tag,
            (requester,), {}))
    _queued(auth, 1, records)


def _best_us(fn: Callable[[], None], items: int, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) / items * 1e6


def measure(items: int = 1000, repeat: int = 7) -> dict[str, float]:
    d = Deriver(Keyring.generate())
    auth = QueueAuthenticator(os.urandom(32))
    numbers = [nth_number(10**9 + i) for i in range(items)]
    requests = []
    for i, number in enumerate(numbers):
        sid = d.subject_id(validate_individual_number(number, "n"))
        symbol = d.symbol(AGENCY, sid)
        requests.append((symbol, d.seal(sid, AGENCY, symbol), f"primitives-{i}"))
    return {"issue_us": round(_best_us(lambda: issue_items(d, auth, numbers), items, repeat), 2),
            "translate_us": round(_best_us(lambda: translate_items(d, auth, requests), items,
                                           repeat), 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.primitives", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    result = measure(args.items, args.repeat)
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
