"""Assistants made through ``langgraph_sdk`` (``client.assistants.create/update/delete/
get_versions/set_latest/search/count``) on a served LangGraph project: what a graph's run
sees of them, and what the API refuses."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from acceptance.http.helpers import Server


@pytest.fixture(scope="module")
def server(graph_server: Server) -> Server:
    """The graph project, shared with the other modules that serve it as it is."""
    return graph_server


def _tag() -> dict[str, Any]:
    """Metadata of this test's own (the server is shared by the module's tests)."""
    return {"test": uuid.uuid4().hex}


async def _add(client: LangGraphClient, assistant_id: str, **config: Any) -> Any:
    return await client.runs.wait(None, assistant_id, input={"x": 1},
                                  config={"configurable": config} if config else None)


async def test_versions_decide_what_a_graphs_run_sees(client: LangGraphClient):
    tag = _tag()
    made = await client.assistants.create("counter", config={"configurable": {"user": "ada"}},
                                          metadata=tag, name="Ada's counter")
    aid = made["assistant_id"]
    assert (made["graph_id"], made["version"], made["name"], made["metadata"]) == (
        "counter", 1, "Ada's counter", tag)
    assert await _add(client, aid) == {"x": 2, "by": "ada"}
    assert await _add(client, aid, user="cy") == {"x": 2, "by": "cy"}  # the run's own wins

    updated = await client.assistants.update(aid, config={"configurable": {"user": "bob"}},
                                             metadata={"stage": "beta"})
    assert (updated["version"], updated["metadata"]) == (2, {**tag, "stage": "beta"})
    assert await _add(client, aid) == {"x": 2, "by": "bob"}
    assert [v["version"] for v in await client.assistants.get_versions(aid)] == [2, 1]
    assert [v["version"] for v in await client.assistants.get_versions(
        aid, metadata={"stage": "beta"})] == [2]

    back = await client.assistants.set_latest(aid, 1)
    assert (back["version"], back["config"]) == (1, {"configurable": {"user": "ada"}})
    assert (await client.assistants.get(aid))["version"] == 1
    assert await _add(client, aid) == {"x": 2, "by": "ada"}

    # a factory graph's assistant: its config reaches the factory too
    step = await client.assistants.create("configured", config={"configurable": {"step": 5}},
                                          metadata=tag)
    assert await client.runs.wait(None, step["assistant_id"], input={"x": 1}) == {
        "x": 6, "by": "nobody"}
    graph = await client.assistants.get_graph(step["assistant_id"])
    assert {n["id"] for n in graph["nodes"]} >= {"add"}
    assert (await client.assistants.get_schemas(aid))["graph_id"] == "counter"


async def test_a_thread_run_of_an_assistant_tags_its_thread(client: LangGraphClient):
    tag = _tag()
    aid = (await client.assistants.create("counter", metadata=tag))["assistant_id"]
    thread = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread, aid, input={"x": 1})
    assert (await client.threads.get(thread))["metadata"] == {
        "graph_id": "counter", "assistant_id": aid}
    assert [t["thread_id"] for t in await client.threads.search(
        metadata={"assistant_id": aid})] == [thread]
    await client.assistants.delete(aid, delete_threads=True)
    with pytest.raises(NotFoundError):
        await client.threads.get(thread)
    with pytest.raises(NotFoundError):
        await client.assistants.get(aid)


async def test_search_count_and_pages(client: LangGraphClient):
    tag = _tag()
    for name in ("beta", "Alpha", "gamma"):
        await client.assistants.create("counter", name=name, metadata=tag)
    assert await client.assistants.count(metadata=tag) == 3
    assert await client.assistants.count(metadata=tag, name="ALP") == 1
    page = await client.assistants.search(metadata=tag, sort_by="name", sort_order="asc",
                                          limit=2, response_format="object")
    assert [a["name"] for a in page["assistants"]] == ["Alpha", "beta"]
    assert page["next"] == "2"
    rest = await client.assistants.search(metadata=tag, sort_by="name", sort_order="asc",
                                          limit=2, offset=2, response_format="object")
    assert ([a["name"] for a in rest["assistants"]], rest["next"]) == (["gamma"], None)
    selected = await client.assistants.search(metadata=tag, select=["assistant_id", "name"],
                                              sort_by="name", sort_order="desc")
    assert [sorted(a) for a in selected] == [["assistant_id", "name"]] * 3
    own = await client.assistants.search(graph_id="counter", metadata={"created_by": "system"})
    assert [a["assistant_id"] for a in own] == [str(uuid.uuid5(
        uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "counter"))]


async def test_refusals(client: LangGraphClient, http: httpx.AsyncClient):
    tag = _tag()
    with pytest.raises(NotFoundError):
        await client.assistants.create("no-such-graph")
    made = await client.assistants.create("counter", metadata=tag,
                                          assistant_id=str(uuid.uuid4()))
    aid = made["assistant_id"]
    with pytest.raises(ConflictError):
        await client.assistants.create("counter", assistant_id=aid)
    again = await client.assistants.create("counter", assistant_id=aid, name="other",
                                           if_exists="do_nothing")
    assert again["name"] == made["name"]
    with pytest.raises(ConflictError):  # the graph's own assistant is the code's
        await client.assistants.update("counter", name="mine")
    with pytest.raises(ConflictError):
        await client.assistants.delete("counter")
    with pytest.raises(NotFoundError):
        await client.assistants.set_latest(aid, 7)
    for path, body in (("/assistants/search", {"sort_by": "secret"}),
                       ("/assistants", {"graph_id": "counter", "if_exists": "replace"}),
                       (f"/assistants/{aid}/latest", {"version": 0}),
                       ("/assistants", {"graph_id": "counter", "config": {"tags": [1]}})):
        answer = await http.post(path, json=body)
        assert answer.status_code == 422 and "detail" in answer.json(), (path, answer.text)
    assert await client.assistants.count(metadata=tag) == 1  # nothing else was made

    # an active (here: delayed) run keeps its assistant; once it is cancelled it may go
    run = await client.runs.create(None, aid, input={"x": 1}, after_seconds=3600)
    with pytest.raises(ConflictError):
        await client.assistants.delete(aid)
    await client.runs.cancel(run["thread_id"], run["run_id"], wait=True)
    await client.assistants.delete(aid)
    with pytest.raises(NotFoundError):
        await client.runs.create(None, aid, input={"x": 1})
