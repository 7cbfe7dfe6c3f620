"""What cancel, resume, rollback and the multitask strategies do to a graph's run and its
thread's checkpoints: counted node executions say what ran again, the thread's state says
where it stands. Races are parked nodes (gates), not sleeps."""

from __future__ import annotations

import asyncio
import operator
import threading
from typing import Annotated, Any

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.pregel import Pregel
from typing_extensions import TypedDict

from runplane import Runplane
from runplane.errors import ThreadBusy
from runplane.models import RunStatus

from support import AppFactory, Gate, eventually
from support.graphs import Compiled


class Trail(TypedDict):
    done: Annotated[list[str], operator.add]


def _graph(executed: list[str], gates: dict[str, Gate]) -> Pregel:
    """one -> two -> three; a node parks on its gate when it has one."""

    def node(name: str) -> Any:
        async def run(state: Trail) -> dict[str, Any]:
            executed.append(name)
            if name in gates:
                await gates[name]()
            return {"done": [name]}

        return run

    builder = StateGraph(Trail)
    for name in ("one", "two", "three"):
        builder.add_node(name, node(name))
    builder.add_edge(START, "one")
    builder.add_edge("one", "two")
    builder.add_edge("two", "three")
    builder.add_edge("three", END)
    return builder.compile()


def _app(make_app: AppFactory, graph: Pregel) -> Runplane:
    app = make_app()
    app.add_graph("trail", Compiled("trail", graph))
    return app


async def test_an_interrupt_keeps_every_completed_super_step_and_resume_goes_on(
        make_app: AppFactory):
    executed: list[str] = []
    gates = {"two": Gate()}
    async with _app(make_app, _graph(executed, gates)) as app:
        thread = await app.threads.create()
        run = await app.runs.create(thread.thread_id, "trail", {"done": []})
        await gates["two"].wait_reached()
        await app.runs.cancel(run.run_id, reason="look first", wait=True)
        state = await app.threads.get_state(thread.thread_id)
        assert state.values == {"done": ["one"]} and state.next == ("two",)
        gates["two"].open()
        await app.runs.resume(run.run_id)
        assert await app.runs.join(run.run_id) == {"done": ["one", "two", "three"]}
        assert executed == ["one", "two", "two", "three"]  # "one" never ran again
        state = await app.threads.get_state(thread.thread_id)
        assert state.values == {"done": ["one", "two", "three"]} and state.next == ()


async def test_a_rollback_puts_the_thread_back_where_it_was_before_the_run(
        make_app: AppFactory):
    executed: list[str] = []
    gates: dict[str, Gate] = {}
    async with _app(make_app, _graph(executed, gates)) as app:
        thread = await app.threads.create()
        first = await app.runs.create(thread.thread_id, "trail", {"done": ["start"]})
        await app.runs.join(first.run_id)
        before = await app.threads.get_state(thread.thread_id)
        gates["two"] = Gate()
        second = await app.runs.create(thread.thread_id, "trail", {"done": ["again"]})
        await gates["two"].wait_reached()
        result = await app.runs.cancel(second.run_id, action="rollback", wait=True)
        assert result.run.status is RunStatus.INTERRUPTED  # the record stays
        after = await app.threads.get_state(thread.thread_id)
        assert after.values == before.values == {"done": ["start", "one", "two", "three"]}
        assert after.config == before.config  # the same checkpoint: the run's are gone
        history = await app.threads.get_history(thread.thread_id, limit=100)
        assert {s.metadata.get("run_id") for s in history} == {first.run_id}
        assert (await app.threads.get(thread.thread_id)).values == before.values


