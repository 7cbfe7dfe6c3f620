"""A LangGraph graph served by an app: each of its runs is a runplane run (claimed, logged
through the fence, cancelled like any other), under the LangGraph server's assistant id."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.pregel import Pregel
from typing_extensions import TypedDict

from runplane import Context, RunCancelled, RunExists, RunFailed, Runplane
from runplane.assistants import default_assistant_id
from runplane.errors import ConfigError, InvalidInput, UnknownWorkflow
from runplane.models import RunStatus

from support import AppFactory, eventually
from support.graphs import Compiled


class Count(TypedDict):
    x: int
    seen: list[str]


def _counting(executions: dict[str, int], gate: asyncio.Event | None = None) -> Pregel:
    """start -> add -> double -> end; ``double`` waits for ``gate`` when given."""

    async def add(state: Count, config: RunnableConfig) -> dict[str, Any]:
        executions["add"] = executions.get("add", 0) + 1
        user = config["configurable"].get("user", "nobody")
        return {"x": state["x"] + 1, "seen": [*state.get("seen", []), f"add:{user}"]}

    async def double(state: Count) -> dict[str, Any]:
        executions["double"] = executions.get("double", 0) + 1
        if gate is not None:
            await gate.wait()
        return {"x": state["x"] * 2, "seen": [*state["seen"], "double"]}

    builder = StateGraph(Count)
    builder.add_node("add", add)
    builder.add_node("double", double)
    builder.add_edge(START, "add")
    builder.add_edge("add", "double")
    builder.add_edge("double", END)
    return builder.compile()


def _app(make_app: AppFactory, graph: Pregel) -> Runplane:
    app = make_app()
    app.add_graph("counter", Compiled("counter", graph, "Adds one, then doubles."))
    return app


async def test_a_graph_run_is_a_run_of_the_graphs_default_assistant(make_app: AppFactory):
    executions: dict[str, int] = {}
    async with _app(make_app, _counting(executions)) as app:
        run = await app.runs.create(None, "counter", {"x": 1, "seen": []},
                                    config={"configurable": {"user": "ada"}},
                                    stream_mode=["values", "updates"])
        assert run.assistant_id == default_assistant_id("counter") == str(
            uuid.uuid5(uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "counter"))
        assert await app.runs.join(run.run_id) == {"x": 4, "seen": ["add:ada", "double"]}
        assert executions == {"add": 1, "double": 1}
        # a thread-less graph run got a thread of its own, tagged with its graph
        assert run.thread_id is not None
        thread = await app.threads.get(run.thread_id)
        assert thread.metadata == {"graph_id": "counter",
                                   "assistant_id": default_assistant_id("counter")}
        assert thread.values == {"x": 4, "seen": ["add:ada", "double"]}
        logged = [(e.event, e.data) for e in await app.runs.events(run.run_id)
                  if ":" not in e.event]
        assert logged == [
            ("values", {"x": 1, "seen": []}),
            ("updates", {"add": {"x": 2, "seen": ["add:ada"]}}),
            ("values", {"x": 2, "seen": ["add:ada"]}),
            ("updates", {"double": {"x": 4, "seen": ["add:ada", "double"]}}),
            ("values", {"x": 4, "seen": ["add:ada", "double"]}),
        ]


async def test_a_run_tags_its_thread_with_its_graph_as_it_is_created(make_app: AppFactory):
    """A graph run's thread says its graph and assistant from the run's creation on: a thread
    the run makes has the run's metadata beside them (the run's own if it names a graph), an
    untagged thread gets them, a thread tagged before keeps its own."""
    tags = {"graph_id": "counter", "assistant_id": default_assistant_id("counter")}
    async with _app(make_app, _counting({})) as app:
        plain = await app.threads.create(metadata={"topic": "x"})
        tagged = await app.threads.create(metadata={"graph_id": "elsewhere"})
        runs = [await app.runs.create(None, "counter", {"x": 0, "seen": []},
                                      metadata=metadata)
                for metadata in ({"who": "ada"}, {"graph_id": "mine"})]
        for thread in (plain, tagged):
            runs.append(await app.runs.create(thread.thread_id, "counter",
                                              {"x": 0, "seen": []}))
        made, named = runs[0].thread_id, runs[1].thread_id
        assert made is not None and named is not None
        # read before any run ran: the tags came with the run's creation
        assert [(await app.threads.get(t)).metadata
                for t in (made, named, plain.thread_id, tagged.thread_id)] == [
            {"who": "ada", **tags}, {"graph_id": "mine"}, {"topic": "x", **tags},
            {"graph_id": "elsewhere"}]
        for run in runs:
            await app.runs.join(run.run_id)
        assert (await app.threads.get(tagged.thread_id)).metadata == {"graph_id": "elsewhere"}


async def test_a_run_id_another_run_has_is_refused_and_changes_nothing(make_app: AppFactory):
    """A run asked for under a taken id is RunExists, whichever way it would be created
    (a workflow's thread-less run, a graph's with the thread it would make, a run on a
    thread), and leaves no trace: no thread, no event, the first run as it was."""
    app = _app(make_app, _counting({}))

    @app.workflow("echo")
    async def echo(ctx: Context, input: Any) -> Any:
        return input

    async with app:
        thread = await app.threads.create()
        first = await app.runs.create(None, "counter", {"x": 1, "seen": []}, run_id="taken")
        await app.runs.join(first.run_id)
        before = (await app.runs.get("taken"), await app.runs.events("taken"),
                  await app.threads.search(limit=100))
        for thread_id, assistant in ((None, "echo"), (None, "counter"),
                                     (thread.thread_id, "counter")):
            with pytest.raises(RunExists, match="taken"):
                await app.runs.create(thread_id, assistant, {"x": 2, "seen": []},
                                      run_id="taken")
        assert (await app.runs.get("taken"), await app.runs.events("taken"),
                await app.threads.search(limit=100)) == before


async def test_the_assistant_is_found_by_its_id_and_by_the_graph_id(make_app: AppFactory):
    async with _app(make_app, _counting({})) as app:
        by_id = app.registry.resolve(default_assistant_id("counter"))
        assert by_id == app.registry.resolve("counter")
        assert (by_id.graph_id, by_id.name, by_id.description) == (
            "counter", "counter", "Adds one, then doubles.")
        thread = await app.threads.create()
        run = await app.runs.create(thread.thread_id, default_assistant_id("counter"),
                                    {"x": 0, "seen": []})
        assert await app.runs.join(run.run_id) == {"x": 2, "seen": ["add:nobody", "double"]}
        with pytest.raises(UnknownWorkflow, match="counter"):
            await app.runs.create(thread.thread_id, "no-such-graph", {})


async def test_a_graph_runs_options_are_checked(make_app: AppFactory):
    async with _app(make_app, _counting({})) as app:
        for options, field in (({"stream_mode": ["vals"]}, "stream_mode"),
                               ({"durability": "never"}, "durability"),
                               ({"config": ["not", "an", "object"]}, "config"),
                               ({"config": {"configurable": [1]}}, "config.configurable"),
                               ({"config": {"recursion_limit": "9"}}, "config.recursion_limit"),
                               ({"config": {"recursion_limit": 0}}, "config.recursion_limit"),
                               ({"config": {"tags": ["a", 1]}}, "config.tags")):
            with pytest.raises(InvalidInput, match=field):
                await app.runs.create(None, "counter", {"x": 0, "seen": []}, **options)
        assert await app.runs.list() == []


async def test_a_cancel_stops_the_graph_in_its_node(make_app: AppFactory):
    executions: dict[str, int] = {}
    gate = asyncio.Event()
    async with _app(make_app, _counting(executions, gate)) as app:
        run = await app.runs.create(None, "counter", {"x": 1, "seen": []})
        await eventually(lambda: executions.get("double") == 1)
        result = await app.runs.cancel(run.run_id, reason="enough", wait=True)
        assert result.run.status is RunStatus.INTERRUPTED
        with pytest.raises(RunCancelled):
            await app.runs.join(run.run_id)
        gate.set()  # nothing is left to resume the node
        await asyncio.sleep(0)
        assert executions == {"add": 1, "double": 1}
        assert not [e for e in await app.runs.events(run.run_id) if e.event == "run:complete"]


def _agent() -> Pregel:
    import importlib.util
    import sys

    path = Path(__file__).parents[2] / "examples" / "agent" / "agent.py"
    spec = importlib.util.spec_from_file_location("example_agent", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("example_agent", module)
    spec.loader.exec_module(module)
    module.TOKEN_DELAY = 0
    return module.graph


async def test_a_chat_graph_logs_its_tokens_and_its_events(make_app: AppFactory):
    app = make_app()
    app.add_graph("agent", Compiled("agent", _agent()))
    async with app:
        run = await app.runs.create(None, "agent", {"messages": [
            {"role": "user", "content": "what is runplane?"}]},
            stream_mode=["messages-tuple", "events", "updates"])
        output = await app.runs.join(run.run_id)
        answer = "Here is what I found: runplane runs agents as durable runs whose stop " \
                 "button always works."
        assert output["messages"][-1]["content"] == answer
        logged = [e for e in await app.runs.events(run.run_id) if ":" not in e.event]
        tokens = [e.data[0]["content"] for e in logged
                  if e.event == "messages" and e.data[1]["langgraph_node"] == "chat"]
        assert "".join(tokens) == answer and len(tokens) > 10
        kinds = {e.data["event"] for e in logged if e.event == "events"}
        assert {"on_chain_start", "on_chat_model_stream", "on_tool_start"} <= kinds
        assert [list(e.data) for e in logged if e.event == "updates"] == [
            ["chat"], ["tools"], ["chat"]]
        # the tokens are logged as the model makes them, before its node ends
        answer_node_end = [k for k, e in enumerate(logged) if e.event == "updates"][-1]
        first_token = next(k for k, e in enumerate(logged) if e.event == "messages"
                           and e.data[0]["content"].startswith("Here"))
        assert first_token < answer_node_end - 10


async def test_a_graph_a_stategraph_or_a_factory_is_served_as_it_is(make_app: AppFactory):
    executions: dict[str, int] = {}
    graph = _counting(executions)
    app = make_app()
    app.add_graph("compiled", graph)
    app.add_graph("builder", graph.builder)
    app.add_graph("factory", lambda config: graph)
    with pytest.raises(ValueError, match="already registered"):
        app.add_graph("compiled", graph)
    with pytest.raises(ConfigError, match="is an int, not a graph"):
        app.add_graph("number", 7)
    async with app:
        for graph_id in ("compiled", "builder", "factory"):
            run = await app.runs.create(None, graph_id, {"x": 1, "seen": []})
            assert await app.runs.join(run.run_id) == {"x": 4, "seen": ["add:nobody", "double"]}
    assert executions == {"add": 3, "double": 3}


async def test_a_graph_that_raises_ends_its_run_error_with_where(make_app: AppFactory):
    def boom(state: Count) -> dict[str, Any]:
        raise ValueError("the node failed")

    builder = StateGraph(Count)
    builder.add_node("boom", boom)
    builder.add_edge(START, "boom")

    def broken_factory() -> Pregel:
        raise RuntimeError("the factory failed")

    app = make_app(max_attempts=1)
    app.add_graph("boom", builder)
    app.add_graph("broken", broken_factory)
    async with app:
        for graph_id, error in (("boom", "ValueError: the node failed"),
                                ("broken", "RuntimeError: the factory failed")):
            run = await app.runs.create(None, graph_id, {"x": 1, "seen": []})
            with pytest.raises(RunFailed):
                await app.runs.join(run.run_id)
            ended = await app.runs.get(run.run_id)
            assert (ended.status, ended.error) == (RunStatus.ERROR, error)
            assert ended.traceback is not None and error.split(":")[0] in ended.traceback
