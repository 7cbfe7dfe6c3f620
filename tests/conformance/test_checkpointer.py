"""The LangGraph checkpointer (runplane.graphs.checkpointer) on every store: LangGraph's own
conformance suite, and the fence of a run's checkpoint writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES

from runplane.clock import ManualClock
from runplane.context import Context, FenceRefused
from runplane.errors import ThreadActive, ThreadNotFound
from runplane.graphs.checkpointer import RunplaneSaver
from runplane.hooks import Hooks
from runplane.models import (
    CancelAction,
    CancelRequest,
    CheckpointWrite,
    ClaimedRun,
    Lease,
    MultitaskStrategy,
    NewRun,
    RunStatus,
    StoredCheckpoint,
)
from runplane.store import Store

from support import cancel_one

T0 = 1_800_000_000.0


async def test_the_saver_passes_langgraphs_conformance_suite(store: Store):
    @checkpointer_test(name="RunplaneSaver")
    async def saver() -> AsyncIterator[RunplaneSaver]:
        yield RunplaneSaver(store)

    report = await validate(saver)
    failed = {name: r.failures for name, r in report.results.items() if r.passed is not True}
    assert not failed
    detected = {name for name, r in report.results.items() if r.detected}
    assert detected == {c.value for c in ALL_CAPABILITIES}  # the optional ones too


# --------------------------------------------------------------------------- #
# the fence                                                                    #
# --------------------------------------------------------------------------- #


async def claimed_run(store: Store, run_id: str = "r1", owner: str = "w1",
                      now: float = T0) -> ClaimedRun:
    new = NewRun(run_id=run_id, thread_id="t1", assistant_id="graph", input=None, metadata={},
                 multitask_strategy=MultitaskStrategy.ENQUEUE, max_attempts=3, timeout=None,
                 root_run_id=run_id)
    await store.create_run(new, now, on_active="enqueue", create_thread=True)
    [claimed] = await store.claim_runs(owner, ["graph"], 1, 10.0, now)
    return claimed


def config(checkpoint_id: str | None = None) -> Any:
    configurable = {"thread_id": "t1", "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


async def put(saver: RunplaneSaver, parent: str | None = None) -> str:
    checkpoint = empty_checkpoint()
    checkpoint["id"] = str(uuid6(clock_seq=-1))
    stored = await saver.aput(config(parent), checkpoint, {"source": "loop", "step": 0}, {})
    return stored["configurable"]["checkpoint_id"]


async def stored_ids(store: Store) -> list[str]:
    return [c.checkpoint_id for c in await store.list_checkpoints(thread_id="t1",
                                                                   checkpoint_ns="")]


async def lose_to_a_cancel(store: Store, lease: Lease) -> None:
    await cancel_one(store, lease.run_id, CancelRequest(), T0 + 1)


async def lose_to_a_takeover(store: Store, lease: Lease) -> None:
    """The lease expires, the reaper hands the run back, another worker claims it."""
    assert [r.run_id for r in await store.reap_expired(T0 + 11)] == [lease.run_id]
    [again] = await store.claim_runs("w2", ["graph"], 1, 10.0, T0 + 11)
    assert again.lease.generation > lease.generation


LOSSES = {"cancelled": lose_to_a_cancel, "lease_lost": lose_to_a_takeover}


@pytest.mark.parametrize("loss", sorted(LOSSES))
async def test_a_run_s_checkpoint_writes_are_refused_once_its_lease_is_lost(
    store: Store, loss: str
):
    claimed = await claimed_run(store)
    saver = RunplaneSaver(store, lease=claimed.lease)
    first = await put(saver)
    await saver.aput_writes(config(first), [("a", 1)], "task-1")
    assert await stored_ids(store) == [first]

    await LOSSES[loss](store, claimed.lease)
    with pytest.raises(FenceRefused):
        await put(saver, first)
    with pytest.raises(FenceRefused):
        await saver.aput_writes(config(first), [("b", 2)], "task-2")
    assert await stored_ids(store) == [first]  # nothing of the refused writes
    tup = await saver.aget_tuple(config(first))
    assert tup is not None and tup.pending_writes == [("task-1", "a", 1)]


async def test_writes_of_many_runs_at_once_are_each_fenced_by_their_own_run(store: Store):
    """Runs writing at the same moment (on PostgreSQL: one group commit) are each judged by
    their own fence: a cancelled, taken over or finished run's checkpoint and writes are
    refused, its neighbours' kept."""
    leases = []
    for k in range(5):
        new = NewRun(run_id=f"r{k}", thread_id=f"t{k}", assistant_id="graph", input=None,
                     metadata={}, multitask_strategy=MultitaskStrategy.ENQUEUE,
                     max_attempts=3, timeout=None, root_run_id=f"r{k}")
        await store.create_run(new, T0, on_active="enqueue", create_thread=True)
        [claimed] = await store.claim_runs("w1", ["graph"], 1, 10.0, T0)
        leases.append(claimed.lease)
    await lose_to_a_cancel(store, leases[1])
    await lose_to_a_takeover_of(store, leases[2])
    assert await store.finish_run(leases[4], RunStatus.SUCCESS, None, None, T0 + 1)

    def row(k: int) -> StoredCheckpoint:
        return StoredCheckpoint(thread_id=f"t{k}", checkpoint_ns="", checkpoint_id=f"c{k}",
                                parent_checkpoint_id=None, run_id=f"r{k}", type="json",
                                checkpoint=b"{}", metadata="{}")

    kept = await asyncio.gather(*(store.put_checkpoint(row(k), T0 + 2, lease=lease)
                                  for k, lease in enumerate(leases)))
    assert kept == [True, False, False, True, False]
    kept = await asyncio.gather(*(store.put_checkpoint_writes(
        f"t{k}", "", f"c{k}", [CheckpointWrite("task", 0, "ch", "json", b"1")], T0 + 2,
        run_id=f"r{k}", lease=lease) for k, lease in enumerate(leases)))
    assert kept == [True, False, False, True, False]
    stored = {c.thread_id: len(c.writes)
              for k in range(5)
              for c in await store.list_checkpoints(thread_id=f"t{k}", checkpoint_ns="")}
    assert stored == {"t0": 1, "t3": 1}
    [c3] = await store.list_checkpoints(thread_id="t3", checkpoint_ns="")
    assert [(w.task_id, w.channel, w.value) for w in c3.writes] == [("task", "ch", b"1")]


