"""Contract lines 6 and 8: cancel actions and multitask strategies, atomic with creation."""

from __future__ import annotations

import asyncio

import pytest

from runplane import Context, Runplane, ThreadBusy
from runplane.errors import RunCancelled
from runplane.models import CancelAction, RunStatus

from support import AppFactory, Gate, eventually


def staged_app(make_app: AppFactory, gate: Gate, log: list[str], **kwargs) -> Runplane:
    """``staged`` writes values after each step; with input ``block`` it parks in step two."""
    app = make_app(**kwargs)

    @app.workflow("staged")
    async def staged(ctx: Context, input: dict) -> dict:
        tag = input["tag"]
        log.append(f"start:{tag}")
        try:
            one = await ctx.step("one", lambda: f"{tag}-1")
            await ctx.emit("values", {"last": one, "by": tag})
            if input.get("block"):
                await ctx.step("two", gate)
            two = await ctx.step("two-done", lambda: f"{tag}-2")
            return {"last": two, "by": tag}
        finally:
            log.append(f"end:{tag}")

    return app


async def test_reject_refuses_a_second_run_and_writes_nothing(make_app: AppFactory):
    gate, log = Gate(), []
    app = staged_app(make_app, gate, log)
    async with app:
        thread = await app.threads.create()
        first = await app.runs.create(thread.thread_id, "staged", input={"tag": "a", "block": 1})
        await gate.wait_reached()
        with pytest.raises(ThreadBusy) as err:
            await app.runs.create(thread.thread_id, "staged", input={"tag": "b"},
                                  multitask_strategy="reject")
        assert err.value.active_run_ids == [first.run_id]
        assert [r.run_id for r in await app.runs.list(thread.thread_id)] == [first.run_id]
        assert (await app.runs.get(first.run_id)).status is RunStatus.RUNNING
        gate.open()
        await app.runs.join(first.run_id)


async def test_reject_also_counts_a_pending_run_as_active(make_app: AppFactory):
    client = make_app(worker=False)
    client.workflow("noop")(_noop_workflow)
    async with client:
        thread = await client.threads.create()
        await client.runs.create(thread.thread_id, "noop", input={})
        with pytest.raises(ThreadBusy):
            await client.runs.create(thread.thread_id, "noop", multitask_strategy="reject")


async def _noop_workflow(ctx: Context, input: dict) -> dict:
    return {}


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_interrupt_and_rollback_cancel_the_active_run_and_start_the_new_one(
    make_app: AppFactory, strategy: str
):
    gate, log = Gate(), []
    app = staged_app(make_app, gate, log)
    async with app:
        thread = await app.threads.create()
        await app.runs.join((await app.runs.create(
            thread.thread_id, "staged", input={"tag": "base"})).run_id)
        old = await app.runs.create(thread.thread_id, "staged", input={"tag": "old", "block": 1})
        await gate.wait_reached()
        # the old run already produced state
        assert (await app.threads.get(thread.thread_id)).values == {"last": "old-1", "by": "old"}
        new = await app.runs.create(thread.thread_id, "staged", input={"tag": "new"},
                                    multitask_strategy=strategy)
        cancelled = await app.runs.get(old.run_id)
        assert cancelled.status is RunStatus.INTERRUPTED
        assert cancelled.cancel_action is CancelAction(strategy)
        assert cancelled.cancel_requested_by == "multitask"
        assert new.run_id in cancelled.cancel_reason
        if strategy == "rollback":
            # steps discarded and the thread's values back to the pre-run snapshot, in the
            # same transaction that created the new run
            assert await app.runs.steps(old.run_id) == []
        else:
            assert [s.name for s in await app.runs.steps(old.run_id)] == ["one"]
        assert await app.runs.join(new.run_id) == {"last": "new-2", "by": "new"}
        with pytest.raises(RunCancelled):
            await app.runs.join(old.run_id)
        assert "end:old" in log  # join waited for the old task's cleanup
        assert gate.arrivals == 1
        gate.open()


async def test_rollback_restores_values_from_before_the_run(make_app: AppFactory):
    gate, log = Gate(), []
    app = staged_app(make_app, gate, log)
    async with app:
        thread = await app.threads.create()
        await app.runs.join((await app.runs.create(
            thread.thread_id, "staged", input={"tag": "base"})).run_id)
        before = (await app.threads.get(thread.thread_id)).values
        run = await app.runs.create(thread.thread_id, "staged", input={"tag": "x", "block": 1})
        await gate.wait_reached()
        assert (await app.threads.get(thread.thread_id)).values != before
        result = await app.runs.cancel(run.run_id, action="rollback", wait=True)
        assert result.run.cancel_action is CancelAction.ROLLBACK
        thread_after = await app.threads.get(thread.thread_id)
        assert thread_after.values == before
        assert thread_after.status.value == "interrupted"
        assert await app.runs.steps(run.run_id) == []
        assert (await app.runs.get(run.run_id)).step_index == 0


