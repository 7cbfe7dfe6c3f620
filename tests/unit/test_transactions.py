"""The store-neutral decisions, without a database: sweep order, what a spawn under a
cancelled parent gets, the reaper's decision, thread ownership, metadata merges, and the
driver that runs a SQLite transaction in its connection thread."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from runplane.errors import InvalidInput, ThreadNotFound
from runplane.lifecycle import EventName
from runplane.limits import MAX_METADATA_BYTES
from runplane.models import (
    CancelAction,
    MultitaskStrategy,
    NewRun,
    Run,
    RunStatus,
)
from runplane.store.transactions import (
    drive,
    merge_metadata,
    reap_decision,
    spawned_under_cancel,
    sweep_order,
    thread_run,
)

_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _run(run_id: str, parent: str | None = None, root: str = "R",
         status: RunStatus = RunStatus.RUNNING, **changes: Any) -> Run:
    return Run(
        run_id=run_id, thread_id=None, assistant_id="wf", status=status, input=None,
        output=None, error=None, metadata={}, multitask_strategy=MultitaskStrategy.ENQUEUE,
        created_at=_T0, updated_at=_T0, started_at=None, ended_at=None, attempt=1,
        max_attempts=3, timeout=None, deadline_at=None, lease_owner=None, lease_generation=1,
        lease_expires_at=None, step_index=0, cancel_requested_at=None, cancel_reason=None,
        cancel_action=None, cancel_requested_by=None, cancelled_generation=None,
        root_run_id=root, parent_run_id=parent).evolve(**changes)


#: R ─┬─ A ── A1 ── A11
#:    └─ B ── B1          (in creation order R, A, B, A1, B1, A11)
_TREE = [_run("R"), _run("A", "R"), _run("B", "R"), _run("A1", "A"), _run("B1", "B"),
         _run("A11", "A1")]


def test_a_sweep_goes_leaves_first_then_in_creation_order():
    assert sweep_order(_TREE, "R", whole_tree=False) == ["A11", "A1", "B1", "A", "B", "R"]


def test_a_sweep_of_a_run_covers_its_descendants_only():
    assert sweep_order(_TREE, "A", whole_tree=False) == ["A11", "A1", "A"]
    assert sweep_order(_TREE, "B1", whole_tree=False) == ["B1"]


def test_a_whole_tree_sweep_starts_at_the_root_whichever_run_it_names():
    assert sweep_order(_TREE, "B1", whole_tree=True) == sweep_order(_TREE, "R", whole_tree=False)


def test_a_finished_run_cancelled_on_its_own_sweeps_nothing_below_it():
    tree = [_run("R", status=RunStatus.SUCCESS), *_TREE[1:]]
    assert sweep_order(tree, "R", whole_tree=False) == ["R"]
    assert len(sweep_order(tree, "R", whole_tree=True)) == len(_TREE)


def test_a_child_whose_parent_is_gone_is_not_swept_from_its_root():
    tree = [_run("R"), _run("C", "missing")]
    assert sweep_order(tree, "R", whole_tree=True) == ["R"]


def test_a_child_spawned_under_a_cancel_gets_its_parent_action():
    parent = _run("P", status=RunStatus.INTERRUPTED, cancel_action=CancelAction.ROLLBACK)
    request = spawned_under_cancel(parent)
    assert (request.action, request.requested_by) == (CancelAction.ROLLBACK, "cascade")
    assert request.reason == "parent run P was cancelled"
    assert spawned_under_cancel(_run("Q")).action is CancelAction.INTERRUPT


@pytest.mark.parametrize(("attempt", "deadline", "expected"), [
    (1, None, (RunStatus.PENDING, None, EventName.RUN_RESUME)),
    (3, None, (RunStatus.ERROR, "worker lease expired on attempt 3 of 3", EventName.RUN_FAIL)),
    (1, 100.0, (RunStatus.TIMEOUT, "run timed out while its worker was lost",
                EventName.RUN_TIMEOUT)),
    (3, 100.0, (RunStatus.TIMEOUT, "run timed out while its worker was lost",
                EventName.RUN_TIMEOUT)),
    (1, 100.5, (RunStatus.PENDING, None, EventName.RUN_RESUME)),
])
def test_the_reaper_decides_by_deadline_then_attempts(
    attempt: int, deadline: float | None, expected: tuple[Any, ...]
):
    assert reap_decision(attempt, 3, deadline, now=100.0) == expected


def _new(owner: str | None) -> NewRun:
    return NewRun(run_id="r", thread_id="t", assistant_id="wf", input=None, metadata={},
                  multitask_strategy=MultitaskStrategy.ENQUEUE, max_attempts=3, timeout=None,
                  root_run_id="r", owner=owner)


def test_a_run_on_a_thread_is_the_thread_owners():
    assert thread_run(_new("alice"), "bob", own_thread_only=False).owner == "bob"
    assert thread_run(_new("bob"), "bob", own_thread_only=True).owner == "bob"
    with pytest.raises(ThreadNotFound):
        thread_run(_new("alice"), "bob", own_thread_only=True)


def test_metadata_merges_top_level_keys_and_stays_bounded():
    assert merge_metadata('{"a": 1, "b": {"x": 1}}', {"b": {"y": 2}, "c": None}) == {
        "a": 1, "b": {"y": 2}, "c": None}
    assert merge_metadata(None, {"a": 1}) == {"a": 1}
    with pytest.raises(InvalidInput, match="metadata"):
        merge_metadata('{"a": 1}', {"b": "x" * MAX_METADATA_BYTES})


def test_drive_runs_a_transaction_that_never_suspends():
    async def transaction() -> int:
        async def statement() -> int:
            return 41
        return await statement() + 1

    assert drive(transaction()) == 42


def test_drive_refuses_a_transaction_that_suspends():
    async def transaction() -> None:
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="suspended"):
        drive(transaction())
