"""The store-neutral decisions, without a database (sweep order and the reaper's decision:
``test_sweep_and_reap.py``): what a spawn under a cancelled parent gets, thread ownership,
metadata merges, and the driver that runs a SQLite transaction in its connection thread."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from runplane.errors import InvalidInput, ThreadNotFound
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


def test_a_child_whose_parent_is_gone_is_not_swept_from_its_root():
    tree = [_run("R"), _run("C", "missing")]
    assert sweep_order(tree, "R", whole_tree=True) == ["R"]


def test_a_child_spawned_under_a_cancel_gets_its_parent_action():
    parent = _run("P", status=RunStatus.INTERRUPTED, cancel_action=CancelAction.ROLLBACK)
    request = spawned_under_cancel(parent)
    assert (request.action, request.requested_by) == (CancelAction.ROLLBACK, "cascade")
    assert request.reason == "parent run P was cancelled"
    assert spawned_under_cancel(_run("Q")).action is CancelAction.INTERRUPT


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
