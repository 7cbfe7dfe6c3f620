"""Contract lines 3, 4, 9, 10: fenced writes, with the races driven through hook points."""

from __future__ import annotations

import asyncio

import pytest

from runplane import Context, Hooks, RunConflict
from runplane.clock import ManualClock
from runplane.errors import RunCancelled
from runplane.metrics import LEASE_LOST, REFUSED_WRITES
from runplane.models import RunStatus

from support import AppFactory, Gate, eventually
from support.processes import run_python


def counter(metric) -> float:
    return metric._value.get()


def three_step_app(make_app: AppFactory, executed: list[str], **kwargs):
    app = make_app(**kwargs)

    @app.workflow("three")
    async def three(ctx: Context, input: dict) -> dict:
        out = {}
        for name in ("one", "two", "three"):
            out[name] = await ctx.step(name, lambda n=name: executed.append(n) or n.upper())
        await ctx.emit("values", out)
        return out

    return app


async def test_cancel_between_step_return_and_write_discards_the_step(make_app: AppFactory):
    gate = Gate()
    executed: list[str] = []
    hooks = Hooks(after_step_fn=lambda run_id, index, name: gate() if name == "two" else _noop())
    app = three_step_app(make_app, executed, hooks=hooks)
    refused = counter(REFUSED_WRITES.labels("step"))
    async with app:
        run = await app.runs.create(None, "three", input={})
        await gate.wait_reached()
        assert executed == ["one", "two"]
        await app.runs.cancel(run.run_id, reason="stop")
        gate.open()
        with pytest.raises(RunCancelled):
            await app.runs.join(run.run_id)
        steps = await app.runs.steps(run.run_id)
        assert [s.name for s in steps] == ["one"]
        final = await app.runs.get(run.run_id)
        assert final.status is RunStatus.INTERRUPTED and final.step_index == 1
        names = [(e.event, (e.data or {}).get("name")) for e in await app.runs.events(run.run_id)]
        assert ("step:complete", "two") not in names
        assert ("step:cancel", "two") in names
        assert names.index(("run:cancel", None)) < names.index(("step:cancel", "two"))
        assert counter(REFUSED_WRITES.labels("step")) == refused + 1


CANCEL_ONE = """
import asyncio, sys
from runplane import Runplane
async def main():
    async with Runplane(sys.argv[1], worker=False) as client:
        print((await client.runs.cancel(sys.argv[2], reason="other process")).outcome)
asyncio.run(main())
"""


async def test_cancel_from_another_process_is_reported_as_cancel_not_lease_loss(
    make_app: AppFactory, database_url: str
):
    gate = Gate()
    executed: list[str] = []
    hooks = Hooks(after_step_fn=lambda run_id, index, name: gate() if name == "two" else _noop())
    # The worker must learn of the cancel only through its refused write.
    app = three_step_app(make_app, executed, hooks=hooks, poll_interval=3600.0)
    lost = counter(LEASE_LOST)
    async with app:
        run = await app.runs.create(None, "three", input={})
        await gate.wait_reached()
        out = await asyncio.to_thread(run_python, CANCEL_ONE, database_url, run.run_id)
        assert out.strip() == "cancelled"
        gate.open()
        await eventually(lambda: _lease_released(app, run.run_id))
        events = await app.runs.events(run.run_id)
        step_cancels = [e for e in events if e.event == "step:cancel"]
        assert [(e.data["name"], e.data["reason"]) for e in step_cancels] == [("two", "cancelled")]
        assert not [e for e in events if e.event == "lease:lost"]
        assert [s.name for s in await app.runs.steps(run.run_id)] == ["one"]
        assert counter(LEASE_LOST) == lost


async def _lease_released(app, run_id: str) -> bool:
    run = await app.runs.get(run_id)
    return run.status is RunStatus.INTERRUPTED and run.lease_owner is None


async def _noop() -> None:
    return None


async def test_cancel_racing_completion_cancel_wins(make_app: AppFactory):
    gate = Gate()
    executed: list[str] = []
    app = three_step_app(make_app, executed, hooks=Hooks(before_finish=gate))
    async with app:
        thread = await app.threads.create()
        run = await app.runs.create(thread.thread_id, "three", input={})
        await gate.wait_reached()
        result = await app.runs.cancel(run.run_id)
        assert result.outcome == "cancelled"
        gate.open()
        with pytest.raises(RunCancelled):
            await app.runs.join(run.run_id)
        events = [e.event for e in await app.runs.events(run.run_id)]
        assert "run:complete" not in events and events.count("run:cancel") == 1
        assert (await app.runs.get(run.run_id)).output is None
        # the values emitted before the cancel stay (interrupt keeps produced state)
        assert (await app.threads.get(thread.thread_id)).values == {
            "one": "ONE", "two": "TWO", "three": "THREE"}


