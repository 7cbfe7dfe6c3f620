"""The wire format: what the HTTP layer says in its own words about the service's facts."""

from __future__ import annotations

from datetime import UTC, datetime

from runplane.models import (
    CancelAction,
    CancelOutcome,
    CancelResult,
    MultitaskStrategy,
    Run,
    RunStatus,
)
from runplane.server.wire import cancel_body

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def _interrupted(run_id: str, root_run_id: str) -> Run:
    return Run(
        run_id=run_id, thread_id=None, assistant_id="leaf", status=RunStatus.INTERRUPTED,
        input=None, output=None, error=None, metadata={},
        multitask_strategy=MultitaskStrategy.ENQUEUE, created_at=T0, updated_at=T0,
        started_at=T0, ended_at=T0, attempt=1, max_attempts=3, timeout=None,
        deadline_at=None, lease_owner=None, lease_generation=2, lease_expires_at=None,
        step_index=0, cancel_requested_at=T0, cancel_reason=None,
        cancel_action=CancelAction.INTERRUPT, cancel_requested_by="api",
        cancelled_generation=1, root_run_id=root_run_id, parent_run_id=root_run_id,
    )


def test_a_cancel_that_leaves_its_tree_active_points_at_the_tree_cancel():
    result = CancelResult(CancelOutcome.CANCELLED, _interrupted("child", "root"), scope="run",
                          root_run_id="root", remaining_active_in_tree=2,
                          counts={"cancelled": 1})
    body = cancel_body(result)
    assert body["remaining_active_in_tree"] == 2 and body["root_run_id"] == "root"
    assert body["suggested_endpoint"] == "/runs/root/cancel?scope=tree"
    assert body["warning"] == ("2 other run(s) of this run's tree are still active; cancel "
                               "with scope=tree to stop the whole tree")


def test_a_cancel_that_leaves_nothing_active_has_no_warning():
    result = CancelResult(CancelOutcome.CANCELLED, _interrupted("root", "root"), scope="tree",
                          root_run_id="root", counts={"cancelled": 3})
    body = cancel_body(result)
    assert body["remaining_active_in_tree"] is None
    assert body["suggested_endpoint"] is None and body["warning"] is None
