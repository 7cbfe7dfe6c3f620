"""Crons (``app.crons``): runs created at the times of a schedule, each time once, whichever
worker fires it; driven by a manual clock and ``fire_crons`` called by the test (the
workers' own cron duty is slowed down out of the way)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict

from runplane import Context, Runplane
from runplane.clock import ManualClock
from runplane.errors import CronNotFound, InvalidInput, ThreadNotFound, UnknownWorkflow
from runplane.models import Caller

from support import AppFactory
from support.graphs import Compiled

ADA, BOB = Caller("ada"), Caller("bob")
#: The manual clock's start: 2027-01-15 08:00:00 UTC, on a five-minute boundary.
START_AT = 1_800_000_000.0


class Count(TypedDict, total=False):
    n: int


def _app(make_app: AppFactory, clock: ManualClock) -> Runplane:
    app = make_app(clock=clock, cron_interval=3600.0)

    @app.workflow("echo")
    async def echo(ctx: Context, input: Any) -> Any:
        return input

    builder = StateGraph(Count)
    builder.add_node("inc", lambda state: {"n": state.get("n", 0) + 1})
    builder.add_edge(START, "inc")
    app.add_graph("counter", Compiled("counter", builder.compile()))
    return app


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(START_AT + seconds, UTC)


async def test_a_cron_fires_once_at_each_time_of_its_schedule(make_app: AppFactory):
    clock = ManualClock(START_AT)
    async with _app(make_app, clock) as app:
        cron = await app.crons.create("echo", schedule="*/5 * * * *", input={"hi": 1},
                                      metadata={"team": "x"})
        assert (cron.next_run_at, cron.enabled, cron.thread_id) == (_at(300), True, None)
        clock.advance(299)
        assert await app.service.fire_crons() == []
        clock.advance(1)
        [first] = await app.service.fire_crons()
        assert await app.service.fire_crons() == []  # that time is spent
        assert (first.assistant_id, first.input, first.metadata) == (
            "echo", {"hi": 1}, {"team": "x", "cron_id": cron.cron_id})
        assert await app.runs.join(first.run_id) == {"hi": 1}
        clock.advance(300)
        [second] = await app.service.fire_crons()
        assert second.run_id != first.run_id
        [now] = await app.crons.search()
        assert now.next_run_at == _at(900)


async def test_a_missed_time_fires_once_late_and_the_next_time_is_after_now(
    make_app: AppFactory
):
    clock = ManualClock(START_AT)
    async with _app(make_app, clock) as app:
        await app.crons.create("echo", schedule="*/5 * * * *")
        clock.advance(3600 + 60)  # twelve times missed while nothing fired
        assert len(await app.service.fire_crons()) == 1
        assert await app.service.fire_crons() == []
        [cron] = await app.crons.search()
        assert cron.next_run_at == _at(3600 + 300)


async def test_thread_crons_run_on_their_thread_and_graph_crons_on_threads_of_their_own(
    make_app: AppFactory
):
    clock = ManualClock(START_AT)
    async with _app(make_app, clock) as app:
        thread = await app.threads.create()
        await app.crons.create("counter", schedule="* * * * *", thread_id=thread.thread_id,
                               input={})
        await app.crons.create("counter", schedule="* * * * *", input={"n": 10})
        for _ in range(2):
            clock.advance(60)
            for run in await app.service.fire_crons():
                await app.runs.join(run.run_id)
        assert (await app.threads.get(thread.thread_id)).values == {"n": 2}
        own = [r for r in await app.runs.list(None, limit=100)
               if r.thread_id != thread.thread_id]
        assert len(own) == 2 and len({r.thread_id for r in own}) == 2  # a thread each
        assert [(await app.threads.get(r.thread_id)).values for r in own] == [{"n": 11}] * 2


async def test_end_time_time_zone_and_enabled(make_app: AppFactory):
    clock = ManualClock(START_AT)
    async with _app(make_app, clock) as app:
        ends = await app.crons.create("echo", schedule="*/5 * * * *", end_time=_at(400))
        clock.advance(300)
        assert len(await app.service.fire_crons()) == 1
        [ended] = await app.crons.search(assistant_id="echo")
        assert ended.next_run_at is None  # its next time is past its end
        clock.advance(600)
        assert await app.service.fire_crons() == []
        again = await app.crons.update(ends.cron_id, end_time=None)
        assert again.next_run_at == _at(1200)

        paris = await app.crons.create("echo", schedule="0 9 * * *", timezone="Europe/Paris")
        # 09:00 in Paris in January is 08:00 UTC: the next one is tomorrow's
        assert paris.next_run_at == datetime(2027, 1, 16, 8, 0, tzinfo=UTC)
        await app.crons.update(paris.cron_id, timezone="America/New_York")
        [moved] = await app.crons.search(thread_id=None, metadata={}, sort_by="next_run_date",
                                         sort_order="desc", limit=1)
        assert moved.next_run_at == datetime(2027, 1, 15, 14, 0, tzinfo=UTC)

        off = await app.crons.create("echo", schedule="* * * * *", enabled=False)
        clock.advance(120)
        fired = await app.service.fire_crons()
        assert off.cron_id not in {r.metadata["cron_id"] for r in fired}
        await app.crons.update(off.cron_id, enabled=True)
        clock.advance(60)
        assert off.cron_id in {r.metadata["cron_id"] for r in await app.service.fire_crons()}
        assert await app.crons.count() == 3
        assert len(await app.crons.search(enabled=False)) == 0


async def test_a_cron_outlives_its_app_and_fires_after_a_restart(make_app: AppFactory):
    clock = ManualClock(START_AT)
    async with _app(make_app, clock) as first:
        cron = await first.crons.create("echo", schedule="*/5 * * * *", input={"x": 1})
    clock.advance(300)
    async with _app(make_app, clock) as second:
        [run] = await second.service.fire_crons()
        assert run.metadata["cron_id"] == cron.cron_id
        assert await second.runs.join(run.run_id) == {"x": 1}


async def test_two_workers_fire_each_time_once(make_app: AppFactory):
    """Deterministic: one worker read the cron as due, the other fired that time first;
    the first's firing then creates nothing. And both firing at once, many times over."""
    clock = ManualClock(START_AT)
    async with _app(make_app, clock) as one, _app(make_app, clock) as two:
        await one.crons.create("echo", schedule="* * * * *")
        clock.advance(60)
        [due] = await one.store.due_crons(clock.now(), 10)
        assert len(await two.service.fire_crons()) == 1
        assert due.next_run_at is not None
        assert await one.store.fire_cron(due.cron_id, due.next_run_at.timestamp(),
                                         START_AT + 120, None, clock.now(),
                                         on_active="enqueue") is None
        for _ in range(5):
            clock.advance(60)
            fired = await asyncio.gather(one.service.fire_crons(), two.service.fire_crons())
            assert sum(len(f) for f in fired) == 1
        runs = await one.runs.list(None, limit=100)
        assert len(runs) == 6 == len({r.run_id for r in runs})


