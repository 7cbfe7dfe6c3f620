"""Store conformance: the guarantees every store gives, through the Store protocol only."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from runplane.errors import RunConflict, RunNotFound, ThreadBusy, ThreadExists, ThreadNotFound
from runplane.models import (
    CancelAction,
    CancelRequest,
    Lease,
    MultitaskStrategy,
    NewRun,
    RunStatus,
    ThreadQuery,
    ThreadStatus,
)
from runplane.store import Store, open_store

from support import cancel_one

T0 = 1_800_000_000.0


def new_run(run_id: str, thread_id: str | None = None, workflow: str = "wf", *,
            max_attempts: int = 3, timeout: float | None = None) -> NewRun:
    return NewRun(run_id=run_id, thread_id=thread_id, assistant_id=workflow, input={"i": run_id},
                  metadata={}, multitask_strategy=MultitaskStrategy.ENQUEUE,
                  max_attempts=max_attempts, timeout=timeout, root_run_id=run_id)


async def claim_one(store: Store, owner: str = "w1", now: float = T0, ttl: float = 10.0):
    claimed = await store.claim_runs(owner, ["wf"], 1, ttl, now)
    assert len(claimed) == 1
    return claimed[0]


async def test_threads_create_get_and_if_exists(store: Store):
    t = await store.create_thread("t1", {"a": 1}, T0, if_exists="raise")
    assert t.thread_id == "t1" and t.metadata == {"a": 1} and t.values is None
    with pytest.raises(ThreadExists):
        await store.create_thread("t1", {}, T0, if_exists="raise")
    again = await store.create_thread("t1", {"b": 2}, T0, if_exists="do_nothing")
    assert again.metadata == {"a": 1}
    assert await store.get_thread("nope") is None
    assert [x.thread_id for x in await store.search_threads(ThreadQuery())] == ["t1"]


async def test_create_run_on_missing_thread_writes_nothing(store: Store):
    with pytest.raises(ThreadNotFound):
        await store.create_run(new_run("r1", "missing"), T0, on_active="enqueue")
    assert await store.get_run("r1") is None
    created = await store.create_run(new_run("r2", "auto"), T0, on_active="enqueue",
                                     create_thread=True)
    assert created.run.status is RunStatus.PENDING
    assert await store.get_thread("auto") is not None


async def test_claims_follow_creation_order_one_run_per_thread(store: Store):
    for t in ("a", "b"):
        await store.create_thread(t, {}, T0, if_exists="raise")
    order = [("r1", "a"), ("r2", "a"), ("r3", None), ("r4", "b"), ("r5", "b")]
    for run_id, thread in order:
        await store.create_run(new_run(run_id, thread), T0, on_active="enqueue")
    claimed = await store.claim_runs("w1", ["wf"], 10, 10.0, T0)
    assert [c.run.run_id for c in claimed] == ["r1", "r3", "r4"]
    assert all(c.run.status is RunStatus.RUNNING and c.run.attempt == 1 for c in claimed)
    assert await store.claim_runs("w2", ["wf"], 10, 10.0, T0) == []
    assert await store.finish_run(claimed[0].lease, RunStatus.SUCCESS, 1, None, T0)
    assert [c.run.run_id for c in await store.claim_runs("w2", ["wf"], 10, 10.0, T0)] == ["r2"]


async def test_a_delayed_run_is_claimed_by_no_worker_before_its_time(store: Store):
    """It keeps its place: a later run of its thread waits behind it; a thread-less one
    (the PostgreSQL batch insert) is delayed alike."""
    await store.create_thread("a", {}, T0, if_exists="raise")
    for run_id, thread in (("r1", "a"), ("r2", None)):
        delayed = dataclasses.replace(new_run(run_id, thread), not_before=T0 + 10)
        created = await store.create_run(delayed, T0, on_active="enqueue")
        assert created.run.not_before is not None
        assert created.run.not_before.timestamp() == T0 + 10
    await store.create_run(new_run("r3", "a"), T0, on_active="enqueue")
    assert await store.claim_runs("w1", ["wf"], 10, 10.0, T0 + 9.9) == []
    claimed = await store.claim_runs("w1", ["wf"], 10, 10.0, T0 + 10)
    assert [c.run.run_id for c in claimed] == ["r1", "r2"]


async def test_claims_skip_other_workflows_but_keep_thread_order(store: Store):
    await store.create_thread("t", {}, T0, if_exists="raise")
    await store.create_run(new_run("first", "t", workflow="other"), T0, on_active="enqueue")
    await store.create_run(new_run("second", "t"), T0, on_active="enqueue")
    # "second" waits behind "first" although this worker cannot run "first"
    assert await store.claim_runs("w1", ["wf"], 10, 10.0, T0) == []


async def test_concurrent_claims_never_give_one_run_or_one_thread_twice(database_url: str):
    stores = [open_store(database_url) for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        await stores[0].create_thread("t", {}, T0, if_exists="raise")
        for i in range(20):
            await stores[0].create_run(new_run(f"r{i:02}", "t" if i % 2 else None), T0,
                                       on_active="enqueue")
        results = await asyncio.gather(
            *(s.claim_runs(f"w{k}", ["wf"], 20, 10.0, T0) for k, s in enumerate(stores))
        )
        ids = [c.run.run_id for batch in results for c in batch]
        assert len(ids) == len(set(ids))
        on_thread = [c for batch in results for c in batch if c.run.thread_id == "t"]
        assert len(on_thread) == 1 and on_thread[0].run.run_id == "r01"
        assert len(ids) == 11  # ten thread-less runs and the thread's oldest run
    finally:
        for s in stores:
            await s.close()


async def test_fenced_writes_are_refused_for_a_stale_generation(store: Store):
    await store.create_thread("t", {}, T0, if_exists="raise")
    await store.create_run(new_run("r", "t"), T0, on_active="enqueue")
    held = await claim_one(store)
    stale = Lease("r", held.lease.generation - 1)
    assert not await store.complete_step(stale, 0, "s", 1, T0)
    assert not await store.append_event("r", "values", {"v": 1}, T0, lease=stale)
    assert not await store.finish_run(stale, RunStatus.SUCCESS, {"v": 1}, None, T0)
    assert await store.renew_leases([stale], 10.0, T0) == ["r"]
    run = await store.get_run("r")
    assert run.status is RunStatus.RUNNING and run.step_index == 0
    assert await store.get_steps("r") == []
    assert (await store.get_thread("t")).values is None
    # a step write for an index already taken is refused too
    assert await store.complete_step(held.lease, 0, "s", 1, T0)
    assert not await store.complete_step(held.lease, 0, "s", 2, T0)
    assert [s.result for s in await store.get_steps("r")] == [1]


async def test_cancel_bumps_the_fence_and_is_idempotent(store: Store):
    await store.create_run(new_run("r"), T0, on_active="enqueue")
    held = await claim_one(store)
    request = CancelRequest(CancelAction.INTERRUPT, "stop", "alice")
    first = await cancel_one(store, "r", request, T0 + 1)
    assert first.outcome == "cancelled"
    assert first.run.lease_generation == held.lease.generation + 1
    assert first.run.cancel_requested_at.timestamp() == T0 + 1
    assert not await store.complete_step(held.lease, 0, "s", 1, T0 + 2)
    assert not await store.finish_run(held.lease, RunStatus.SUCCESS, 1, None, T0 + 2)
    second = await cancel_one(store, "r", CancelRequest(reason="again"), T0 + 3)
    assert second.outcome == "already_interrupted"
    assert second.run.cancel_reason == "stop" and second.run.lease_generation == \
        first.run.lease_generation
    events = [e.event for e in await store.get_events("r")]
    assert events.count("run:cancel") == 1 and "run:complete" not in events
    assert await cancel_one(store, "missing", request, T0) is None


async def test_cancel_of_a_finished_run_is_a_conflict_and_changes_nothing(store: Store):
    await store.create_run(new_run("r"), T0, on_active="enqueue")
    held = await claim_one(store)
    assert await store.finish_run(held.lease, RunStatus.ERROR, None, "boom", T0)
    result = await cancel_one(store, "r", CancelRequest(), T0)
    assert result.outcome == "conflict" and result.run.status is RunStatus.ERROR
    assert (await store.get_run("r")).cancel_requested_at is None


async def test_rollback_restores_the_snapshot_taken_at_claim(store: Store):
    await store.create_thread("t", {}, T0, if_exists="raise")
    await store.create_run(new_run("a", "t"), T0, on_active="enqueue")
    a = await claim_one(store)
    assert await store.finish_run(a.lease, RunStatus.SUCCESS, {"v": "a"}, None, T0)
    await store.create_run(new_run("b", "t"), T0, on_active="enqueue")
    b = await claim_one(store)
    assert await store.complete_step(b.lease, 0, "s", 1, T0)
    assert await store.append_event("b", "values", {"v": "b-partial"}, T0, lease=b.lease)
    assert (await store.get_thread("t")).values == {"v": "b-partial"}
    done = await cancel_one(store, "b", CancelRequest(CancelAction.ROLLBACK), T0)
    assert done.run.step_index == 0 and done.run.cancel_action is CancelAction.ROLLBACK
    assert (await store.get_thread("t")).values == {"v": "a"}
    assert await store.get_steps("b") == []


async def test_rollback_after_resume_restores_the_values_from_before_the_first_start(
    store: Store,
):
    await store.create_thread("t", {}, T0, if_exists="raise")
    await store.create_run(new_run("a", "t"), T0, on_active="enqueue")
    first = await claim_one(store)
    assert await store.append_event("a", "values", {"v": "a-1"}, T0, lease=first.lease)
    await cancel_one(store, "a", CancelRequest(), T0)
    await store.resume_run("a", T0)
    second = await claim_one(store)
    assert await store.append_event("a", "values", {"v": "a-2"}, T0, lease=second.lease)
    await cancel_one(store, "a", CancelRequest(CancelAction.ROLLBACK), T0)
    assert (await store.get_thread("t")).values is None


async def test_rollback_never_overwrites_values_a_newer_run_wrote(store: Store):
    await store.create_thread("t", {}, T0, if_exists="raise")
    await store.create_run(new_run("a", "t"), T0, on_active="enqueue")
    a = await claim_one(store)
    assert await store.append_event("a", "values", {"v": "a"}, T0, lease=a.lease)
    await cancel_one(store, "a", CancelRequest(), T0)
    await store.create_run(new_run("b", "t"), T0, on_active="enqueue")
    b = await claim_one(store)
    assert await store.finish_run(b.lease, RunStatus.SUCCESS, {"v": "b"}, None, T0)
    # "a" resumes on top of b's values; rolling it back restores b's values, not a's start
    await store.resume_run("a", T0)
    a2 = await claim_one(store)
    assert await store.append_event("a", "values", {"v": "a-again"}, T0, lease=a2.lease)
    await cancel_one(store, "a", CancelRequest(CancelAction.ROLLBACK), T0)
    assert (await store.get_thread("t")).values == {"v": "b"}


async def test_rollback_of_a_run_that_wrote_nothing_leaves_values_alone(store: Store):
    await store.create_thread("t", {}, T0, if_exists="raise")
    await store.create_run(new_run("a", "t"), T0, on_active="enqueue")
    a = await claim_one(store)
    assert await store.finish_run(a.lease, RunStatus.SUCCESS, {"v": "a"}, None, T0)
    await store.create_run(new_run("b", "t"), T0, on_active="enqueue")
    await claim_one(store)
    await cancel_one(store, "b", CancelRequest(CancelAction.ROLLBACK), T0)
    assert (await store.get_thread("t")).values == {"v": "a"}


async def test_multitask_rules_are_atomic_with_creation(store: Store):
    await store.create_thread("t", {}, T0, if_exists="raise")
    await store.create_run(new_run("a", "t"), T0, on_active="enqueue")
    with pytest.raises(ThreadBusy):
        await store.create_run(new_run("b", "t"), T0, on_active="reject")
    assert await store.get_run("b") is None
    created = await store.create_run(new_run("c", "t"), T0,
                                     on_active=CancelRequest(CancelAction.INTERRUPT, "new"))
    assert [r.run_id for r in created.cancelled] == ["a"]
    assert (await store.get_run("a")).status is RunStatus.INTERRUPTED
    assert [c.run.run_id for c in await store.claim_runs("w", ["wf"], 5, 10.0, T0)] == ["c"]


async def test_reaper_requeues_expired_leases_and_bumps_the_fence(store: Store):
    await store.create_run(new_run("r", max_attempts=2), T0, on_active="enqueue")
    first = await claim_one(store, ttl=10.0)
    assert await store.reap_expired(T0 + 5) == []
    reaped = await store.reap_expired(T0 + 11)
    assert [(x.run_id, x.status) for x in reaped] == [("r", RunStatus.PENDING)]
    assert not await store.complete_step(first.lease, 0, "s", 1, T0 + 12)
    second = await claim_one(store, owner="w2", now=T0 + 12)
    assert second.run.attempt == 2
    assert second.run.lease_generation > first.lease.generation + 1
    reaped = await store.reap_expired(T0 + 100)
    assert [(x.run_id, x.status) for x in reaped] == [("r", RunStatus.ERROR)]
    run = await store.get_run("r")
    assert run.status is RunStatus.ERROR and "attempt 2 of 2" in run.error


async def test_reaper_times_out_runs_past_their_deadline(store: Store):
    await store.create_run(new_run("r", timeout=5.0), T0, on_active="enqueue")
    held = await claim_one(store, ttl=10.0)
    assert held.run.deadline_at.timestamp() == T0 + 5.0
    reaped = await store.reap_expired(T0 + 11)
    assert [(x.run_id, x.status) for x in reaped] == [("r", RunStatus.TIMEOUT)]


async def test_renewed_lease_is_not_reaped(store: Store):
    await store.create_run(new_run("r"), T0, on_active="enqueue")
    held = await claim_one(store, ttl=10.0)
    assert await store.renew_leases([held.lease], 10.0, T0 + 8) == []
    assert await store.reap_expired(T0 + 12) == []
    assert await store.lost_leases([held.lease]) == []
    await cancel_one(store, "r", CancelRequest(), T0 + 13)
    assert await store.lost_leases([held.lease]) == ["r"]


async def test_release_forgets_the_owner_only_of_the_cancelled_attempt(store: Store):
    await store.create_run(new_run("r"), T0, on_active="enqueue")
    held = await claim_one(store, owner="w1")
    await store.release_lease(held.lease)
    assert (await store.get_run("r")).lease_owner == "w1"  # still running: kept
    await cancel_one(store, "r", CancelRequest(), T0)
    assert (await store.get_run("r")).lease_owner == "w1"  # its task may still be running
    # cancelled, resumed and claimed again (by the same worker id) before the old task
    # stopped: the old attempt's release must not clear the new attempt's lease
    await store.resume_run("r", T0)
    again = await claim_one(store, owner="w1")
    await store.release_lease(held.lease)
    assert (await store.get_run("r")).lease_owner == "w1"
    await cancel_one(store, "r", CancelRequest(), T0)
    await store.release_lease(again.lease)
    assert (await store.get_run("r")).lease_owner is None


async def test_resume_requeues_only_interrupted_runs(store: Store):
    await store.create_run(new_run("r"), T0, on_active="enqueue")
    held = await claim_one(store)
    assert await store.complete_step(held.lease, 0, "s", "kept", T0)
    with pytest.raises(RunConflict):
        await store.resume_run("r", T0)
    await cancel_one(store, "r", CancelRequest(), T0)
    resumed = await store.resume_run("r", T0)
    assert resumed.status is RunStatus.PENDING and resumed.step_index == 1
    again = await claim_one(store)
    assert [s.result for s in again.steps] == ["kept"]
    with pytest.raises(RunNotFound):
        await store.resume_run("missing", T0)


async def test_step_cancel_is_logged_only_for_a_step_not_stored(store: Store):
    await store.create_run(new_run("r"), T0, on_active="enqueue")
    held = await claim_one(store)
    assert await store.complete_step(held.lease, 0, "stored", 1, T0)
    await cancel_one(store, "r", CancelRequest(), T0)
    await store.record_step_cancel(held.lease, 0, "stored", "cancelled", T0)
    await store.record_step_cancel(held.lease, 1, "in_flight", "cancelled", T0)
    cancels = [e.data for e in await store.get_events("r") if e.event == "step:cancel"]
    assert cancels == [{"name": "in_flight", "index": 1, "reason": "cancelled"}]


async def test_step_cancel_is_not_logged_into_a_later_attempt(store: Store):
    await store.create_run(new_run("r"), T0, on_active="enqueue")
    held = await claim_one(store)
    await cancel_one(store, "r", CancelRequest(), T0)
    await store.resume_run("r", T0)
    await claim_one(store)
    await store.record_step_cancel(held.lease, 0, "late", "cancelled", T0)
    assert not [e for e in await store.get_events("r") if e.event == "step:cancel"]


async def test_cancel_remembers_the_generation_it_revoked_across_resume(store: Store):
    await store.create_run(new_run("r"), T0, on_active="enqueue")
    pending_cancel = (await cancel_one(store, "r", CancelRequest(), T0)).run
    # a pending run's cancel closes a generation nobody holds: no worker takes it for its own
    assert pending_cancel.cancelled_generation == pending_cancel.lease_generation - 1
    await store.resume_run("r", T0)
    held = await claim_one(store)
    assert held.lease.generation > pending_cancel.lease_generation
    await cancel_one(store, "r", CancelRequest(), T0)
    resumed = await store.resume_run("r", T0)
    assert resumed.cancelled_generation == held.lease.generation
    assert resumed.cancelled_generation > pending_cancel.cancelled_generation


async def test_requeue_logs_the_step_in_flight_with_the_resume(store: Store):
    await store.create_run(new_run("r"), T0, on_active="enqueue")
    held = await claim_one(store)
    assert await store.requeue_run(held.lease, "worker_shutdown", T0, in_flight=(0, "s"))
    assert not await store.requeue_run(held.lease, "worker_shutdown", T0, in_flight=(0, "s"))
    run = await store.get_run("r")
    assert run.status is RunStatus.PENDING and run.attempt == 0
    tail = [(e.event, e.data) for e in await store.get_events("r")][-2:]
    assert tail == [
        ("step:cancel", {"index": 0, "name": "s", "reason": "worker_shutdown"}),
        ("run:resume", {"reason": "worker_shutdown"}),
    ]


async def test_run_marks_move_with_every_change(store: Store):
    await store.create_run(new_run("r"), T0, on_active="enqueue")
    before = await store.run_marks(["r", "missing"])
    assert set(before) == {"r"}
    held = await claim_one(store)
    after_claim = await store.run_marks(["r"])
    assert after_claim != before
    await cancel_one(store, "r", CancelRequest(), T0)
    after_cancel = await store.run_marks(["r"])
    assert after_cancel != after_claim
    await store.release_lease(held.lease)
    assert await store.run_marks(["r"]) != after_cancel


async def test_renewal_judges_each_lease_by_its_generation(store: Store):
    await store.create_run(new_run("r"), T0, on_active="enqueue")
    held = await claim_one(store)
    stale = Lease("r", held.lease.generation - 1)
    assert await store.renew_leases([held.lease, stale], 10.0, T0) == ["r"]  # the stale one
    assert await store.lost_leases([held.lease, stale]) == ["r"]


async def test_concurrent_writes_of_many_runs_are_each_fenced(store: Store):
    """Writes of many runs at once (one batch on PostgreSQL, one group commit on SQLite):
    each is judged by its own fence, a stale one is refused without failing the others."""
    for i in range(30):
        await store.create_run(new_run(f"r{i:02}"), T0, on_active="enqueue")
    claimed = await store.claim_runs("w1", ["wf"], 30, 10.0, T0)
    assert len(claimed) == 30
    leases = [c.lease for c in claimed]
    await cancel_one(store, "r07", CancelRequest(reason="user"), T0)
    stale = Lease("r11", leases[11].generation - 1)
    writes = [store.complete_step(x, 0, "one", {"n": x.run_id}, T0 + 1) for x in leases]
    writes.append(store.complete_step(stale, 0, "one", "stale", T0 + 1))
    accepted = await asyncio.gather(*writes)
    assert accepted == [x.run_id != "r07" for x in leases] + [False]
    events = [store.append_event(x.run_id, "updates", {"k": 1}, T0 + 2, lease=x) for x in leases]
    assert await asyncio.gather(*events) == [x.run_id != "r07" for x in leases]
    finishes = [store.finish_run(x, RunStatus.SUCCESS, {"n": 1}, None, T0 + 3) for x in leases]
    assert await asyncio.gather(*finishes) == [x.run_id != "r07" for x in leases]
    for x in leases:
        steps = await store.get_steps(x.run_id)
        names = [e.event for e in await store.get_events(x.run_id)]
        if x.run_id == "r07":
            assert steps == [] and names == ["run:created", "run:start", "run:cancel"]
        else:
            assert [(s.index, s.result) for s in steps] == [(0, {"n": x.run_id})]
            assert names == ["run:created", "run:start", "step:complete", "updates",
                             "run:complete"]
            assert (await store.get_run(x.run_id)).status is RunStatus.SUCCESS


async def test_concurrent_events_of_one_run_keep_their_order(store: Store):
    await store.create_run(new_run("r1"), T0, on_active="enqueue")
    lease = (await claim_one(store)).lease
    writes = [store.append_event("r1", "custom", {"k": k}, T0, lease=lease) for k in range(20)]
    assert all(await asyncio.gather(*writes))
    custom = [e for e in await store.get_events("r1") if e.event == "custom"]
    assert [e.data["k"] for e in custom] == list(range(20))
    assert [e.seq for e in custom] == sorted({e.seq for e in custom})


async def test_concurrent_thread_less_creates_keep_their_order(store: Store):
    created = await asyncio.gather(
        *(store.create_run(new_run(f"r{i:02}"), T0, on_active="enqueue") for i in range(25)))
    assert [c.run.run_id for c in created] == [f"r{i:02}" for i in range(25)]
    claimed = await store.claim_runs("w1", ["wf"], 25, 10.0, T0)
    assert [c.run.run_id for c in claimed] == [f"r{i:02}" for i in range(25)]
    for c in claimed:
        assert [e.event for e in await store.get_events(c.run.run_id)] == [
            "run:created", "run:start"]


async def test_run_marks_move_with_each_event(store: Store):
    await store.create_run(new_run("r"), T0, on_active="enqueue")
    lease = (await claim_one(store)).lease
    before = await store.run_marks(["r"])
    assert await store.append_event("r", "custom", {}, T0, lease=lease)
    after = await store.run_marks(["r"])
    assert after["r"][:2] == before["r"][:2] and after["r"] != before["r"]


async def test_thread_search_filters_sorts_and_counts(store: Store):
    await store.create_thread("a", {"user": "ann", "n": 1}, T0, if_exists="raise")
    await store.create_thread("b", {"user": "bob", "tags": ["x"]}, T0 + 1, if_exists="raise")
    await store.create_thread("c", {"user": "ann", "n": 2}, T0 + 2, if_exists="raise")
    await store.create_run(new_run("r", "c"), T0, on_active="enqueue")

    async def ids(**kw):
        return [t.thread_id for t in await store.search_threads(ThreadQuery(**kw))]

    assert await ids() == ["c", "b", "a"]
    assert await ids(descending=False) == ["a", "b", "c"]
    assert await ids(metadata={"user": "ann"}) == ["c", "a"]
    assert await ids(metadata={"user": "ann", "n": 1}) == ["a"]
    assert await ids(metadata={"tags": ["x"]}) == ["b"]
    assert await ids(metadata={"user": "nobody"}) == []
    assert await ids(status=ThreadStatus.BUSY) == ["c"]
    assert await ids(status=ThreadStatus.IDLE, descending=False) == ["a", "b"]
    assert await ids(ids=["a", "c", "zz"]) == ["c", "a"]
    assert await ids(limit=1, offset=1) == ["b"]
    assert await ids(sort_by="thread_id", descending=False) == ["a", "b", "c"]
    assert (await ids(sort_by="status", descending=False))[0] == "c"  # 'busy' < 'idle'
    assert await store.count_threads(ThreadQuery(metadata={"user": "ann"})) == 2
    assert await store.count_threads(ThreadQuery()) == 3


async def test_thread_update_merges_metadata_and_delete_removes_its_runs(store: Store):
    await store.create_thread("t", {"a": 1, "b": 2}, T0, if_exists="raise")
    updated = await store.update_thread("t", {"b": 3, "c": None}, T0 + 5)
    assert updated.metadata == {"a": 1, "b": 3, "c": None}
    assert updated.updated_at.timestamp() == T0 + 5
    assert await store.update_thread("missing", {"x": 1}, T0) is None
    await store.create_run(new_run("r", "t"), T0, on_active="enqueue")
    assert await store.delete_thread("t")
    assert not await store.delete_thread("t")
    assert await store.get_thread("t") is None
    assert await store.get_run("r") is None
    assert await store.get_events("r") == []


async def test_only_a_run_that_is_not_active_can_be_deleted(store: Store):
    await store.create_run(new_run("r"), T0, on_active="enqueue")
    with pytest.raises(RunConflict) as err:
        await store.delete_run("r")
    assert err.value.status == "pending"
    lease = (await claim_one(store)).lease
    assert await store.complete_step(lease, 0, "s", 1, T0)
    with pytest.raises(RunConflict):
        await store.delete_run("r")
    assert await store.finish_run(lease, RunStatus.SUCCESS, 1, None, T0)
    deleted = await store.delete_run("r")
    assert deleted.status is RunStatus.SUCCESS
    assert await store.get_run("r") is None
    assert await store.get_steps("r") == [] and await store.get_events("r") == []
    with pytest.raises(RunNotFound):
        await store.delete_run("r")