async def test_cancel_racing_completion_completion_wins(make_app: AppFactory):
    executed: list[str] = []
    app = three_step_app(make_app, executed)
    async with app:
        run = await app.runs.create(None, "three", input={})
        assert (await app.runs.join(run.run_id))["three"] == "THREE"
        with pytest.raises(RunConflict) as err:
            await app.runs.cancel(run.run_id)
        assert err.value.status == "success"
        events = [e.event for e in await app.runs.events(run.run_id)]
        assert events[-1] == "run:complete" and "run:cancel" not in events


@pytest.mark.parametrize(
    "point",
    ["after_claim", "after_step:one", "after_step:two", "after_step:three", "before_finish"],
)
async def test_cancel_at_every_gap_gives_one_terminal_status(make_app: AppFactory, point: str):
    """Whatever gap a cancel lands in, the run ends interrupted exactly once and keeps only
    the steps stored before the cancel."""
    gate = Gate()
    hooks = Hooks()
    if point == "after_claim":
        hooks.after_claim = gate
    elif point == "before_finish":
        hooks.before_finish = gate
    else:
        target = point.split(":")[1]
        hooks.after_step_fn = lambda r, i, name: gate() if name == target else _noop()
    executed: list[str] = []
    app = three_step_app(make_app, executed, hooks=hooks)
    async with app:
        run = await app.runs.create(None, "three", input={})
        await gate.wait_reached()
        stored_before = [s.name for s in await app.runs.steps(run.run_id)]
        await app.runs.cancel(run.run_id)
        gate.open()
        with pytest.raises(RunCancelled):
            await app.runs.join(run.run_id)
        assert [s.name for s in await app.runs.steps(run.run_id)] == stored_before
        events = [e.event for e in await app.runs.events(run.run_id)]
        terminal = [e for e in events if e in ("run:complete", "run:fail", "run:cancel",
                                               "run:timeout")]
        assert terminal == ["run:cancel"]
        assert events.count("step:complete") == len(stored_before)
        # nothing is written as completed after the cancel
        assert "step:complete" not in events[events.index("run:cancel"):]


async def test_lease_takeover_fences_the_old_worker_and_resumes_after_last_step(
    make_app: AppFactory,
):
    clock = ManualClock()
    gate = Gate()
    executed: list[str] = []
    hooks = Hooks(after_step_fn=lambda r, i, name: gate() if name == "two" else _noop())
    slow = dict(lease_ttl=100.0, heartbeat_interval=50.0, clock=clock)
    # concurrency=1: the old worker, busy with its stale attempt, cannot claim the run again
    old = three_step_app(make_app, executed, hooks=hooks, concurrency=1, **slow)
    lost = counter(LEASE_LOST)
    async with old:
        run = await old.runs.create(None, "three", input={})
        await gate.wait_reached()
        first = await old.runs.get(run.run_id)
        clock.advance(1000)  # the old worker's lease is long expired
        new = three_step_app(make_app, executed, **slow)
        async with new:
            await new.worker.reap()
            output = await new.runs.join(run.run_id)
            assert output == {"one": "ONE", "two": "TWO", "three": "THREE"}
            gate.open()  # the old worker now tries to store step "two"
            await eventually(lambda: _has_event(new, run.run_id, "lease:lost"))
        final = await old.runs.get(run.run_id)
        assert final.status is RunStatus.SUCCESS
        assert final.lease_generation == first.lease_generation + 2  # reaped, claimed again
        # "one" was completed once and replayed, never re-run; "two" ran in both workers
        # but is stored once, from the new holder.
        assert executed.count("one") == 1 and executed.count("two") == 2
        steps = await old.runs.steps(run.run_id)
        assert [s.name for s in steps] == ["one", "two", "three"]
        events = await old.runs.events(run.run_id)
        assert [e.event for e in events].count("step:complete") == 3
        assert not [e for e in events if e.event == "step:cancel"]
        assert counter(LEASE_LOST) == lost + 1
        statuses = [e.event for e in events if e.event.startswith("run:")]
        assert statuses == ["run:created", "run:start", "run:resume", "run:start", "run:complete"]


