"""A LangGraph project served by ``runplane serve --config``, driven through ``langgraph_sdk``
as its own clients drive the LangGraph server: graphs by file path and by module, a
factory taking the config, an async context manager factory, a subgraph; assistants with
the LangGraph server's ids, drawn graphs and schemas; runs streamed in LangGraph's modes."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import APIStatusError

from acceptance.http.helpers import Server, runplane_cli, serve_graph_project

from support.databases import STORES

ANSWER = "Here is what I found: runplane runs agents as durable runs whose stop button " \
         "always works."


@pytest.fixture(scope="module", params=STORES)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The graph project, served for this module (``client`` and ``http`` talk to it)."""
    yield from serve_graph_project(request, tmp_path_factory, "graphs")


async def _parts(stream: AsyncIterator[Any]) -> list[tuple[str, Any]]:
    return [(part.event, part.data) async for part in stream]


async def test_each_graph_is_an_assistant_with_the_langservers_id(
        client: LangGraphClient):
    assistants = {a["graph_id"]: a for a in await client.assistants.search(limit=100)}
    assert {"agent", "counter", "configured", "managed", "nested"} <= set(assistants)
    counter = assistants["counter"]
    assert counter["assistant_id"] == str(uuid.uuid5(
        uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8"), "counter"))
    assert (await client.assistants.get(counter["assistant_id"]))["graph_id"] == "counter"
    drawn = await client.assistants.get_graph("nested", xray=True)
    assert {"inner:shout", "exclaim"} <= {node["id"] for node in drawn["nodes"]}
    schemas = await client.assistants.get_schemas("counter")
    assert schemas["input_schema"]["properties"] == {
        "x": {"title": "X", "type": "integer"}, "by": {"title": "By", "type": "string"}}


async def test_a_chat_graph_streams_its_tokens_as_messages_tuples(client: LangGraphClient):
    thread = await client.threads.create()
    parts = await _parts(client.runs.stream(
        thread["thread_id"], "agent",
        input={"messages": [{"role": "user", "content": "what is runplane?"}]},
        stream_mode=["values", "messages-tuple", "custom"]))
    names = [name for name, _ in parts]
    assert names[0] == "metadata" and names[-1] == "end"
    tokens = [data[0]["content"] for name, data in parts
              if name == "messages" and data[1]["langgraph_node"] == "chat"]
    assert "".join(tokens) == ANSWER and len(tokens) > 10
    final = [data for name, data in parts if name == "values"][-1]
    assert final["messages"][-1]["content"] == ANSWER
    found = await client.threads.search(metadata={"graph_id": "agent"}, limit=100)
    assert thread["thread_id"] in {t["thread_id"] for t in found}
    assert (await client.threads.get(thread["thread_id"]))["values"] == final


async def test_module_factory_and_managed_graphs_run_with_the_runs_config(
        client: LangGraphClient):
    done = await client.runs.wait(None, "counter", input={"x": 1},
                                  config={"configurable": {"user": "ada"}})
    assert done == {"x": 2, "by": "ada"}
    assert await client.runs.wait(None, "configured", input={"x": 1},
                                  config={"configurable": {"step": 5}}) == {"x": 6, "by": "nobody"}
    assert await client.runs.wait(None, "managed", input={"x": 1}) == {"x": 101, "by": "nobody"}


async def test_subgraph_chunks_stream_under_their_namespace(client: LangGraphClient):
    parts = await _parts(client.runs.stream(None, "nested", input={"text": "hi"},
                                            stream_mode=["updates"], stream_subgraphs=True))
    updates = [(name, data) for name, data in parts if name.startswith("updates")]
    assert [name.split("|")[0] for name, _ in updates] == ["updates"] * 3
    inner = [data for name, data in updates if "|" in name]
    assert inner == [{"shout": {"text": "HI"}}]
    assert updates[-1] == ("updates", {"exclaim": {"text": "HI!"}})


async def test_custom_chunks_and_an_unknown_mode(client: LangGraphClient):
    parts = await _parts(client.runs.stream(None, "counter", input={"x": 1},
                                            stream_mode=["custom"]))
    assert [data for name, data in parts if name == "custom"] == [{"adding": 1}]
    with pytest.raises(APIStatusError, match="unknown stream mode 'tokens'; allowed: values") \
            as refused:
        await _parts(client.runs.stream(None, "counter", input={"x": 1},
                                        stream_mode=["tokens"]))  # type: ignore[list-item]
    assert refused.value.status_code == 422


ORIGIN = "http://localhost:3000"


async def _preflighted(http: httpx.AsyncClient, method: str, path: str,
                       **kwargs: Any) -> httpx.Response:
    """A browser's call from the UI's origin: the preflight, then the call."""
    preflight = await http.options(path, headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    answer = await http.request(method, path, headers={"Origin": ORIGIN}, **kwargs)
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    return answer


def _sse(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line
                      and not line.startswith(":"))
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_agent_chat_uis_conversation(server: Server):
    """The calls agent-chat-ui makes, in its order, from its own origin."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        assert (await http.get("/info", headers={"Origin": ORIGIN})).status_code == 200
        searched = await _preflighted(http, "POST", "/threads/search",
                                      json={"metadata": {"graph_id": "agent"}, "limit": 100})
        assert searched.status_code == 200
        thread = (await _preflighted(http, "POST", "/threads", json={})).json()
        path = f"/threads/{thread['thread_id']}"
        checkpoint = None
        for turn, question in enumerate(("what is runplane?", "and langgraph?"), 1):
            body = {"assistant_id": "agent", "stream_mode": ["values", "messages-tuple",
                                                             "custom"],
                    "stream_resumable": True, "on_disconnect": "continue",
                    "input": {"messages": [{"type": "human", "content": question}]}}
            if checkpoint is not None:
                body["checkpoint"] = checkpoint
            streamed = await _preflighted(http, "POST", f"{path}/runs/stream", json=body)
            assert streamed.status_code == 200, streamed.text
            events = _sse(streamed.text)
            assert events[0][0] == "metadata" and events[-1][0] == "end"
            values = [data for name, data in events if name == "values"][-1]
            assert len(values["messages"]) == 4 * turn
            history = await _preflighted(http, "POST", f"{path}/history", json={"limit": 10})
            states = history.json()
            assert states[0]["values"] == values and states[0]["next"] == []
            assert len(states) == 10 if turn == 2 else 5 <= len(states) < 10
            checkpoint = states[0]["checkpoint"]
        assert "langgraph" in values["messages"][-1]["content"].lower()
        found = (await http.post("/threads/search", json={"metadata": {"graph_id": "agent"}}))
        assert thread["thread_id"] in {t["thread_id"] for t in found.json()}


async def test_a_run_names_its_threads_head_or_null_ids_and_no_other_thread_s_checkpoint(
        client: LangGraphClient):
    thread = await client.threads.create()
    for x in (1, 2):
        await client.runs.wait(thread["thread_id"], "counter", input={"x": x})
    states = await client.threads.get_history(thread["thread_id"], limit=10)
    head = states[0]["checkpoint"]
    assert await client.runs.wait(thread["thread_id"], "counter", input={"x": 5},
                                  checkpoint=head) == {"x": 6, "by": "nobody"}
    other = await client.threads.create()
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await client.runs.wait(other["thread_id"], "counter", input={"x": 5},
                               checkpoint_id=head["checkpoint_id"])
    assert refused.value.response.status_code == 422
    assert refused.value.response.json() == {"field": "checkpoint_id", "detail": (
        f"checkpoint {head['checkpoint_id']!r} is not one of the thread's")}
    null = {"thread_id": None, "checkpoint_ns": "", "checkpoint_id": None}
    assert await client.runs.wait(thread["thread_id"], "counter", input={"x": 7},
                                  checkpoint=null) == {"x": 8, "by": "nobody"}


async def test_state_and_history_come_from_the_checkpoints(client: LangGraphClient):
    thread = await client.threads.create()
    await client.runs.wait(thread["thread_id"], "nested", input={"text": "hi"})
    state = await client.threads.get_state(thread["thread_id"])
    assert state["values"] == {"text": "HI!"} and state["next"] == []
    assert state["metadata"]["source"] == "loop"
    history = await client.threads.get_history(thread["thread_id"], limit=10)
    assert [s["values"] for s in history] == [
        {"text": "HI!"}, {"text": "HI"}, {"text": "hi"}, {}]
    assert history[0]["checkpoint"] == state["checkpoint"]
    assert history[1]["checkpoint"]["checkpoint_id"] == \
        state["parent_checkpoint"]["checkpoint_id"]
    older = await client.threads.get_state(thread["thread_id"],
                                           checkpoint_id=history[2]["checkpoint"]["checkpoint_id"])
    assert older["values"] == {"text": "hi"} and older["next"] == ["inner"]
    before = await client.threads.get_history(thread["thread_id"], limit=10,
                                              before=history[1]["checkpoint"])
    assert [s["values"] for s in before] == [{"text": "hi"}, {}]


async def test_a_graphs_subgraphs_are_described_by_namespace(client: LangGraphClient):
    subgraphs = await client.assistants.get_subgraphs("nested")
    assert list(subgraphs) == ["inner"]
    assert subgraphs["inner"]["input_schema"]["properties"] == {
        "text": {"title": "Text", "type": "string"}}
    assert await client.assistants.get_subgraphs("nested", namespace="inner") == {
        "inner": subgraphs["inner"]}
    assert await client.assistants.get_subgraphs("counter") == {}


async def test_a_graph_runs_stream_replays_from_the_log(server: Server,
                                                        client: LangGraphClient):
    """join_stream after the run ended replays its chunks; Last-Event-ID resumes after the
    last one a client saw, as for any run."""
    thread = await client.threads.create()
    run = await client.runs.create(
        thread["thread_id"], "agent", stream_mode=["messages-tuple", "updates"],
        input={"messages": [{"role": "user", "content": "what is langgraph?"}]})
    await client.runs.join(thread["thread_id"], run["run_id"])
    path = f"/threads/{thread['thread_id']}/runs/{run['run_id']}/stream"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        whole = (await http.get(path, params={"stream_mode": ["messages-tuple", "updates"]}))
        ids = [int(line[4:]) for line in whole.text.splitlines() if line.startswith("id: ")]
        parts = _sse(whole.text)
        tokens = [d[0]["content"] for n, d in parts if n == "messages" and
                  d[1]["langgraph_node"] == "chat" and d[0]["content"]]
        assert "".join(tokens).startswith("Here is what I found: LangGraph")
        middle = ids[len(ids) // 2]
        rest = await http.get(path, headers={"Last-Event-ID": str(middle)},
                              params={"stream_mode": ["messages-tuple", "updates"]})
    replayed = _sse(rest.text)
    assert replayed[0][0] == "metadata" and replayed[-1][0] == "end"
    assert replayed[1:] == parts[len(parts) - len(replayed) + 1:]
    assert all(int(line[4:]) > middle for line in rest.text.splitlines()
               if line.startswith("id: "))


async def test_runs_tail_prints_a_graph_runs_log(client: LangGraphClient, server: Server):
    """``runplane runs tail`` joins with the ``log`` mode: every stored event, whatever
    stream modes the run logged."""
    thread = (await client.threads.create())["thread_id"]
    await client.runs.wait(thread, "steps", input={"trail": []})
    [run] = await client.runs.list(thread)
    tail = await asyncio.to_thread(runplane_cli, server, "tail", run["run_id"], "--json")
    assert tail.returncode == 0, tail.stderr
    kinds = [json.loads(line)["type"] for line in tail.stdout.splitlines()]
    assert kinds[:2] == ["run:created", "run:start"] and kinds[-1] == "run:complete"
    assert "values" in kinds
    refused = await client.http.client.get(f"/runs/{run['run_id']}/stream",
                                           params={"stream_mode": "log"})
    assert refused.status_code == 200  # a join may ask for it; a run's creation may not
    created = await client.http.client.post("/runs", json={"assistant_id": "steps",
                                                          "stream_mode": "log"})
    assert created.status_code == 422 and "log" in created.json()["detail"]
