"""The independent auditor's verifier for the access log (``symbolsvc audit verify``).

An import boundary, not only a comment: this package imports nothing of the
server (no registry, no core, no sequencer, no gRPC servicer). What it needs is
the pure tree code (:mod:`symbolsvc.log.hashing`, :mod:`~symbolsvc.log.compact`,
:mod:`~symbolsvc.log.verification`), the note format
(:mod:`symbolsvc.log.checkpoint`), the leaf decoder (:mod:`symbolsvc.records`)
and, for the gRPC mode, the client library; tests/unit/test_architecture.py
checks it.

It recomputes the RFC 9162 tree from the leaves and checks it against what the
service signed and stored, from either of two sources:

* :func:`verify_database` reads a *copy* of the SQLite database (opened
  read-only, never written) laid out as docs/ACCESS_LOG.md describes:
  ``access_records.leaf_index``, ``tree_nodes``, ``checkpoints``, ``log_state``;
* :func:`verify_remote` asks the AuditService as the auditor (``GetCheckpoint``,
  ``ListEntries`` page by page, ``GetConsistencyProof`` from the checkpoint
  verified last time).

Leaves are streamed; the memory used is the frontier (one hash per set
bit of the tree size), one chunk of leaves and the tree nodes that chunk
completes, whatever the size of the log.

The first problem found, in log order, raises :class:`AuditFailure` naming the
entry (``leaf 17: hash does not match tree node``, ``leaf 5 missing``,
``checkpoint 42: bad signature``, ``rolled back: ...``). Being unable to check at
all (no file, no connection) raises :class:`AuditError` instead.

The *state file* is the auditor's memory between runs: the origin, size, root
hash and signed note of the latest checkpoint verified. A later run must find a
log that extends it; a smaller tree, or different leaves up to the saved size,
is reported as a rollback. It is written (atomically) only after a run passes.
"""

from __future__ import annotations

from .common import AuditReport
from .database import DEFAULT_CHUNK, verify_database
from .errors import AuditError, AuditFailure
from .remote import AuditSource, verify_remote
from .state import TrustedState, load_state, load_vkey, save_state
from .witnesses import WitnessPolicy

__all__ = [
    "DEFAULT_CHUNK",
    "AuditError",
    "AuditFailure",
    "AuditReport",
    "AuditSource",
    "TrustedState",
    "WitnessPolicy",
    "load_state",
    "load_vkey",
    "save_state",
    "verify_database",
    "verify_remote",
]