async def test_interrupt_keeps_steps_and_state_and_resume_continues_after_last_step(
    make_app: AppFactory,
):
    gate, log = Gate(), []
    app = staged_app(make_app, gate, log)
    async with app:
        thread = await app.threads.create()
        run = await app.runs.create(thread.thread_id, "staged", input={"tag": "r", "block": 1})
        await gate.wait_reached()
        await app.runs.cancel(run.run_id, action="interrupt", wait=True)
        assert (await app.threads.get(thread.thread_id)).values == {"last": "r-1", "by": "r"}
        assert [s.name for s in await app.runs.steps(run.run_id)] == ["one"]
        gate.open()
        resumed = await app.runs.resume(run.run_id)
        assert resumed.status is RunStatus.PENDING and resumed.cancel_reason is None
        assert await app.runs.join(run.run_id) == {"last": "r-2", "by": "r"}
        assert [s.name for s in await app.runs.steps(run.run_id)] == ["one", "two", "two-done"]
        # step "one" was not executed again: its stored result was replayed
        assert gate.arrivals == 2  # parked once, then ran again after the resume
        statuses = [e.event for e in await app.runs.events(run.run_id) if e.event[:4] == "run:"]
        assert statuses == ["run:created", "run:start", "run:cancel", "run:resume", "run:start",
                            "run:complete"]


async def test_enqueue_runs_one_at_a_time_in_creation_order(make_app: AppFactory):
    app = make_app(concurrency=8)
    order: list[int] = []
    active = 0
    most = 0

    @app.workflow("queued")
    async def queued(ctx: Context, input: dict) -> int:
        nonlocal active, most
        active += 1
        most = max(most, active)
        order.append(input["i"])
        await ctx.step("s", asyncio.sleep, 0.001)
        active -= 1
        return input["i"]

    async with app:
        thread = await app.threads.create()
        runs = [await app.runs.create(thread.thread_id, "queued", input={"i": i})
                for i in range(10)]
        assert runs[0].multitask_strategy.value == "enqueue"  # the default
        for run in runs:
            await app.runs.join(run.run_id)
        assert order == list(range(10))
        assert most == 1


async def test_threadless_runs_run_concurrently(make_app: AppFactory):
    app = make_app(concurrency=4)
    gate = Gate()

    @app.workflow("parked")
    async def parked(ctx: Context, input: dict) -> None:
        await gate()

    async with app:
        runs = [await app.runs.create(None, "parked") for _ in range(3)]
        await eventually(lambda: gate.arrivals == 3)
        gate.open()
        for run in runs:
            await app.runs.join(run.run_id)


async def test_two_workers_never_run_two_runs_of_one_thread(make_app: AppFactory):
    """Workers with separate connections race for one thread's queue: one runs at a time."""
    active: dict[str, int] = {"now": 0, "most": 0}

    async def tracked(ctx: Context, input: dict) -> None:
        active["now"] += 1
        active["most"] = max(active["most"], active["now"])
        await ctx.step("s", asyncio.sleep, 0.002)
        active["now"] -= 1

    workers = [make_app(concurrency=4) for _ in range(3)]
    for w in workers:
        w.workflow("tracked")(tracked)
    for w in workers:
        await w.open()
    thread = await workers[0].threads.create()
    runs = [await workers[k % 3].runs.create(thread.thread_id, "tracked") for k in range(15)]
    for run in runs:
        await workers[0].runs.join(run.run_id)
    assert active["most"] == 1


@pytest.mark.parametrize(("strategy", "expected"), [
    ("rollback", {"last": "base-2", "by": "base"}),
    ("interrupt", {"last": "old-1", "by": "old"}),
])
async def test_the_multitask_cancel_applies_its_action_to_thread_values(
    make_app: AppFactory, strategy: str, expected: dict
):
    gate, log = Gate(), []
    app = staged_app(make_app, gate, log)
    client = make_app(worker=False)
    client.workflow("unclaimed")(_noop_workflow)  # no worker runs it: values stay visible
    async with app, client:
        thread = await app.threads.create()
        await app.runs.join((await app.runs.create(
            thread.thread_id, "staged", input={"tag": "base"})).run_id)
        old = await app.runs.create(thread.thread_id, "staged", input={"tag": "old", "block": 1})
        await gate.wait_reached()
        await client.runs.create(thread.thread_id, "unclaimed", multitask_strategy=strategy)
        assert (await client.threads.get(thread.thread_id)).values == expected
        assert (await client.runs.get(old.run_id)).status is RunStatus.INTERRUPTED
        gate.open()
