"""The engine's other rules: lifecycle and event log, failures, timeouts, crash recovery,
bad input, and what a worker claims."""

from __future__ import annotations

import asyncio
import threading

import pytest

from runplane import (
    Context,
    RunFailed,
    StepResultNotSerializable,
    ThreadNotFound,
    UnknownWorkflow,
)
from runplane.clock import ManualClock
from runplane.models import RunStatus, ThreadStatus

from support import AppFactory, Gate, eventually


async def test_lifecycle_events_appear_once_in_order(make_app: AppFactory):
    app = make_app()

    @app.workflow("agent")
    async def agent(ctx: Context, input: dict) -> dict:
        plan = await ctx.step("plan", lambda x: {"plan": x}, input["q"])
        await ctx.emit("values", plan)
        await ctx.emit("custom", {"progress": 0.5})
        answer = await ctx.step("answer", _async_upper, input["q"])
        return {"answer": answer}

    async with app:
        thread = await app.threads.create(metadata={"user": "u1"})
        run = await app.runs.create(thread.thread_id, "agent", input={"q": "hi"},
                                    metadata={"k": "v"})
        assert await app.runs.join(run.run_id) == {"answer": "HI"}
        events = await app.runs.events(run.run_id)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert [e.event for e in events] == [
            "run:created", "run:start", "step:start", "step:complete", "values", "custom",
            "step:start", "step:complete", "run:complete",
        ]
        assert events[3].data == {"name": "plan", "index": 0, "result": {"plan": "hi"}}
        assert events[-1].data == {"output": {"answer": "HI"}}
        assert all(e.created_at is not None for e in events)
        later = await app.runs.events(run.run_id, after_seq=7)
        assert [e.seq for e in later] == [8, 9]
        final = await app.runs.get(run.run_id)
        assert final.status is RunStatus.SUCCESS and final.metadata == {"k": "v"}
        assert final.started_at and final.ended_at and final.lease_owner is None
        t = await app.threads.get(thread.thread_id)
        assert t.values == {"answer": "HI"} and t.status is ThreadStatus.IDLE
        assert t.metadata == {"user": "u1"}


async def _async_upper(text: str) -> str:
    return text.upper()


async def test_failing_step_fails_the_run_with_its_error(make_app: AppFactory):
    app = make_app()

    @app.workflow("fails")
    async def fails(ctx: Context, input: dict) -> None:
        await ctx.step("ok", lambda: 1)
        await ctx.step("bad", _raise_value_error)

    async with app:
        thread = await app.threads.create()
        run = await app.runs.create(thread.thread_id, "fails")
        with pytest.raises(RunFailed) as err:
            await app.runs.join(run.run_id)
        assert err.value.run.error == "ValueError: tool exploded"
        events = await app.runs.events(run.run_id)
        assert [e.event for e in events][-2:] == ["step:fail", "run:fail"]
        assert events[-2].data["name"] == "bad"
        assert (await app.threads.get(thread.thread_id)).status is ThreadStatus.ERROR


def _raise_value_error() -> None:
    raise ValueError("tool exploded")


async def test_a_workflow_can_handle_a_failed_step(make_app: AppFactory):
    app = make_app()

    @app.workflow("recovers")
    async def recovers(ctx: Context, input: dict) -> str:
        try:
            await ctx.step("bad", _raise_value_error)
        except ValueError:
            return await ctx.step("fallback", lambda: "plan B")

    async with app:
        run = await app.runs.create(None, "recovers")
        assert await app.runs.join(run.run_id) == "plan B"
        # a failed step takes no index: it would run again on resume
        assert [(s.index, s.name) for s in await app.runs.steps(run.run_id)] == [(0, "fallback")]


async def test_non_json_step_result_fails_that_step_with_a_clear_message(make_app: AppFactory):
    app = make_app()
    seen: list[BaseException] = []

    @app.workflow("unserialisable")
    async def unserialisable(ctx: Context, input: dict) -> None:
        try:
            await ctx.step("make_set", lambda: {1, 2})
        except StepResultNotSerializable as exc:
            seen.append(exc)
            raise

    async with app:
        run = await app.runs.create(None, "unserialisable")
        with pytest.raises(RunFailed) as err:
            await app.runs.join(run.run_id)
        message = err.value.run.error
        assert "make_set" in message and "not JSON-serialisable" in message
        assert "set" in message
        assert await app.runs.steps(run.run_id) == []
        assert [e.event for e in await app.runs.events(run.run_id)][-2:] == [
            "step:fail", "run:fail"]
        assert len(seen) == 1


