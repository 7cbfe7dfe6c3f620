"""A thread's time to live, on both stores: ``ttl`` minutes after its last update the
reaper's sweep deletes the thread (``delete``) or keeps only its latest checkpoint
(``keep_latest``); a thread a run is using is never swept; an update starts the time again.
Driven by a manual clock and the worker's own reap, not by waiting."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph

from runplane import Context, InvalidInput, Runplane, ThreadNotFound
from runplane.clock import ManualClock

from support import AppFactory
from support.graphs import Compiled


class State(TypedDict):
    done: Annotated[list[str], operator.add]


def _app(make_app: AppFactory, clock: ManualClock) -> Runplane:
    app = make_app(clock=clock)

    @app.workflow("noop")
    async def noop(ctx: Context, input: Any) -> Any:
        return input

    builder = StateGraph(State)
    builder.add_node("one", lambda state: {"done": ["one"]})
    builder.add_edge(START, "one")
    builder.add_edge("one", END)
    app.add_graph("counter", Compiled("counter", builder.compile()))
    return app


async def _reap(app: Runplane) -> None:
    assert app.worker is not None
    await app.worker.reap()


async def test_a_thread_is_deleted_its_ttl_after_its_last_update(make_app: AppFactory):
    clock = ManualClock()
    async with _app(make_app, clock) as app:
        doomed = await app.threads.create(ttl=10)
        kept = await app.threads.create()
        refreshed = await app.threads.create(ttl={"ttl": 10, "strategy": "delete"})
        assert doomed.ttl is not None and doomed.ttl.strategy == "delete"
        assert doomed.ttl.expires_at is not None
        assert (doomed.ttl.expires_at - doomed.updated_at).total_seconds() == 600
        clock.advance(599)
        await app.threads.update(refreshed.thread_id, metadata={"seen": True})
        await _reap(app)
        await app.threads.get(doomed.thread_id)  # not yet
        clock.advance(1)
        await _reap(app)
        with pytest.raises(ThreadNotFound):
            await app.threads.get(doomed.thread_id)
        await app.threads.get(kept.thread_id)
        await app.threads.get(refreshed.thread_id)  # its update started the time again
        clock.advance(599)
        await _reap(app)
        with pytest.raises(ThreadNotFound):
            await app.threads.get(refreshed.thread_id)


async def test_a_thread_with_an_active_run_is_not_swept(make_app: AppFactory):
    clock = ManualClock()
    async with _app(make_app, clock) as app:
        thread = await app.threads.create(ttl=1)
        waiting = await app.runs.create(thread.thread_id, "noop", after_seconds=3600)
        clock.advance(120)
        await _reap(app)
        assert (await app.threads.get(thread.thread_id)).status == "busy"
        await app.runs.cancel(waiting.run_id)
        await _reap(app)
        with pytest.raises(ThreadNotFound):
            await app.threads.get(thread.thread_id)


async def test_keep_latest_keeps_the_thread_and_its_latest_checkpoint(make_app: AppFactory):
    clock = ManualClock()
    async with _app(make_app, clock) as app:
        thread = await app.threads.create(ttl={"ttl": 5, "strategy": "keep_latest"})
        for _ in range(2):
            run = await app.runs.create(thread.thread_id, "counter", input={"done": []})
            await app.runs.join(run.run_id)
        assert len(await app.threads.get_history(thread.thread_id, limit=100)) == 6
        clock.advance(300)
        await _reap(app)
        [latest] = await app.threads.get_history(thread.thread_id, limit=100)
        assert latest.values == {"done": ["one", "one"]}
        swept = await app.threads.get(thread.thread_id)
        assert swept.ttl is not None and swept.ttl.strategy == "keep_latest"
        # a thread swept once is not swept again until it changes
        assert await app.service.expire_threads() == []


async def test_a_ttl_is_set_and_changed_by_an_update_and_checked(make_app: AppFactory):
    clock = ManualClock()
    async with _app(make_app, clock) as app:
        thread = await app.threads.create()
        assert thread.ttl is None
        updated = await app.threads.update(thread.thread_id, ttl={"ttl": 2,
                                                                  "strategy": "keep_latest"})
        assert updated.ttl is not None and updated.ttl.ttl_minutes == 2
        copied = await app.threads.copy(thread.thread_id)
        assert copied.ttl is not None and copied.ttl.strategy == "keep_latest"
        for bad in (0, -1, float("nan"), True, "10", {"ttl": 5, "strategy": "archive"},
                    {"minutes": 5}, {"strategy": "delete"}):
            with pytest.raises(InvalidInput) as refused:
                await app.threads.create(ttl=bad)
            assert refused.value.field.startswith("ttl"), bad
        assert len(await app.threads.search(limit=100)) == 2