async def test_a_node_stuck_in_sync_code_writes_nothing_once_cancelled(make_app: AppFactory):
    entered, release, returned = threading.Event(), threading.Event(), threading.Event()

    def stuck(state: Trail) -> dict[str, Any]:
        entered.set()
        release.wait(10)
        returned.set()
        return {"done": ["stuck"]}

    builder = StateGraph(Trail)
    builder.add_node("stuck", stuck)
    builder.add_node("after", lambda state: {"done": ["after"]})
    builder.add_edge(START, "stuck")
    builder.add_edge("stuck", "after")
    builder.add_edge("after", END)
    async with _app(make_app, builder.compile()) as app:
        thread = await app.threads.create()
        run = await app.runs.create(thread.thread_id, "trail", {"done": []})
        await eventually(entered.is_set)
        await app.runs.cancel(run.run_id, wait=True)
        checkpoints = await app.threads.get_history(thread.thread_id, limit=100)
        events = await app.runs.events(run.run_id)
        release.set()
        await eventually(returned.is_set)
        await asyncio.sleep(0.05)  # what the returned node could still have made us write
        assert await app.threads.get_history(thread.thread_id, limit=100) == checkpoints
        assert await app.runs.events(run.run_id) == events
        assert (await app.threads.get_state(thread.thread_id)).values == {"done": []}


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_a_new_run_that_cancels_the_active_one_starts_from_what_it_left(
        make_app: AppFactory, strategy: str):
    executed: list[str] = []
    gates = {"two": Gate()}
    async with _app(make_app, _graph(executed, gates)) as app:
        thread = await app.threads.create()
        first = await app.runs.create(thread.thread_id, "trail", {"done": ["first"]})
        await gates["two"].wait_reached()
        second = await app.runs.create(thread.thread_id, "trail", {"done": ["second"]},
                                       multitask_strategy=strategy)
        # the first run was cancelled with the creation: whatever its parked node does
        # now meets the fence
        gates["two"].open()
        assert await app.runs.join(second.run_id) == {
            # interrupt keeps the first run's completed super-steps; rollback undoes them
            "interrupt": {"done": ["first", "one", "second", "one", "two", "three"]},
            "rollback": {"done": ["second", "one", "two", "three"]},
        }[strategy]
        assert (await app.runs.get(first.run_id)).status is RunStatus.INTERRUPTED


async def test_reject_and_enqueue_on_a_graph_thread(make_app: AppFactory):
    executed: list[str] = []
    gates = {"two": Gate()}
    async with _app(make_app, _graph(executed, gates)) as app:
        thread = await app.threads.create()
        first = await app.runs.create(thread.thread_id, "trail", {"done": []})
        await gates["two"].wait_reached()
        with pytest.raises(ThreadBusy):
            await app.runs.create(thread.thread_id, "trail", {"done": []},
                                  multitask_strategy="reject")
        queued = await app.runs.create(thread.thread_id, "trail", {"done": ["next"]},
                                       multitask_strategy="enqueue")
        gates["two"].open()
        assert await app.runs.join(first.run_id) == {"done": ["one", "two", "three"]}
        assert await app.runs.join(queued.run_id) == {
            "done": ["one", "two", "three", "next", "one", "two", "three"]}


async def test_a_worker_shutting_down_drains_a_graph_and_hands_its_run_back(
        make_app: AppFactory):
    """The graph stops at its next super-step boundary, checkpointed, instead of running on
    until the grace ends; another worker goes on from there."""
    executed: list[str] = []
    gates = {"one": Gate()}
    app = make_app(shutdown_grace=60.0)
    app.add_graph("trail", Compiled("trail", _graph(executed, gates)))
    await app.open()
    thread = await app.threads.create()
    run = await app.runs.create(thread.thread_id, "trail", {"done": []})
    await gates["one"].wait_reached()
    worker = app.worker
    assert worker is not None
    closing = asyncio.create_task(app.close())
    await eventually(lambda: worker.draining)
    gates["one"].open()
    await closing
    assert executed == ["one"]  # "two" was not started: the graph drained after "one"
    again = make_app()
    again.add_graph("trail", Compiled("trail", _graph(executed, {})))
    async with again:
        assert (await again.runs.get(run.run_id)).status is RunStatus.PENDING
        assert await again.runs.join(run.run_id) == {"done": ["one", "two", "three"]}
    assert executed == ["one", "two", "three"]