async def _has_event(app, run_id: str, name: str) -> bool:
    return any(e.event == name for e in await app.runs.events(run_id))


async def test_heartbeat_refused_after_cancel_stops_the_task(make_app: AppFactory):
    """A worker that misses the cancel notice and the poll still stops at its heartbeat."""
    gate = Gate()
    app = make_app(poll_interval=3600.0, heartbeat_interval=0.05, lease_ttl=5.0)
    stopped = asyncio.Event()

    @app.workflow("waits")
    async def waits(ctx: Context, input: dict) -> None:
        try:
            await gate()
        finally:
            stopped.set()

    client = make_app(worker=False)
    client.workflow("waits")(waits)
    async with app, client:
        run = await app.runs.create(None, "waits", input={})
        await gate.wait_reached()
        await client.runs.cancel(run.run_id)  # another notifier: the worker is not told
        # the watch loop's first tick happens after poll_interval; use the heartbeat path
        await asyncio.wait_for(stopped.wait(), timeout=10)
        await eventually(lambda: _lease_released(app, run.run_id))


CANCEL_AND_RESUME = """
import asyncio, sys
from runplane import Runplane
async def main():
    async with Runplane(sys.argv[1], worker=False) as client:
        await client.runs.cancel(sys.argv[2], reason="stop")
        await client.runs.resume(sys.argv[2])
asyncio.run(main())
"""


async def test_cancel_then_quick_resume_is_still_reported_as_cancel(
    make_app: AppFactory, database_url: str
):
    """The worker learns of the cancel only at its write, after the run was resumed."""
    gate = Gate()
    executed: list[str] = []
    hooks = Hooks(after_step_fn=lambda r, i, name: gate() if name == "two" else _noop())
    app = three_step_app(make_app, executed, hooks=hooks, poll_interval=3600.0)
    lost = counter(LEASE_LOST)
    async with app:
        run = await app.runs.create(None, "three", input={})
        await gate.wait_reached()
        await asyncio.to_thread(run_python, CANCEL_AND_RESUME, database_url, run.run_id)
        gate.open()  # the old attempt's end wakes this worker's claim loop for the resumed run
        assert await app.runs.join(run.run_id) == {"one": "ONE", "two": "TWO", "three": "THREE"}
        events = await app.runs.events(run.run_id)
        assert [(e.data["name"], e.data["reason"]) for e in events if e.event == "step:cancel"] \
            == [("two", "cancelled")]
        assert not [e for e in events if e.event == "lease:lost"]
        assert counter(LEASE_LOST) == lost
        assert executed == ["one", "two", "two", "three"]


async def test_a_worker_does_not_claim_again_a_run_it_is_still_unwinding(
    make_app: AppFactory,
):
    """cancel, then resume while the first attempt's cleanup still runs on this worker:
    the second attempt starts only once the first is over; they never overlap."""
    parked, cleanup = Gate(), Gate()
    app = make_app()
    live = {"tasks": 0, "most": 0}
    starts: list[int] = []

    @app.workflow("slow_cleanup")
    async def slow_cleanup(ctx: Context, input: dict) -> str:
        starts.append(ctx.lease.generation)
        live["tasks"] += 1
        live["most"] = max(live["most"], live["tasks"])
        try:
            if len(starts) == 1:
                await ctx.step("park", parked)
            return "done"
        finally:
            if len(starts) == 1:
                await asyncio.shield(cleanup())
            live["tasks"] -= 1

    async with app:
        run = await app.runs.create(None, "slow_cleanup")
        await parked.wait_reached()
        await app.runs.cancel(run.run_id)
        await cleanup.wait_reached()
        await app.runs.resume(run.run_id)
        claims = app.store.claim_runs
        seen: list[list[str]] = []

        async def watched(*args, **kwargs):
            seen.append(kwargs.get("exclude") or [])
            return await claims(*args, **kwargs)

        app.store.claim_runs = watched
        await eventually(lambda: len(seen) >= 3)  # the worker polled for runs meanwhile
        assert all(run.run_id in exclude for exclude in seen)
        assert await _status(app, run.run_id, RunStatus.PENDING)
        cleanup.open()
        assert await app.runs.join(run.run_id) == "done"
        assert live["most"] == 1 and len(starts) == 2


async def _status(app, run_id: str, status: RunStatus) -> bool:
    return (await app.runs.get(run_id)).status is status
