"""``/assistants`` (``runplane.server.assistants``): the registered workflows, and an
unknown one."""

from __future__ import annotations

import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from http_app import WORKFLOWS


async def test_assistants_are_the_registered_workflows(client: LangGraphClient) -> None:
    found = await client.assistants.search(limit=100)
    assert sorted(a["assistant_id"] for a in found) == sorted(WORKFLOWS)
    assert all(a["graph_id"] == a["assistant_id"] for a in found)
    echo = await client.assistants.get("echo")
    assert echo["assistant_id"] == "echo" and echo["graph_id"] == "echo"
    graph = await client.assistants.get_graph("echo")
    assert isinstance(graph.get("nodes"), list) and isinstance(graph.get("edges"), list)
    schemas = await client.assistants.get_schemas("echo")
    assert schemas["graph_id"] == "echo"


async def test_unknown_assistant_is_not_found(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get("no-such-workflow")