async def lose_to_a_takeover_of(store: Store, lease: Lease) -> None:
    """``lease``'s run is handed back and claimed again (the others keep theirs)."""
    assert await store.requeue_run(lease, "shutdown", T0 + 1)
    [again] = await store.claim_runs("w2", ["graph"], 1, 10.0, T0 + 1)
    assert again.lease.run_id == lease.run_id
    assert again.lease.generation > lease.generation


async def test_the_current_lease_writes_after_a_takeover(store: Store):
    claimed = await claimed_run(store)
    await lose_to_a_takeover(store, claimed.lease)
    run = await store.get_run("r1")
    assert run is not None
    saver = RunplaneSaver(store, lease=Lease("r1", run.lease_generation))
    stored = await put(saver)
    await saver.aput_writes(config(stored), [("a", 1)], "task-1")
    assert await stored_ids(store) == [stored]
    [checkpoint] = await store.list_checkpoints(thread_id="t1", checkpoint_ns="")
    assert checkpoint.run_id == "r1" and len(checkpoint.writes) == 1


@pytest.mark.parametrize("loss", sorted(LOSSES))
async def test_a_refused_background_write_stops_the_run_s_task(store: Store, loss: str):
    """LangGraph does not await ``aput_writes`` until the graph ends: the refusal itself
    cancels the run's task and says why, as the worker would on a cancel."""
    claimed = await claimed_run(store)
    ctx = Context(claimed, store=store, clock=ManualClock(T0), hooks=Hooks())
    ctx.task = asyncio.create_task(asyncio.Event().wait())  # the graph, busy in a node
    saver = RunplaneSaver.for_run(store, ctx)
    first = await put(saver)

    await LOSSES[loss](store, claimed.lease)
    background = asyncio.create_task(saver.aput_writes(config(first), [("a", 1)], "task-1"))
    with pytest.raises(FenceRefused):
        await background
    with pytest.raises(asyncio.CancelledError):
        await ctx.task
    assert ctx.stop_reason == loss
    tup = await saver.aget_tuple(config(first))
    assert tup is not None and tup.pending_writes == []


