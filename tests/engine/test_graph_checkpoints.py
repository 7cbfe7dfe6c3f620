"""A LangGraph graph checkpointing through its run's fence, run by the worker: the saver
stores what the run holds the lease for, and a refused checkpoint write stops the run."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph

from runplane import Context, Runplane
from runplane.clock import ManualClock
from runplane.graphs.checkpointer import RunplaneSaver
from runplane.metrics import REFUSED_WRITES
from runplane.models import RunStatus, StoredCheckpoint

from support import AppFactory, Gate, eventually


class State(TypedDict):
    done: Annotated[list[str], operator.add]


def graph_app(make_app: AppFactory, gate: Gate | None, executed: list[str],
              **kwargs: Any) -> Runplane:
    """A two-node graph as a workflow; node ``one`` parks on ``gate``."""
    app = make_app(**kwargs)

    async def one(state: State) -> dict[str, Any]:
        executed.append("one")
        if gate is not None:
            await gate()
        return {"done": ["one"]}

    async def two(state: State) -> dict[str, Any]:
        executed.append("two")
        return {"done": ["two"]}

    builder = StateGraph(State)
    builder.add_node("one", one)
    builder.add_node("two", two)
    builder.add_edge(START, "one")
    builder.add_edge("one", "two")
    builder.add_edge("two", END)

    @app.workflow("graph")
    async def run_graph(ctx: Context, input: Any) -> Any:
        graph = builder.compile(checkpointer=RunplaneSaver.for_run(app.store, ctx))
        config = {"configurable": {"thread_id": ctx.run_id, "run_id": ctx.run_id}}
        return await graph.ainvoke(input, config, durability="sync")

    return app


async def test_a_graph_run_checkpoints_each_super_step_under_its_lease(make_app: AppFactory):
    executed: list[str] = []
    app = graph_app(make_app, None, executed)
    async with app:
        run = await app.runs.create(None, "graph", input={"done": []})
        assert await app.runs.join(run.run_id) == {"done": ["one", "two"]}
        stored = await app.store.list_checkpoints(thread_id=run.run_id, checkpoint_ns="")
        assert [c.run_id for c in stored] == [run.run_id] * 4  # steps -1 (input) to 2
        newest = await RunplaneSaver(app.store).aget_tuple(
            {"configurable": {"thread_id": run.run_id}})
        assert newest is not None
        assert newest.checkpoint["channel_values"]["done"] == ["one", "two"]


async def test_a_refused_checkpoint_write_stops_the_graph_as_lease_lost(make_app: AppFactory):
    """The run is taken over while node ``one`` runs: its writes are refused, node ``two``
    never runs, and the old worker reports the lease lost."""
    clock = ManualClock()
    gate = Gate()
    executed: list[str] = []
    # no polls, no heartbeat: the worker learns of the takeover only through its refused
    # checkpoint write; its one slot is the run's, so it cannot claim the run back itself
    # when the reap signals it pending (PostgreSQL's NOTIFY wakes it at once)
    app = graph_app(make_app, gate, executed, clock=clock, poll_interval=3600.0,
                    lease_ttl=10_000.0, heartbeat_interval=5_000.0, concurrency=1)
    refused = REFUSED_WRITES.labels("checkpoint")._value.get()
    async with app:
        run = await app.runs.create(None, "graph", input={"done": []})
        await gate.wait_reached()
        # LangGraph does not wait for its input's writes: let them land (else the one the
        # reap overtakes is refused, and the worker lets the run go before node one ends)
        await eventually(lambda: _input_written(app, run.run_id))
        before = await app.store.list_checkpoints(thread_id=run.run_id, checkpoint_ns="")
        clock.advance(20_000)
        # (a reap skips a run whose row a checkpoint write still holds: it comes back)
        await eventually(lambda: _reaped(app, clock.now()))
        [taken] = await app.store.claim_runs("other", ["graph"], 1, 10_000.0, clock.now())
        gate.open()
        await eventually(lambda: _has_event(app, run.run_id, "lease:lost"))
        after = await app.store.list_checkpoints(thread_id=run.run_id, checkpoint_ns="")
        assert [c.checkpoint_id for c in after] == [c.checkpoint_id for c in before]
        written = [value for c in after for _, _, value in _writes(c)]
        assert ["one"] not in written  # nothing of node one's writes, no checkpoint after it
        assert executed == ["one"]
        assert REFUSED_WRITES.labels("checkpoint")._value.get() > refused
        current = await app.runs.get(run.run_id)
        assert current.status is RunStatus.RUNNING and current.lease_owner == "other"
        assert current.lease_generation == taken.run.lease_generation


def _writes(stored: StoredCheckpoint) -> list[tuple[str, str, Any]]:
    serde = JsonPlusSerializer()
    return [(w.task_id, w.channel, serde.loads_typed((w.type, w.value))) for w in stored.writes]


async def _input_written(app: Runplane, run_id: str) -> bool:
    """The run's first checkpoint holds the writes of its input."""
    stored = await app.store.list_checkpoints(thread_id=run_id, checkpoint_ns="")
    return bool(stored) and bool(stored[-1].writes)


async def _reaped(app: Runplane, now: float) -> bool:
    return bool(await app.store.reap_expired(now))


async def _has_event(app: Runplane, run_id: str, name: str) -> bool:
    return any(e.event == name for e in await app.runs.events(run_id))
