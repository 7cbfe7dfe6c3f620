"""Assistants made through the API (``app.assistants``): versions, what a run of one sees,
deletion, search, and whose they are; beside the workflows' and graphs' own."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from runplane import Context, Runplane
from runplane.assistants import default_assistant_id
from runplane.errors import (
    AssistantBusy,
    AssistantExists,
    AssistantNotFound,
    BuiltinAssistant,
    InvalidInput,
    UnknownWorkflow,
)
from runplane.models import Caller, RunStatus

from support import AppFactory, Gate
from support.graphs import Compiled

ADA, BOB = Caller("ada"), Caller("bob")


class State(TypedDict):
    said: str


def _says(state: State, config: RunnableConfig, runtime: Runtime[dict]) -> dict[str, str]:
    """What the run was configured with: its configurable ``model`` and ``tone``, and its
    context's ``lang``."""
    configurable = config["configurable"]
    context = runtime.context or {}
    return {"said": f"{configurable.get('model')}/{configurable.get('tone')}/"
                    f"{context.get('lang')}/{configurable.get('assistant_id')}"}


def _app(make_app: AppFactory, **kwargs: Any) -> Runplane:
    app = make_app(**kwargs)
    builder = StateGraph(State, context_schema=dict)
    builder.add_node("say", _says)
    builder.add_edge(START, "say")
    app.add_graph("talker", Compiled("talker", builder.compile()))

    @app.workflow("echo_config")
    async def echo_config(ctx: Context, input: Any) -> dict[str, Any]:
        """Answers what it was configured with."""
        return {"config": ctx.config, "context": ctx.context}

    return app


async def _run(app: Runplane, assistant_id: str, **kwargs: Any) -> Any:
    run = await app.runs.create(None, assistant_id, {"said": ""}, **kwargs)
    return await app.runs.join(run.run_id)


async def test_a_run_uses_its_assistants_current_version_under_its_own_config(
    make_app: AppFactory
):
    async with _app(make_app) as app:
        made = await app.assistants.create(
            "talker", config={"configurable": {"model": "m1", "tone": "dry"}},
            context={"lang": "fr"}, name="French talker", metadata={"team": "x"})
        assert (made.version, made.graph_id, made.name, made.builtin) == (
            1, "talker", "French talker", False)
        aid = made.assistant_id
        assert await _run(app, aid) == {"said": f"m1/dry/fr/{aid}"}
        # the run's own config and context win, key by key (configurable too)
        assert await _run(app, aid, config={"configurable": {"tone": "warm"}},
                          context={"lang": "de"}) == {"said": f"m1/warm/de/{aid}"}
        # the graph's own assistant has none of it
        assert await _run(app, "talker") == {
            "said": f"None/None/None/{default_assistant_id('talker')}"}

        v2 = await app.assistants.update(aid, config={"configurable": {"model": "m2"}},
                                         metadata={"stage": "beta"})
        assert (v2.version, v2.name, v2.context, v2.metadata) == (
            2, "French talker", {"lang": "fr"}, {"team": "x", "stage": "beta"})
        assert await _run(app, aid) == {"said": f"m2/None/fr/{aid}"}

        back = await app.assistants.set_latest(aid, 1)
        assert (back.version, back.config) == (1, {"configurable": {"model": "m1",
                                                                    "tone": "dry"}})
        assert await _run(app, aid) == {"said": f"m1/dry/fr/{aid}"}
        # an update after going back is numbered after the last version, not the current
        v3 = await app.assistants.update(aid, name="Talker")
        assert (v3.version, v3.config["configurable"]["model"]) == (3, "m1")
        versions = await app.assistants.versions(aid)
        assert [(v.version, v.name) for v in versions] == [
            (3, "Talker"), (2, "French talker"), (1, "French talker")]
        assert [v.version for v in await app.assistants.versions(
            aid, metadata={"stage": "beta"})] == [2]
        assert [v.version for v in await app.assistants.versions(aid, limit=1, offset=1)] \
            == [2]
        with pytest.raises(AssistantNotFound, match="version 9"):
            await app.assistants.set_latest(aid, 9)
        with pytest.raises(InvalidInput, match="version"):  # beyond the column's range
            await app.assistants.set_latest(aid, 3_000_000_000)
        assert (await app.assistants.get(aid)).version == 3


