"""Symbol-key versions in the core's flows (docs/KEYS.md, "Rotation").

While the keyring accepts only one version (the steady state) none of this
costs anything: the core's single-version paths run unchanged. After
``symbolsvc keys rotate`` and until the older versions are retired:

* issuing (and upgrading) moves a holding to the current version: the current
  row is created and the holding's older rows are marked moved, kept in step;
* releasing ends every row of the holding;
* a translation answers with the provider's symbol at the version the provider
  holds (its newest live row), a resolution finds holders under any version,
  and the portal's watch labels records with the portal's newest live symbol.

The subject id is what ties one agency's rows across versions; it is derived
(number) or unsealed (symbol) here and never stored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from .errors import InvalidArgument, NotFound, SymbolsvcError
from .registry import HoldingsStore, NewHolding, NewRecord
from .registry.keyversions import Holding, Move
from .symbols import Deriver


async def issue_subjects(
    deriver: Deriver, registry: HoldingsStore, agency: str, sids: Sequence[bytes],
    *, revive: bool = True,
    records: Callable[[Sequence[bytes]], list[NewRecord]] | None = None,
) -> list[tuple[str, bool]]:
    """Issue current-version holdings for subject ids; per item (symbol, newly registered).
    With ``revive`` False (upgrades) a holding that is not live is left alone (newly True).
    ``records(sids)`` builds the ISSUE records appended with the new holdings."""
    version = deriver.current_version
    holdings = []
    built = records(sids) if records is not None else [None] * len(sids)
    nonces = os.urandom(12 * len(sids))
    for i, (sid, record) in enumerate(zip(sids, built, strict=True)):
        symbol = deriver.symbol(agency, sid, version)
        holdings.append(NewHolding(agency, symbol, deriver.seal(
            sid, agency, symbol, nonces[12 * i:12 * i + 12]), record))
    if not deriver.older_versions and revive:
        fresh = await registry.issue(holdings)
    else:
        older = deriver.older_versions
        fresh = await registry.issue_moving([
            Move(Holding(h.agency, h.symbol, h.sealed_subject),
                 tuple(deriver.symbol(agency, sid, v) for v in older), revive, h.record)
            for h, sid in zip(holdings, sids, strict=True)
        ])
    return [(h.symbol, new) for h, new in zip(holdings, fresh, strict=True)]


async def release(deriver: Deriver, registry: HoldingsStore, agency: str, symbol: str,
                  sid: bytes, *, record: NewRecord | None = None) -> bool:
    """Release all rows of the holding that ``symbol`` names (``sid``: its subject id),
    appending ``record`` when it was live. Returns whether it was live."""
    return await registry.release_all(agency, deriver.symbols_all_versions(agency, sid),
                                      record=record)


async def newest_live(
    deriver: Deriver, registry: HoldingsStore, agency_sids: Sequence[tuple[str, bytes]]
) -> list[str | None]:
    """Per (agency, subject id): the agency's symbol under the newest version it holds the
    subject at (its current row; moved rows are older), or None when it holds none."""
    versions = list(reversed(deriver.versions))
    keys = [(a, deriver.symbol(a, sid, v)) for a, sid in agency_sids for v in versions]
    live = await registry.lookup_many(keys) if keys else []
    out: list[str | None] = []
    for i in range(len(agency_sids)):
        found = None
        for j in range(len(versions)):
            k = i * len(versions) + j
            if live[k] is not None:
                found = keys[k][1]
                break
        out.append(found)
    return out


async def upgrade(
    deriver: Deriver, registry: HoldingsStore, agency: str, symbols: Sequence[str],
    unseal: Callable[[bytes, str, str], bytes],
) -> list[str | SymbolsvcError]:
    """UpgradeSymbols: per symbol the caller's current-version symbol, or its error."""
    out: list[str | SymbolsvcError] = []
    todo: list[int] = []
    for i, symbol in enumerate(symbols):
        try:
            deriver.version_of(symbol, f"symbols[{i}]")
        except InvalidArgument as err:
            out.append(err)
            continue
        out.append(symbol)
        todo.append(i)
    if not todo:
        return out
    sealed = await registry.lookup_many([(agency, symbols[i]) for i in todo])
    sids: list[bytes] = []
    moving: list[int] = []
    for i, ref in zip(todo, sealed, strict=True):
        if ref is None:
            out[i] = _not_holding(i)
            continue
        try:
            sids.append(unseal(ref, agency, symbols[i]))
        except SymbolsvcError as err:
            out[i] = err
            continue
        moving.append(i)
    if moving:
        issued = await issue_subjects(deriver, registry, agency, sids, revive=False)
        for i, (symbol, gone) in zip(moving, issued, strict=True):
            out[i] = _not_holding(i) if gone else symbol
    return out


def _not_holding(i: int) -> NotFound:
    return NotFound("NOT_HOLDING", "the caller holds no live holding under this symbol",
                    f"symbols[{i}]")