async def test_non_json_output_fails_the_run(make_app: AppFactory):
    app = make_app()

    @app.workflow("bad_output")
    async def bad_output(ctx: Context, input: dict) -> object:
        return object()

    async with app:
        run = await app.runs.create(None, "bad_output")
        with pytest.raises(RunFailed) as err:
            await app.runs.join(run.run_id)
        assert "output is not JSON-serialisable" in err.value.run.error


async def test_timeout_stops_the_run_with_status_timeout(make_app: AppFactory):
    app = make_app()
    cleaned = asyncio.Event()

    @app.workflow("slow")
    async def slow(ctx: Context, input: dict) -> None:
        try:
            await ctx.step("forever", asyncio.sleep, 3600)
        finally:
            cleaned.set()

    async with app:
        thread = await app.threads.create()
        run = await app.runs.create(thread.thread_id, "slow", timeout=0.1)
        with pytest.raises(RunFailed) as err:
            await app.runs.join(run.run_id)
        assert err.value.run.status is RunStatus.TIMEOUT
        assert "timeout of 0.1s" in err.value.run.error
        assert cleaned.is_set()
        assert [e.event for e in await app.runs.events(run.run_id)][-1] == "run:timeout"
        assert (await app.threads.get(thread.thread_id)).status is ThreadStatus.ERROR


async def test_expired_lease_is_requeued_then_fails_after_max_attempts(make_app: AppFactory):
    """A run whose worker keeps dying is retried ``max_attempts`` times, then ends error."""
    clock = ManualClock()
    gate = Gate()
    dead = make_app(clock=clock, lease_ttl=10.0, heartbeat_interval=5.0)

    @dead.workflow("hangs")
    async def hangs(ctx: Context, input: dict) -> None:
        await ctx.step("hang", gate)

    async with dead:
        run = await dead.runs.create(None, "hangs", max_attempts=2)
        for attempt in (1, 2):
            await eventually(lambda a=attempt: _running_attempt(dead, run.run_id, a))
            clock.advance(60)  # this worker "died": its lease expires
            await dead.worker.reap()
        final = await dead.runs.get(run.run_id)
        assert final.status is RunStatus.ERROR
        assert "lease expired on attempt 2 of 2" in final.error
        events = [e.event for e in await dead.runs.events(run.run_id)]
        assert [e for e in events if e.startswith("run:")] == [
            "run:created", "run:start", "run:resume", "run:start", "run:fail"]
        gate.open()


async def _running_attempt(app, run_id: str, attempt: int) -> bool:
    """Attempt ``attempt`` parks in its step: its writes are over (a reap skips a row that
    a write holds locked, as it should: the run is alive)."""
    run = await app.runs.get(run_id)
    starts = [e for e in await app.runs.events(run_id) if e.event == "step:start"]
    return run.status is RunStatus.RUNNING and run.attempt == attempt and len(starts) == attempt


async def test_unknown_workflow_is_rejected_before_anything_is_written(make_app: AppFactory):
    app = make_app()
    app.workflow("known")(_noop)
    async with app:
        thread = await app.threads.create()
        with pytest.raises(UnknownWorkflow) as err:
            await app.runs.create(thread.thread_id, "nope", input={})
        assert "nope" in str(err.value) and "known" in str(err.value)
        assert await app.runs.list() == []
        assert isinstance(err.value, ValueError)


async def _noop(ctx: Context, input: object) -> None:
    return None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"multitask_strategy": "shove"},
         "invalid multitask_strategy 'shove'; allowed values: 'reject', 'interrupt', "
         "'rollback', 'enqueue'"),
        ({"input": {"x": {1, 2}}}, "input is not JSON-serialisable"),
        ({"metadata": ["not", "a", "dict"]}, "metadata must be a JSON object"),
        ({"timeout": -1}, "timeout must be a positive number"),
        ({"max_attempts": 0}, "max_attempts must be >= 1"),
        ({"if_not_exists": "maybe"}, "invalid if_not_exists 'maybe'"),
    ],
)
async def test_bad_run_arguments_raise_value_error_and_write_nothing(
    make_app: AppFactory, kwargs: dict, message: str
):
    app = make_app()
    app.workflow("known")(_noop)
    async with app:
        thread = await app.threads.create()
        with pytest.raises(ValueError) as err:
            await app.runs.create(thread.thread_id, "known", **kwargs)
        assert message in str(err.value)
        assert await app.runs.list() == []