async def test_a_workflows_assistant_configures_its_runs(make_app: AppFactory):
    async with _app(make_app) as app:
        made = await app.assistants.create("echo_config", config={"configurable": {"k": 1}},
                                           context={"lang": "fr"})
        assert await _run(app, made.assistant_id, config={"tags": ["t"]}) == {
            "config": {"configurable": {"k": 1}, "tags": ["t"]}, "context": {"lang": "fr"}}
        assert await _run(app, "echo_config") == {"config": {}, "context": {}}
        run = await app.runs.create(None, made.assistant_id, {})
        assert run.assistant_id == made.assistant_id  # the run names its assistant
        await app.runs.join(run.run_id)


async def test_creation_refuses_what_a_client_got_wrong_and_keeps_ids_unique(
    make_app: AppFactory
):
    async with _app(make_app) as app:
        with pytest.raises(UnknownWorkflow, match="no-such-graph"):
            await app.assistants.create("no-such-graph")
        with pytest.raises(InvalidInput, match="recursion_limit"):
            await app.assistants.create("talker", config={"recursion_limit": "x"})
        with pytest.raises(InvalidInput, match="context"):
            await app.assistants.create("talker", context=["not", "an", "object"])
        with pytest.raises(InvalidInput, match="if_exists"):
            await app.assistants.create("talker", if_exists="replace")
        assert await app.assistants.count() == 2  # the code's own two: nothing was made

        first = await app.assistants.create("talker", assistant_id="a1", name="one")
        assert first.name == "one"
        with pytest.raises(AssistantExists):
            await app.assistants.create("talker", assistant_id="a1", name="two")
        same = await app.assistants.create("talker", assistant_id="a1", name="two",
                                           if_exists="do_nothing")
        assert (same.name, same.version) == ("one", 1)
        # a workflow's or graph's own assistant: its id is taken, and it cannot change
        own = default_assistant_id("talker")
        with pytest.raises(AssistantExists):
            await app.assistants.create("talker", assistant_id=own)
        for change in (app.assistants.update(own, name="x"), app.assistants.delete(own),
                       app.assistants.set_latest("echo_config", 1)):
            with pytest.raises(BuiltinAssistant):
                await change
        assert (await app.assistants.get("talker")).metadata == {"created_by": "system"}
        assert [v.version for v in await app.assistants.versions("talker")] == [1]


async def test_an_assistant_with_an_active_run_is_not_deleted(make_app: AppFactory):
    gate = Gate()
    async with _app(make_app) as app:

        @app.workflow("parks")
        async def parks(ctx: Context, input: Any) -> str:
            await ctx.step("wait", gate)
            return "done"

        made = await app.assistants.create("parks")
        run = await app.runs.create(None, made.assistant_id, {})
        await gate.wait_reached()
        with pytest.raises(AssistantBusy, match=run.run_id):
            await app.assistants.delete(made.assistant_id)
        assert (await app.assistants.get(made.assistant_id)).version == 1
        gate.open()
        assert await app.runs.join(run.run_id) == "done"
        await app.assistants.delete(made.assistant_id)
        with pytest.raises(AssistantNotFound):
            await app.assistants.get(made.assistant_id)
        with pytest.raises(UnknownWorkflow):  # its runs are kept; new ones are refused
            await app.runs.create(None, made.assistant_id, {})
        assert (await app.runs.get(run.run_id)).status is RunStatus.SUCCESS


