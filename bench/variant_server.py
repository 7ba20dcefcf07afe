"""symbolsvc with one cost taken out, to measure a ceiling (issue 16). Never a configuration.

    python -m bench.variant_server {nosync,inline} serve --config DIR/config.toml --listen ...

The issue asks, where a target proves out of reach on two cores, for "the measured
ceiling (the same server with the component removed)". These are those servers,
made by patching the shipped code in this process only:

* ``nosync``: SQLite commits without fsync (``synchronous = OFF``). What a faster
  disk could give at most. An acknowledged write is not durable: measurement only.
* ``inline``: ``nosync``, and every registry write runs at once on the event loop's
  thread, in a transaction of its own, instead of being handed to the writer thread
  and grouped: the hand-off (two thread wake-ups and the GIL changing hands per group)
  and the fsync are gone; the SQL and everything else stay. What any change to how
  writes reach SQLite could give at most.

* ``norecords``: ``inline``, and issuance appends no ISSUE record (nothing for the
  sequencer to integrate either). What the batch rows could reach without the access
  log's per-item cost: a measurement of that feature's share, never an option.

Everything else (TLS, the interceptors, validation, HMACs, sealing, records, the
sequencer) is the shipped code.

``python -m bench.variant_server {shipped,nosync,inline} translate-row DIR ROUNDS``
prints, as JSON, row 5's µs per item (:func:`bench.targets._translate_us_per_item`)
measured in this process with the variant's patch (``shipped``: none).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from symbolsvc import cli
from symbolsvc.registry import groupcommit
from symbolsvc.registry import sqlite as sqlite_registry


def _nosync() -> None:
    shipped = sqlite_registry._open

    def _open(path: Path, *, readonly: bool) -> sqlite3.Connection:
        conn = shipped(path, readonly=readonly)
        conn.execute("PRAGMA synchronous = OFF")
        return conn

    sqlite_registry._open = _open


def _inline() -> None:
    _nosync()
    committer = groupcommit.GroupCommitter
    connections: dict[int, Any] = {}

    def run_now(self: Any, fn: Callable[..., Any], item: Any) -> asyncio.Future[Any]:
        conn = connections.get(id(self))
        if conn is None:
            conn = connections[id(self)] = self._connect()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            (result,) = committer._transaction(conn, [(fn, fut, None, item)])
        except Exception as exc:  # noqa: BLE001 - delivered to the caller, as the writer does
            fut.set_exception(exc)
        else:
            fut.set_result(result)
        return fut

    committer.submit = lambda self, fn: run_now(self, fn, groupcommit._SOLO)  # type: ignore[method-assign]
    committer.submit_merged = run_now  # type: ignore[method-assign]


def _norecords() -> None:
    _inline()
    from symbolsvc import core

    core.linkage_records = lambda _d, _k, _n, _a, sids: [None] * len(sids)  # type: ignore[assignment,misc]


PATCHES: dict[str, Callable[[], None]] = {
    "shipped": lambda: None, "nosync": _nosync, "inline": _inline, "norecords": _norecords}


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in PATCHES or argv[1] not in ("serve", "translate-row"):
        raise SystemExit(f"usage: python -m bench.variant_server {{{','.join(PATCHES)}}} "
                         "serve ... | translate-row DIR ROUNDS")
    PATCHES[argv[0]]()
    if argv[1] == "translate-row":
        from bench.targets import _translate_us_per_item

        print(json.dumps(asyncio.run(_translate_us_per_item(Path(argv[2]), int(argv[3])))))
        return 0
    return cli.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
