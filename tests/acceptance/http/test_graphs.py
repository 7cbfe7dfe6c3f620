"""A LangGraph project served by ``runplane serve --config``, driven through ``langgraph_sdk``
as its own clients drive the LangGraph server: graphs by file path and by module, a
factory taking the config, an async context manager factory, a subgraph; assistants with
the LangGraph server's ids, drawn graphs and schemas; runs streamed in LangGraph's modes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import APIStatusError

from acceptance.http.helpers import Server, http_server

from support import APPS
from support.databases import STORES, database_for_processes

PROJECT = APPS / "graph_project" / "langgraph.json"
ANSWER = "Here is what I found: runplane runs agents as durable runs whose stop button " \
         "always works."


@pytest.fixture(scope="module", params=STORES)
def graph_server(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp(f"graphs_{request.param}")
    with (database_for_processes(request, request.param, folder, "graphs") as database,
          http_server(request.param, database, folder, "--config", str(PROJECT),
                      target=None) as server):
        yield server


@pytest.fixture
async def client(graph_server: Server) -> AsyncIterator[LangGraphClient]:
    c = get_client(url=graph_server.url, api_key=None)
    try:
        yield c
    finally:
        await c.aclose()


async def _parts(stream: AsyncIterator[Any]) -> list[tuple[str, Any]]:
    return [(part.event, part.data) async for part in stream]


async def test_each_graph_is_an_assistant_with_the_langgraph_servers_id(
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
