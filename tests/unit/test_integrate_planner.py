"""The pure integration planner (symbolsvc.log.integrate): no storage, no clock.

What the planner decides once for every backend: the leaf indices, the nodes, when
the stored state is written, when a checkpoint is signed, and which stored states it
refuses before anything is written. The backends' side (applying the plan in one
transaction, under the lease) is tested on both engines in tests/registry.
"""

from __future__ import annotations

import pytest
from memory_tree import MemoryTree

from symbolsvc.log.compact import Frontier
from symbolsvc.log.hashing import EMPTY_ROOT, leaf_hash
from symbolsvc.log.integrate import LogStateError, plan_integration, planner
from symbolsvc.registry import IntegrationInput, LogState


def _sign(size: int, root: bytes) -> str:
    return f"cp {size} {root.hex()}"


def _queued(start: int, n: int, first_id: int = 100) -> list[tuple[int, bytes]]:
    return [(first_id + i, b"leaf-%d" % i) for i in range(start, start + n)]


def _state_after(n: int) -> LogState:
    f = Frontier()
    for i in range(n):
        f.append(leaf_hash(b"leaf-%d" % i))
    return LogState(n, f.to_bytes())


def test_an_empty_log_gets_its_first_checkpoint_and_no_state() -> None:
    plan = plan_integration(IntegrationInput(None, None, []), _sign)
    assert (plan.assign, plan.nodes, plan.state) == ([], [], None)
    assert plan.checkpoint == (0, _sign(0, EMPTY_ROOT)) and plan.tree_size == 0


def test_nothing_queued_and_a_current_checkpoint_writes_nothing() -> None:
    plan = plan_integration(IntegrationInput(_state_after(5), 5, []), _sign)
    assert (plan.assign, plan.nodes, plan.state, plan.checkpoint) == ([], [], None, None)
    assert plan.tree_size == 5


def test_queued_records_get_the_next_indices_nodes_state_and_a_checkpoint() -> None:
    tree = MemoryTree()
    expected_nodes = []
    for i in range(12):
        nodes = tree.append(leaf_hash(b"leaf-%d" % i))
        if i >= 5:
            expected_nodes += nodes
    plan = plan_integration(IntegrationInput(_state_after(5), 5, _queued(5, 7)), _sign)
    assert list(plan.assign) == [(5 + i, 105 + i) for i in range(7)]  # (leaf_index, id)
    assert list(plan.nodes) == expected_nodes
    assert plan.state == _state_after(12) and plan.tree_size == 12
    assert plan.checkpoint == (12, _sign(12, tree.root()))


def test_a_missing_checkpoint_is_signed_even_without_new_leaves() -> None:
    plan = plan_integration(IntegrationInput(_state_after(3), None, []), _sign)
    assert plan.state is None and plan.checkpoint is not None and plan.checkpoint[0] == 3


@pytest.mark.parametrize("state", [
    LogState(4, _state_after(3).frontier),           # size and frontier disagree
    LogState(3, _state_after(3).frontier[:-1]),      # truncated frontier
    LogState(0, b"\x00"),                            # not a frontier at all
])
def test_a_damaged_stored_state_is_refused(state: LogState) -> None:
    with pytest.raises(LogStateError):
        plan_integration(IntegrationInput(state, None, _queued(3, 1)), _sign)


def test_a_checkpoint_larger_than_the_stored_tree_is_refused_before_planning() -> None:
    """State rolled back under a published checkpoint: even if new leaves would make the
    tree larger than that checkpoint again, nothing is planned."""
    with pytest.raises(LogStateError, match="checkpoint of size 5"):
        plan_integration(IntegrationInput(_state_after(3), 5, _queued(3, 10)), _sign)


def test_a_failing_signer_fails_the_plan() -> None:
    def broken(size: int, root: bytes) -> str:
        raise RuntimeError("HSM gone")

    with pytest.raises(RuntimeError, match="HSM gone"):
        planner(broken)(IntegrationInput(None, None, _queued(0, 2)))
