"""Decisions of the store-neutral transactions (``runplane.store.transactions``), as
the functions they are: which runs a cancel sweeps and in what order, and what becomes of
a run whose lease expired."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runplane.lifecycle import EventName
from runplane.models import MultitaskStrategy, Run, RunStatus
from runplane.store.transactions import reap_decision, sweep_order

T0 = datetime(2026, 12, 1, tzinfo=UTC)
NOW = 1_800_000_000.0


def run(run_id: str, parent: str | None = None, root: str = "root",
        status: RunStatus = RunStatus.RUNNING) -> Run:
    return Run(
        run_id=run_id, thread_id=None, assistant_id="wf", status=status, input=None,
        output=None, error=None, metadata={}, multitask_strategy=MultitaskStrategy.ENQUEUE,
        created_at=T0, updated_at=T0, started_at=None, ended_at=None, attempt=1,
        max_attempts=3, timeout=None, deadline_at=None, lease_owner=None, lease_generation=1,
        lease_expires_at=None, step_index=0, cancel_requested_at=None, cancel_reason=None,
        cancel_action=None, cancel_requested_by=None, cancelled_generation=None,
        root_run_id=root, parent_run_id=parent)


#: root -> a (-> a1, a2 -> a2x), b; in creation order.
TREE = [run("root"), run("a", "root"), run("b", "root"), run("a1", "a"), run("a2", "a"),
        run("a2x", "a2")]


def test_a_whole_tree_is_swept_deepest_first_then_in_creation_order() -> None:
    order = ["a2x", "a1", "a2", "a", "b", "root"]
    assert sweep_order(TREE, "root", whole_tree=True) == order
    assert sweep_order(TREE, "a1", whole_tree=True) == order  # any run names its tree


def test_a_run_is_swept_with_its_descendants_only() -> None:
    assert sweep_order(TREE, "a", whole_tree=False) == ["a2x", "a1", "a2", "a"]
    assert sweep_order(TREE, "b", whole_tree=False) == ["b"]


def test_a_finished_run_cancelled_alone_sweeps_nothing_below_it() -> None:
    tree = [run("root"), run("a", "root", status=RunStatus.SUCCESS), run("a1", "a")]
    assert sweep_order(tree, "a", whole_tree=False) == ["a"]
    assert sweep_order(tree, "a", whole_tree=True) == ["a1", "a", "root"]


def test_an_expired_lease_past_the_run_deadline_times_the_run_out() -> None:
    assert reap_decision(1, 3, NOW, NOW) == (
        RunStatus.TIMEOUT, "run timed out while its worker was lost", EventName.RUN_TIMEOUT)
    assert reap_decision(3, 3, NOW - 1, NOW)[0] is RunStatus.TIMEOUT  # before the attempts


@pytest.mark.parametrize(("attempt", "deadline"), [(1, None), (2, NOW + 1)])
def test_an_expired_lease_with_attempts_left_requeues_the_run(
        attempt: int, deadline: float | None) -> None:
    assert reap_decision(attempt, 3, deadline, NOW) == (
        RunStatus.PENDING, None, EventName.RUN_RESUME)


def test_an_expired_lease_on_the_last_attempt_fails_the_run() -> None:
    assert reap_decision(3, 3, None, NOW) == (
        RunStatus.ERROR, "worker lease expired on attempt 3 of 3", EventName.RUN_FAIL)
