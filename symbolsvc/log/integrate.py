"""The integration planner: what one sequencer step writes, computed without I/O.

Modelled on Trillian's ``IntegrateBatch`` (log/sequencer.go), which runs inside a
narrow ``LogTreeTX``: the storage backend takes the lease, reads
(:class:`~symbolsvc.registry.IntegrationInput`: the stored state, the latest
checkpoint's size, the queued records), calls :func:`plan_integration`, and
applies the :class:`~symbolsvc.registry.IntegrationPlan` it returns in the same
transaction. Everything else, and every check, happens here, once for all
backends:

1. the stored frontier must parse and agree with the stored size;
2. no checkpoint may sign more leaves than the stored tree has (the state was
   rolled back or lost): the step fails before anything is written;
3. with a verifier (:mod:`.queue_auth`), a queued row whose tag does not verify is
   not integrated: it goes to the plan's ``quarantine`` (docs/QUEUE_AUTH.md);
4. each other queued record gets the next leaf index, in queue order, and the perfect
   nodes it completes are collected (:meth:`~.compact.Frontier.append`);
5. the new state is written only when records were integrated;
6. a checkpoint is signed when the tree grew, or when none exists yet (the empty
   log's first checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ..registry import IntegrationInput, IntegrationPlan, LogState, PlanFn
from .compact import Frontier
from .hashing import leaf_hash
from .queue_auth import QueueAuthenticator

__all__ = ["LogStateError", "SignFn", "plan_integration", "planner"]

SignFn = Callable[[int, bytes], str]
"""``sign_fn(tree_size, root_hash) -> signed checkpoint note``."""


class LogStateError(RuntimeError):
    """The stored log state is inconsistent: integration stops until an operator looks."""


def plan_integration(inp: IntegrationInput, sign_fn: SignFn,
                     auth: QueueAuthenticator | None = None) -> IntegrationPlan:
    """The plan for one integration step; raises :class:`LogStateError` on damaged state
    (and whatever ``sign_fn`` raises), in which case the backend writes nothing. With
    ``auth``, rows whose tag does not verify are quarantined instead of integrated."""
    frontier = Frontier()
    if inp.state is not None:
        try:
            frontier = Frontier.from_bytes(bytes(inp.state.frontier))
        except ValueError as exc:
            raise LogStateError(f"log_state's frontier does not parse: {exc}") from None
        if frontier.size != inp.state.tree_size:
            raise LogStateError(f"log_state is inconsistent: tree_size {inp.state.tree_size} "
                                f"but a frontier of {frontier.size}")
    latest = inp.latest_checkpoint
    if latest is not None and latest > frontier.size:
        raise LogStateError(f"a checkpoint of size {latest} exists but the stored tree has "
                            f"{frontier.size} leaves")
    assign: list[tuple[int, int]] = []
    nodes: list[tuple[int, int, bytes]] = []
    quarantine: list[tuple[int, str]] = []
    for row in inp.queued:
        record_id, leaf = row[0], row[1]
        reason = auth.check(row) if auth is not None else None
        if reason is None and not isinstance(leaf, bytes | bytearray | memoryview):
            raise LogStateError(f"queued record {record_id}: its leaf is not bytes")
        if reason is not None:
            quarantine.append((record_id, reason))
            continue
        assign.append((frontier.size, record_id))
        nodes.extend(frontier.append(leaf_hash(bytes(leaf))))
    size = frontier.size
    state = LogState(size, frontier.to_bytes()) if assign else None
    checkpoint = None
    if latest is None or latest < size:
        checkpoint = (size, sign_fn(size, frontier.root()))
    return IntegrationPlan(assign, nodes, state, checkpoint, size, quarantine)


def planner(sign_fn: SignFn, auth: QueueAuthenticator | None = None) -> PlanFn:
    """The ``plan`` argument of :meth:`~symbolsvc.registry.LogStore.integrate`; with
    ``auth``, queued rows are authenticated before they are integrated."""
    return partial(plan_integration, sign_fn=sign_fn, auth=auth)