async def test_deleting_with_its_threads_deletes_the_threads_its_runs_tagged(
    make_app: AppFactory
):
    async with _app(make_app) as app:
        made = await app.assistants.create("talker")
        kept = await app.assistants.create("talker")
        mine = await app.runs.create(None, made.assistant_id, {"said": ""})
        other = await app.runs.create(None, kept.assistant_id, {"said": ""})
        for run in (mine, other):
            await app.runs.join(run.run_id)
        assert (await app.threads.get(mine.thread_id)).metadata == {
            "graph_id": "talker", "assistant_id": made.assistant_id}
        await app.assistants.delete(made.assistant_id, delete_threads=True)
        with pytest.raises(LookupError):
            await app.threads.get(mine.thread_id)
        with pytest.raises(LookupError):
            await app.runs.get(mine.run_id)
        assert (await app.threads.get(other.thread_id)).thread_id == other.thread_id


async def test_search_and_count_filter_sort_and_page(make_app: AppFactory):
    async with _app(make_app) as app:
        for name, team in (("Alpha bot", "x"), ("beta BOT", "y"), ("gamma", "x")):
            await app.assistants.create("talker", name=name, metadata={"team": team})
        names = [a.name for a in await app.assistants.search(sort_by="name",
                                                             sort_order="asc", limit=10)]
        assert names == ["Alpha bot", "beta BOT", "echo_config", "gamma", "talker"]
        assert [a.name for a in await app.assistants.search(name="bot", sort_by="name",
                                                            sort_order="asc")] == [
            "Alpha bot", "beta BOT"]
        assert await app.assistants.count(name="BOT") == 2
        assert sorted(a.name for a in await app.assistants.search(metadata={"team": "x"})) \
            == ["Alpha bot", "gamma"]
        assert await app.assistants.count(graph_id="talker") == 4  # three and its own
        assert [a.name for a in await app.assistants.search(
            metadata={"created_by": "system"}, sort_by="name", sort_order="asc")] == [
            "echo_config", "talker"]
        page = await app.assistants.search(sort_by="name", sort_order="desc", limit=2,
                                           offset=1)
        assert [a.name for a in page] == ["gamma", "echo_config"]
        with pytest.raises(InvalidInput, match="sort_by"):
            await app.assistants.search(sort_by="secret")


async def test_an_owners_assistants_are_invisible_to_others(make_app: AppFactory):
    async with _app(make_app) as app:
        made = await app.assistants.create("talker", name="ada's", caller=ADA)
        aid = made.assistant_id
        assert made.owner == "ada"
        assert (await app.assistants.get(aid, caller=ADA)).name == "ada's"
        for attempt in (app.assistants.get(aid, caller=BOB),
                        app.assistants.update(aid, name="bob's", caller=BOB),
                        app.assistants.set_latest(aid, 1, caller=BOB),
                        app.assistants.delete(aid, caller=BOB),
                        app.assistants.versions(aid, caller=BOB)):
            with pytest.raises(AssistantNotFound):
                await attempt
        with pytest.raises(UnknownWorkflow):
            await app.runs.create(None, aid, {"said": ""}, caller=BOB)
        with pytest.raises(AssistantNotFound):
            await app.assistants.code(aid, caller=BOB)
        # bob cannot take its id either, even with do_nothing
        with pytest.raises(AssistantExists):
            await app.assistants.create("talker", assistant_id=aid, if_exists="do_nothing",
                                        caller=BOB)
        assert all(a.builtin for a in await app.assistants.search(caller=BOB))
        assert await app.assistants.count(caller=BOB) == 2
        assert await app.assistants.count(caller=ADA) == 3
        assert await app.assistants.count() == 3  # no caller: the box's own admin
        run = await app.runs.create(None, aid, {"said": ""}, caller=ADA)
        assert await app.runs.join(run.run_id) == {"said": f"None/None/None/{aid}"}
        assert (await app.assistants.get(aid, caller=ADA)).name == "ada's"
