"""``/store`` through ``langgraph_sdk`` (``client.store``) on a served LangGraph project:
items, searches, namespaces, a time to live, refusals, and a graph's node remembering
through the same store."""

from __future__ import annotations

import uuid

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from acceptance.http.helpers import Server


@pytest.fixture(scope="module")
def server(graph_server: Server) -> Server:
    """The graph project, shared with the other modules that serve it as it is."""
    return graph_server


async def test_items_through_the_sdk(client: LangGraphClient):
    root = uuid.uuid4().hex  # this test's own namespace: the server is the module's
    await client.store.put_item([root, "u1"], "a", {"title": "A", "n": 1})
    await client.store.put_item([root, "u1"], "b", {"title": "B", "n": 5}, ttl=30)
    await client.store.put_item([root, "u2"], "c", {"title": "C", "n": 3},
                                index=["title"])
    item = await client.store.get_item([root, "u1"], "a")
    assert (item["namespace"], item["key"], item["value"]) == ([root, "u1"], "a",
                                                               {"title": "A", "n": 1})
    assert item["created_at"] and item["updated_at"]
    assert await client.store.get_item([root, "u1"], "missing") is None
    found = await client.store.search_items([root], filter={"n": {"$gte": 3}})
    assert sorted(i["key"] for i in found["items"]) == ["b", "c"]
    page = await client.store.search_items([root], limit=1, offset=1)
    assert len(page["items"]) == 1
    assert (await client.store.list_namespaces(prefix=[root])) == {
        "namespaces": [[root, "u1"], [root, "u2"]]}
    assert (await client.store.list_namespaces(prefix=[root], max_depth=1)) == {
        "namespaces": [[root]]}
    assert (await client.store.list_namespaces(prefix=[root], suffix=["u2"])) == {
        "namespaces": [[root, "u2"]]}
    await client.store.delete_item([root, "u1"], "a")
    assert await client.store.get_item([root, "u1"], "a") is None


async def test_a_graphs_node_remembers_across_runs(client: LangGraphClient):
    user = uuid.uuid4().hex
    first = await client.runs.wait(None, "memo", input={"user": user, "fact": "likes tea"})
    assert first["known"] == ["likes tea"]
    second = await client.runs.wait(None, "memo", input={"user": user, "fact": "is 40"})
    assert second["known"] == ["is 40", "likes tea"]
    found = await client.store.search_items(["memories", user])
    assert sorted(i["value"]["text"] for i in found["items"]) == ["is 40", "likes tea"]


async def test_bad_requests_are_refused_and_store_nothing(http: httpx.AsyncClient):
    root = uuid.uuid4().hex
    for body in ({"namespace": [root, "a.b"], "key": "k", "value": {}},
                 {"namespace": [], "key": "k", "value": {}},
                 {"namespace": [root], "key": "k", "value": [1]},
                 {"namespace": [root], "key": "k", "value": {}, "ttl": 0},
                 {"namespace": [root], "key": "", "value": {}}):
        answer = await http.put("/store/items", json=body)
        assert answer.status_code == 422 and "detail" in answer.json(), (body, answer.text)
    for body in ({"namespace_prefix": [root], "query": "tea"},
                 {"namespace_prefix": [root], "filter": {"n": {"$like": 1}}}):
        answer = await http.post("/store/items/search", json=body)
        assert answer.status_code == 422 and "detail" in answer.json(), (body, answer.text)
    assert (await http.post("/store/namespaces", json={"prefix": [root]})).json() == {
        "namespaces": []}