async def test_invalid_cancel_action_names_the_allowed_values(make_app: AppFactory):
    app = make_app(worker=False)
    app.workflow("known")(_noop)
    async with app:
        run = await app.runs.create(None, "known")
        with pytest.raises(ValueError) as err:
            await app.runs.cancel(run.run_id, action="explode")
        assert "allowed values: 'interrupt', 'rollback'" in str(err.value)
        assert (await app.runs.get(run.run_id)).status is RunStatus.PENDING


async def test_missing_thread_is_not_found_unless_asked_to_create(make_app: AppFactory):
    app = make_app()
    app.workflow("known")(_noop)
    async with app:
        with pytest.raises(ThreadNotFound):
            await app.runs.create("no-thread", "known")
        assert await app.runs.list() == []
        run = await app.runs.create("new-thread", "known", if_not_exists="create")
        await app.runs.join(run.run_id)
        assert (await app.threads.get("new-thread")).status is ThreadStatus.IDLE


async def test_a_worker_claims_only_workflows_it_registered(make_app: AppFactory):
    client = make_app(worker=False)
    client.workflow("elsewhere")(_noop)
    other = make_app()
    other.workflow("mine")(_noop)
    async with client, other:
        run = await client.runs.create(None, "elsewhere")
        mine = await other.runs.create(None, "mine")
        await other.runs.join(mine.run_id)  # the worker is claiming
        assert (await client.runs.get(run.run_id)).status is RunStatus.PENDING


async def test_graceful_shutdown_hands_running_runs_back(make_app: AppFactory):
    gate = Gate()
    first = make_app()
    done: list[str] = []

    async def two_steps(ctx: Context, input: dict) -> str:
        await ctx.step("a", lambda: done.append("a"))
        await ctx.step("b", gate)
        return "ok"

    first.workflow("two")(two_steps)
    await first.open()
    run = await first.runs.create(None, "two")
    await gate.wait_reached()
    await first.close()  # shutdown_grace=0: the run goes back to pending at once
    reader = make_app(worker=False)
    async with reader:
        after = await reader.runs.get(run.run_id)
        assert after.status is RunStatus.PENDING and after.lease_owner is None
    second = make_app()
    second.workflow("two")(two_steps)
    async with second:
        gate.open()
        assert await second.runs.join(run.run_id) == "ok"
        assert done == ["a"]
        final = await second.runs.get(run.run_id)
        assert final.attempt == 1  # a handed-back attempt is not counted
        events = await second.runs.events(run.run_id)
        resume = next(e for e in events if e.event == "run:resume")
        assert resume.data == {"reason": "worker_shutdown"}
        assert [(e.event, e.data.get("reason")) for e in events if e.event == "step:cancel"] \
            == [("step:cancel", "worker_shutdown")]


async def test_replay_with_different_step_order_fails_clearly(make_app: AppFactory):
    gate = Gate()
    app = make_app()
    flip = {"on": False}

    @app.workflow("fickle")
    async def fickle(ctx: Context, input: dict) -> None:
        await ctx.step("other" if flip["on"] else "first", lambda: 1)
        await ctx.step("park", gate)

    async with app:
        run = await app.runs.create(None, "fickle")
        await gate.wait_reached()
        await app.runs.cancel(run.run_id, wait=True)
        flip["on"] = True
        await app.runs.resume(run.run_id)
        with pytest.raises(RunFailed) as err:
            await app.runs.join(run.run_id)
        assert "step #0 was stored as 'first'" in err.value.run.error
        gate.open()


async def test_resume_only_for_interrupted_runs(make_app: AppFactory):
    from runplane import RunConflict, RunNotFound

    app = make_app()
    app.workflow("known")(_noop)
    async with app:
        run = await app.runs.create(None, "known")
        await app.runs.join(run.run_id)
        with pytest.raises(RunConflict) as err:
            await app.runs.resume(run.run_id)
        assert err.value.status == "success"
        with pytest.raises(RunNotFound):
            await app.runs.resume("missing")


async def test_sync_step_functions_run_off_the_event_loop(make_app: AppFactory):
    app = make_app()
    started, release = threading.Event(), threading.Event()

    def blocking(seconds: float) -> bool:
        started.set()
        return release.wait(seconds)  # only the event loop can set it: deadlock if inline

    @app.workflow("blocking_io")
    async def blocking_io(ctx: Context, input: dict) -> bool:
        return await ctx.step("wait", blocking, 10)

    async with app:
        run = await app.runs.create(None, "blocking_io")
        await eventually(started.is_set)
        release.set()
        assert await app.runs.join(run.run_id) is True


