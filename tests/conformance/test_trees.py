"""Run trees in the store: a spawn is idempotent and fenced by its parent's lease, and a child
spawned under a cancelled parent is created cancelled."""

from __future__ import annotations

from runplane import (
    RunStatus,
)
from runplane.models import CancelRequest, Lease, MultitaskStrategy, NewRun
from runplane.store import Store

T0 = 1_800_000_000.0


def _child(run_id: str, parent: str) -> NewRun:
    return NewRun(run_id=run_id, thread_id=None, assistant_id="wf", input=None, metadata={},
                  multitask_strategy=MultitaskStrategy.ENQUEUE, max_attempts=3, timeout=None,
                  root_run_id=parent, parent_run_id=parent)


async def _claimed_parent(store: Store) -> Lease:
    await store.create_run(NewRun(
        run_id="p", thread_id=None, assistant_id="wf", input=None, metadata={},
        multitask_strategy=MultitaskStrategy.ENQUEUE, max_attempts=3, timeout=None,
        root_run_id="p"), T0, on_active="enqueue")
    [claimed] = await store.claim_runs("w", ["wf"], 1, 10.0, T0)
    return claimed.lease


async def test_a_spawn_is_idempotent_and_fenced_by_the_parent(store: Store):
    lease = await _claimed_parent(store)
    first = await store.spawn_run(lease, _child("c1", "p"), T0)
    again = await store.spawn_run(lease, _child("c1", "p"), T0 + 1)
    assert first.status is RunStatus.PENDING and again.run_id == "c1"
    assert [r.run_id for r in await store.get_tree("p")] == ["p", "c1"]
    stale = Lease("p", lease.generation - 1)
    assert await store.spawn_run(stale, _child("c2", "p"), T0) is None
    assert await store.get_run("c2") is None


async def test_a_child_spawned_under_a_cancelled_parent_is_created_cancelled(store: Store):
    lease = await _claimed_parent(store)
    await store.cancel_runs("p", CancelRequest(reason="stop"), T0, whole_tree=True)
    child = await store.spawn_run(lease, _child("late", "p"), T0 + 1)
    assert child.status is RunStatus.INTERRUPTED
    assert child.cancel_requested_by == "cascade"
    assert await store.claim_runs("w", ["wf"], 10, 10.0, T0 + 2) == []  # it never starts
    events = [e.event for e in await store.get_events("late")]
    assert events == ["run:created", "run:cancel"]