async def test_a_checkpoint_write_wakes_no_stream(store: Store):
    """It logs no event: the run's streams have nothing new to read."""
    logged: list[str] = []
    ctx = Context(await claimed_run(store), store=store, clock=ManualClock(T0), hooks=Hooks(),
                  logged=logged.append)
    saver = RunplaneSaver.for_run(store, ctx)
    await saver.aput_writes(config(await put(saver)), [("a", 1)], "task-1")
    assert logged == []


async def test_a_rollback_deletes_the_run_s_checkpoints_and_writes(store: Store):
    claimed = await claimed_run(store)
    earlier = await put(RunplaneSaver(store))  # the thread's head before the run
    saver = RunplaneSaver(store, lease=claimed.lease)
    await saver.aput_writes(config(earlier), [("a", 1)], "task-1")
    mine = await put(saver, earlier)
    await saver.aput_writes(config(mine), [("b", 2)], "task-2")
    rollback = CancelRequest(action=CancelAction.ROLLBACK)
    await cancel_one(store, claimed.run.run_id, rollback, T0 + 1)
    assert await stored_ids(store) == [earlier]
    head = await RunplaneSaver(store).aget_tuple(config())
    assert head is not None and head.pending_writes == []


async def test_deleting_a_thread_deletes_its_checkpoints(store: Store):
    saver = RunplaneSaver(store)
    await store.create_thread("t1", {}, T0, if_exists="raise")
    stored = await put(saver)
    await saver.aput_writes(config(stored), [("a", 1)], "task-1")
    assert await store.delete_thread("t1")
    assert await saver.aget_tuple(config()) is None
    assert await stored_ids(store) == []


async def test_the_sync_methods_say_the_saver_is_async(store: Store):
    with pytest.raises(NotImplementedError, match="async only; use aget_tuple"):
        RunplaneSaver(store).get_tuple(config())


def _edit(checkpoint_id: str) -> StoredCheckpoint:
    return StoredCheckpoint(thread_id="t1", checkpoint_ns="", checkpoint_id=checkpoint_id,
                            parent_checkpoint_id=None, run_id=None, type="json",
                            checkpoint=b"{}", metadata='{"source": "update"}',
                            writes=(CheckpointWrite("task", 0, "a", "json", b"1"),))


async def test_a_state_edit_is_written_whole_only_while_no_run_is_active(store: Store):
    await store.create_thread("t1", {}, T0, if_exists="raise")
    await store.put_thread_state("t1", [_edit("c1")], {}, {"x": 1}, {"task": []}, T0)
    thread = await store.get_thread("t1")
    assert thread is not None and thread.values == {"x": 1} and thread.interrupts == {"task": []}
    assert await stored_ids(store) == ["c1"]

    claimed = await claimed_run(store)  # a run on the thread, running
    with pytest.raises(ThreadActive) as refused:
        await store.put_thread_state("t1", [_edit("c2")], {}, {"x": 2}, None, T0 + 1)
    assert refused.value.active_run_ids == [claimed.run.run_id]
    thread = await store.get_thread("t1")
    assert thread is not None and thread.values == {"x": 1} and thread.interrupts == {"task": []}
    assert await stored_ids(store) == ["c1"]
    with pytest.raises(ThreadNotFound):
        await store.put_thread_state("nope", [], {}, {}, None, T0)