async def test_overlapping_steps_are_refused_clearly(make_app: AppFactory):
    app = make_app()

    @app.workflow("parallel")
    async def parallel(ctx: Context, input: dict) -> list:
        return await asyncio.gather(ctx.step("a", asyncio.sleep, 0.01),
                                    ctx.step("b", asyncio.sleep, 0.01))

    async with app:
        run = await app.runs.create(None, "parallel")
        with pytest.raises(RunFailed) as err:
            await app.runs.join(run.run_id)
        assert "must not overlap" in err.value.run.error


async def test_shutdown_after_an_unnoticed_cancel_logs_one_step_cancel(make_app: AppFactory):
    gate = Gate()
    app = make_app(poll_interval=3600.0)
    client = make_app(worker=False)

    async def parks(ctx: Context, input: dict) -> None:
        await ctx.step("park", gate)

    app.workflow("parks")(parks)
    client.workflow("parks")(parks)
    async with client:
        await app.open()
        run = await app.runs.create(None, "parks")
        await gate.wait_reached()
        await client.runs.cancel(run.run_id)  # the worker is not told
        await app.close()  # hands back what it runs: the fence says it was cancelled
        events = await client.runs.events(run.run_id)
        assert [(e.event, e.data.get("reason")) for e in events][-2:] == [
            ("run:cancel", None), ("step:cancel", "cancelled")]
        final = await client.runs.get(run.run_id)
        assert final.status is RunStatus.INTERRUPTED and final.lease_owner is None


async def test_a_claim_in_flight_at_shutdown_is_handed_back(make_app: AppFactory):
    app = make_app()
    app.workflow("known")(_noop)
    await app.open()
    gate = Gate()
    claim = app.store.claim_runs

    async def claim_then_pause(*args, **kwargs):
        claimed = await claim(*args, **kwargs)  # committed; the worker has not seen it yet
        if claimed:
            await gate()
        return claimed

    app.store.claim_runs = claim_then_pause
    client = make_app(worker=False)
    client.workflow("known")(_noop)
    async with client:
        run = await client.runs.create(None, "known")
        await gate.wait_reached()
        closing = asyncio.create_task(app.close())
        await asyncio.sleep(0.05)  # close() is now waiting for the claim in flight
        assert not closing.done()
        gate.open()
        await asyncio.wait_for(closing, 10)
        final = await client.runs.get(run.run_id)
        assert final.status is RunStatus.PENDING and final.lease_owner is None
        assert [e.event for e in await client.runs.events(run.run_id)] == [
            "run:created", "run:start", "run:resume"]


async def test_waiters_and_calls_fail_instead_of_hanging_when_the_app_closes(
    make_app: AppFactory,
):
    from runplane import StoreClosed

    app = make_app(worker=False)
    app.workflow("known")(_noop)
    await app.open()
    run = await app.runs.create(None, "known")
    joining = asyncio.create_task(app.runs.join(run.run_id))
    await asyncio.sleep(0.05)
    store = app.store
    await app.close()
    with pytest.raises(StoreClosed):
        await asyncio.wait_for(joining, 10)
    with pytest.raises(StoreClosed):
        await store.get_run(run.run_id)


async def test_a_run_shutting_down_keeps_its_lease_until_its_task_stopped(
    make_app: AppFactory,
):
    clock = ManualClock()
    parked, cleanup = Gate(), Gate()
    app = make_app(clock=clock, lease_ttl=100.0, heartbeat_interval=0.02, max_attempts=1)

    @app.workflow("slow_cleanup")
    async def slow_cleanup(ctx: Context, input: dict) -> None:
        try:
            await ctx.step("park", parked)
        finally:
            await asyncio.shield(cleanup())

    reaper = make_app(worker=False, clock=clock)
    async with reaper:
        await app.open()
        run = await app.runs.create(None, "slow_cleanup")
        await parked.wait_reached()
        closing = asyncio.create_task(app.close())
        await cleanup.wait_reached()  # shutting down, cleanup still running
        before = (await reaper.runs.get(run.run_id)).lease_expires_at
        clock.advance(60)
        await eventually(lambda: _renewed_after(reaper, run.run_id, before))
        clock.advance(60)  # past the lease as it was when the shutdown began
        assert await reaper.store.reap_expired(clock.now()) == []
        cleanup.open()
        await asyncio.wait_for(closing, 10)
        final = await reaper.runs.get(run.run_id)
        assert final.status is RunStatus.PENDING and final.attempt == 0
        parked.open()


async def _renewed_after(app, run_id: str, before) -> bool:
    return (await app.runs.get(run_id)).lease_expires_at > before
