"""Cancellation contract, lines 1, 2, 3, 5, 10: idempotent, conflicts only for real,
one winner, effective, durable intent."""

from __future__ import annotations

import asyncio

import pytest

from runplane import Context, RunConflict, RunNotFound, Runplane
from runplane.errors import RunCancelled, RunFailed
from runplane.models import RunStatus

from support import AppFactory, Gate, eventually
from support.processes import run_python


def blocking_app(make_app: AppFactory, gate: Gate, **kwargs) -> tuple[Runplane, dict]:
    """An app whose ``blocker`` workflow completes step ``first`` then parks inside ``second``."""
    app = make_app(**kwargs)
    seen = {"finally": 0, "cancelled_in_finally": None, "second_returned": False}

    @app.workflow("blocker")
    async def blocker(ctx: Context, input: dict) -> dict:
        try:
            await ctx.step("first", lambda: 1)
            await ctx.step("second", gate)
            seen["second_returned"] = True
            await ctx.step("third", lambda: 3)
            return {"done": True}
        finally:
            seen["finally"] += 1
            seen["cancelled_in_finally"] = ctx.cancelled

    return app, seen


async def start_blocked(app: Runplane, gate: Gate) -> str:
    run = await app.runs.create(None, "blocker", input={})
    await gate.wait_reached()
    return run.run_id


async def cancel_events(app: Runplane, run_id: str) -> list:
    return [e for e in await app.runs.events(run_id) if e.event == "run:cancel"]


async def test_cancel_running_run_interrupts_it_and_runs_cleanup(make_app: AppFactory):
    gate = Gate()
    app, seen = blocking_app(make_app, gate)
    async with app:
        run_id = await start_blocked(app, gate)
        result = await app.runs.cancel(run_id, reason="user stop", wait=True)
        assert result.outcome == "cancelled"
        assert result.status is RunStatus.INTERRUPTED
        assert result.stopped
        # wait=True answers only once the task stopped and its finally ran
        assert seen["finally"] == 1 and seen["cancelled_in_finally"] is True
        assert not seen["second_returned"]
        run = await app.runs.get(run_id)
        assert run.status is RunStatus.INTERRUPTED and run.lease_owner is None
        assert run.cancel_reason == "user stop" and run.cancel_requested_at is not None
        with pytest.raises(RunCancelled):
            await app.runs.join(run_id)


async def test_second_cancel_is_idempotent_and_keeps_first_intent(make_app: AppFactory):
    gate = Gate()
    app, _ = blocking_app(make_app, gate)
    async with app:
        run_id = await start_blocked(app, gate)
        first = await app.runs.cancel(run_id, reason="first", requested_by="alice")
        second = await app.runs.cancel(run_id, reason="second", requested_by="bob", wait=True)
        assert first.outcome == "cancelled"
        assert second.outcome == "already_interrupted"
        assert second.status is RunStatus.INTERRUPTED
        assert second.run.cancel_reason == "first"
        assert second.run.cancel_requested_by == "alice"
        assert second.run.cancel_requested_at == first.run.cancel_requested_at
        events = await cancel_events(app, run_id)
        assert len(events) == 1
        assert events[0].data["reason"] == "first"


async def test_cancel_of_pending_run_means_it_never_starts(make_app: AppFactory):
    calls = []
    client = make_app(worker=False)

    @client.workflow("never")
    async def never(ctx: Context, input: dict) -> None:
        calls.append(ctx.run_id)

    async with client:
        run = await client.runs.create(None, "never", input={})
        result = await client.runs.cancel(run.run_id, wait=True, reason="changed my mind")
        assert result.outcome == "cancelled" and result.stopped
        worker = make_app()
        worker.workflow("never")(never)
        async with worker:
            other = await worker.runs.create(None, "never", input={})
            await worker.runs.join(other.run_id)  # the worker is up and claiming
        assert calls == [other.run_id]
        names = [e.event for e in await client.runs.events(run.run_id)]
        assert names == ["run:created", "run:cancel"]


@pytest.mark.parametrize("final", ["success", "error", "timeout"])
async def test_cancel_of_finished_run_is_a_conflict_naming_its_status(
    make_app: AppFactory, final: str
):
    app = make_app()

    @app.workflow("ends")
    async def ends(ctx: Context, input: dict) -> dict:
        if input["final"] == "error":
            raise RuntimeError("boom")
        if input["final"] == "timeout":
            await asyncio.sleep(3600)
        return {"ok": True}

    async with app:
        timeout = 0.05 if final == "timeout" else None
        run = await app.runs.create(None, "ends", input={"final": final}, timeout=timeout)
        if final == "success":
            await app.runs.join(run.run_id)
        else:
            with pytest.raises(RunFailed):
                await app.runs.join(run.run_id)
        with pytest.raises(RunConflict) as err:
            await app.runs.cancel(run.run_id)
        assert err.value.status == final
        after = await app.runs.get(run.run_id)
        assert after.status == final and after.cancel_requested_at is None
        assert await cancel_events(app, run.run_id) == []


async def test_cancel_of_unknown_run_is_not_found(make_app: AppFactory):
    async with make_app() as app:
        with pytest.raises(RunNotFound):
            await app.runs.cancel("no-such-run")


@pytest.mark.parametrize("n", [2, 100])
async def test_concurrent_cancels_have_exactly_one_winner(make_app: AppFactory, n: int):
    gate = Gate()
    app, seen = blocking_app(make_app, gate)
    async with app:
        run_id = await start_blocked(app, gate)
        results = await asyncio.gather(
            *(app.runs.cancel(run_id, reason=f"c{i}", wait=i % 2 == 0) for i in range(n))
        )
        outcomes = [r.outcome for r in results]
        assert outcomes.count("cancelled") == 1
        assert outcomes.count("already_interrupted") == n - 1
        assert all(r.status is RunStatus.INTERRUPTED for r in results)
        assert len(await cancel_events(app, run_id)) == 1
        winner = next(r for r in results if r.outcome == "cancelled")
        assert {r.run.cancel_reason for r in results} == {winner.run.cancel_reason}
        assert seen["finally"] == 1