async def test_a_cron_whose_thread_went_away_spends_its_time_without_a_run(
    make_app: AppFactory
):
    clock = ManualClock(START_AT)
    async with _app(make_app, clock) as app:
        thread = await app.threads.create()
        await app.crons.create("echo", schedule="* * * * *", thread_id=thread.thread_id)
        await app.threads.delete(thread.thread_id)
        clock.advance(60)
        assert await app.service.fire_crons() == []
        [cron] = await app.crons.search()
        assert cron.next_run_at == _at(120)  # moved on: not retried at every tick


async def test_bad_crons_are_refused_and_nothing_is_stored(make_app: AppFactory):
    clock = ManualClock(START_AT)
    async with _app(make_app, clock) as app:
        for kwargs, field in (
            ({"schedule": "every day"}, "schedule"),
            ({"schedule": "0 0 30 2 *"}, "schedule"),  # no February 30th: never comes
            ({"schedule": "* * * * *", "timezone": "America"}, "timezone"),  # a folder
            ({"schedule": "* * * * *", "end_time": "0001-01-01T00:00:00+05:00"}, "end_time"),
            ({"schedule": "* * * * *", "end_time": "9999-12-31T23:59:59-05:00"}, "end_time"),
            ({"schedule": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
            ({"schedule": "* * * * *", "webhook": "ftp://example.com"}, "webhook"),
            ({"schedule": "* * * * *", "on_run_completed": "delete"}, "on_run_completed"),
            ({"schedule": "* * * * *", "end_time": "tomorrow"}, "end_time"),
            ({"schedule": "* * * * *", "config": {"recursion_limit": "x"}}, "config"),
            ({"schedule": "* * * * *", "multitask_strategy": "sometimes"},
             "multitask_strategy"),
        ):
            with pytest.raises(InvalidInput) as refused:
                await app.crons.create("counter", **kwargs)
            assert refused.value.field.startswith(field), kwargs
        with pytest.raises(UnknownWorkflow):
            await app.crons.create("nothing", schedule="* * * * *")
        with pytest.raises(ThreadNotFound):
            await app.crons.create("echo", schedule="* * * * *", thread_id="no-thread")
        assert await app.crons.count() == 0
        cron = await app.crons.create("echo", schedule="* * * * *")
        with pytest.raises(InvalidInput, match="schedule"):
            await app.crons.update(cron.cron_id, schedule="61 * * * *")
        with pytest.raises(CronNotFound):
            await app.crons.delete("no-such-cron")
        assert (await app.crons.search())[0].schedule == "* * * * *"


async def test_an_owners_crons_are_its_own(make_app: AppFactory):
    clock = ManualClock(START_AT)
    async with _app(make_app, clock) as app:
        cron = await app.crons.create("echo", schedule="* * * * *", caller=ADA)
        assert cron.owner == "ada"
        assert await app.crons.search(caller=BOB) == []
        assert await app.crons.count(caller=BOB) == 0
        for attempt in (app.crons.update(cron.cron_id, enabled=False, caller=BOB),
                        app.crons.delete(cron.cron_id, caller=BOB)):
            with pytest.raises(CronNotFound):
                await attempt
        clock.advance(60)
        [run] = await app.service.fire_crons()
        assert (await app.runs.get(run.run_id, caller=ADA)).owner == "ada"
        await app.crons.delete(cron.cron_id, caller=ADA)
        assert await app.crons.count() == 0
        assert (await app.runs.get(run.run_id)).run_id == run.run_id  # its runs are kept


async def test_cron_runs_are_ordinary_runs(make_app: AppFactory):
    clock = ManualClock(START_AT)
    async with _app(make_app, clock) as app:
        await app.crons.create("echo", schedule="* * * * *", input={"a": 1})
        clock.advance(60)
        [run] = await app.service.fire_crons()
        assert (await app.runs.get(run.run_id)).run_id == run.run_id
        assert sum((await app.runs.count()).values()) == 1
        assert await app.runs.join(run.run_id) == {"a": 1}


async def test_a_cron_whose_schedule_ends_does_not_stop_the_others(make_app: AppFactory):
    """A schedule whose last time passed has no next one: it is done, and the crons due
    after it in the same turn still fire."""
    clock = ManualClock(START_AT)
    async with _app(make_app, clock) as app:
        last = await app.crons.create("echo", schedule="1 8 15 1 * 0 2027")  # only once
        other = await app.crons.create("echo", schedule="2 8 * * *")
        assert last.next_run_at == _at(60)
        clock.advance(180)
        fired = {r.metadata["cron_id"] for r in await app.service.fire_crons()}
        assert fired == {last.cron_id, other.cron_id}
        [done] = [c for c in await app.crons.search() if c.cron_id == last.cron_id]
        assert done.next_run_at is None


async def test_a_worker_without_the_crons_assistant_leaves_its_time_to_one_with_it(
    make_app: AppFactory
):
    clock = ManualClock(START_AT)
    async with _app(make_app, clock) as app:
        other = make_app(clock=clock, cron_interval=3600.0)

        @other.workflow("unrelated")
        async def unrelated(ctx: Context, input: Any) -> Any:
            return input

        async with other:
            await app.crons.create("echo", schedule="* * * * *")
            clock.advance(60)
            assert await other.service.fire_crons() == []  # not its own: left due
            [run] = await app.service.fire_crons()
            assert run.assistant_id == "echo"


async def test_a_change_that_keeps_the_times_keeps_a_due_time(make_app: AppFactory):
    clock = ManualClock(START_AT)
    async with _app(make_app, clock) as app:
        cron = await app.crons.create("echo", schedule="* * * * *", input={"v": 1})
        clock.advance(60)
        await app.crons.update(cron.cron_id, input={"v": 2})  # the due time stands
        [run] = await app.service.fire_crons()
        assert run.input == {"v": 2}
        await app.crons.update(cron.cron_id, schedule="*/5 * * * *")  # new times from now
        [moved] = await app.crons.search()
        assert moved.next_run_at == _at(300)


async def test_an_admins_cron_on_an_owners_thread_fires(make_app: AppFactory):
    clock = ManualClock(START_AT)
    admin = Caller("ops", admin=True)
    async with _app(make_app, clock) as app:
        thread = await app.threads.create(caller=ADA)
        cron = await app.crons.create("echo", schedule="* * * * *", input={},
                                      thread_id=thread.thread_id, caller=admin)
        clock.advance(60)
        [run] = await app.service.fire_crons()
        assert run.thread_id == thread.thread_id and run.owner == "ada"  # the thread's
        assert cron.owner == "ops"