async def test_concurrent_cancels_from_separate_connections_have_one_winner(
    make_app: AppFactory,
):
    """Each client has its own connection thread, so the database itself arbitrates."""
    gate = Gate()
    app, _ = blocking_app(make_app, gate)
    clients = [make_app(worker=False) for _ in range(4)]
    async with app:
        for client in clients:
            await client.open()
        run_id = await start_blocked(app, gate)
        results = await asyncio.gather(
            *(c.runs.cancel(run_id, reason=f"client{k}") for k, c in enumerate(clients)
              for _ in range(25))
        )
        assert [r.outcome for r in results].count("cancelled") == 1
        assert len(await cancel_events(app, run_id)) == 1


CANCEL_FROM_PROCESS = """
import asyncio, sys
from runplane import Runplane
async def main():
    async with Runplane(sys.argv[1], worker=False) as client:
        results = await asyncio.gather(*(client.runs.cancel(sys.argv[2], reason="proc")
                                         for _ in range(int(sys.argv[3]))))
        print(",".join(r.outcome for r in results))
asyncio.run(main())
"""


async def test_concurrent_cancels_from_other_processes_have_one_winner(
    make_app: AppFactory, database_url: str
):
    gate = Gate()
    # no heartbeat in the test's time: only the poll can tell the worker of the cancel
    app, seen = blocking_app(make_app, gate, heartbeat_interval=3600.0, lease_ttl=7200.0)
    async with app:
        run_id = await start_blocked(app, gate)
        outputs = await asyncio.gather(*(
            asyncio.to_thread(run_python, CANCEL_FROM_PROCESS, database_url, run_id, "10")
            for _ in range(3)
        ))
        outcomes = [o for out in outputs for o in out.strip().split(",")]
        assert len(outcomes) == 30
        assert outcomes.count("cancelled") == 1
        assert outcomes.count("already_interrupted") == 29
        assert len(await cancel_events(app, run_id)) == 1
        # the cancel was written by another process: this worker notices it by polling
        await eventually(lambda: seen["finally"] == 1)
        assert seen["cancelled_in_finally"] is True
        assert not seen["second_returned"]


async def test_cancel_stops_a_workflow_awaiting_outside_any_step(make_app: AppFactory):
    app = make_app()
    parked = asyncio.Event()
    cleaned = []

    @app.workflow("sleeper")
    async def sleeper(ctx: Context, input: dict) -> None:
        try:
            parked.set()
            await asyncio.sleep(3600)
        finally:
            cleaned.append(ctx.run_id)

    async with app:
        run = await app.runs.create(None, "sleeper", input={})
        await parked.wait()
        result = await app.runs.cancel(run.run_id, wait=True)
        assert result.stopped and cleaned == [run.run_id]


async def test_cancel_wait_from_a_client_returns_once_the_worker_stopped(make_app: AppFactory):
    """``wait=True`` in a process without the worker: answered from the store, not memory."""
    gate = Gate()
    app, seen = blocking_app(make_app, gate)
    client = make_app(worker=False)
    client.workflow("blocker")(app.workflows["blocker"])
    async with app, client:
        run_id = await start_blocked(app, gate)
        result = await client.runs.cancel(run_id, wait=True)
        assert result.outcome == "cancelled" and result.stopped
        assert seen["finally"] == 1
        assert (await client.runs.get(run_id)).lease_owner is None


async def test_a_repeated_cancel_signal_does_not_interrupt_cleanup(make_app: AppFactory):
    """The same cancel can reach a worker twice (its own process and the database's
    notification): the task is cancelled once, so its cleanup runs to the end."""
    app = make_app()
    parked, cleanup = Gate(), Gate()
    cleaned: list[str] = []

    @app.workflow("careful")
    async def careful(ctx: Context, input: dict) -> None:
        try:
            await ctx.step("park", parked)
        finally:
            await cleanup()  # not shielded: a second task.cancel() would cut it short
            cleaned.append(ctx.run_id)

    async with app:
        run = await app.runs.create(None, "careful")
        await parked.wait_reached()
        result = await app.runs.cancel(run.run_id)
        await cleanup.wait_reached()
        app._notifier.run_cancelled(run.run_id, result.run.cancelled_generation)
        cleanup.open()
        with pytest.raises(RunCancelled):
            await app.runs.join(run.run_id)
        assert cleaned == [run.run_id]


async def test_a_stream_of_a_cancelled_run_ends_whatever_its_log_ends_with(
    make_app: AppFactory,
):
    """The log of a run cancelled mid-step ends with the worker's step:cancel after the
    run:cancel; a stream joining then (or resuming after its last event) still ends."""
    app = make_app()
    gate = Gate()

    @app.workflow("slow")
    async def slow(ctx: Context, input: None) -> None:
        await ctx.step("wait", gate)

    async with app:
        run = await app.runs.create(None, "slow")
        await gate.wait_reached()
        await app.runs.cancel(run.run_id, wait=True)
        events = await app.runs.events(run.run_id)
        assert [e.event for e in events][-2:] == ["run:cancel", "step:cancel"]
        async with asyncio.timeout(5):
            streamed = [e async for e in app.runs.stream(run.run_id)]
            assert [e.seq for e in streamed] == [e.seq for e in events]
            assert [e async for e in app.runs.stream(run.run_id,
                                                     after_seq=events[-1].seq)] == []
