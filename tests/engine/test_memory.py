"""The long-term memory store (``app.memory``; ``runplane.memory``): items under namespaces
and keys, filters, namespaces, times to live (a manual clock and the worker's reap), owners'
spaces, and the same store inside a graph's nodes and a workflow's ``ctx.store``."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.config import get_store
from langgraph.graph import START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from runplane import Context, Runplane
from runplane.clock import ManualClock
from runplane.errors import InvalidInput
from runplane.models import Caller

from support import AppFactory
from support.graphs import Compiled

ADA, BOB = Caller("ada"), Caller("bob")


class State(TypedDict, total=False):
    user: str
    found: list[str]


async def remember(state: State, runtime: Runtime) -> dict[str, Any]:
    """An async node: writes through ``runtime.store``, reads what is there."""
    store = runtime.store
    assert store is not None
    await store.aput(("memories", state["user"]), "likes", {"text": "tea", "n": 1})
    found = await store.asearch(("memories",), filter={"n": {"$gte": 1}})
    return {"found": [f"{'/'.join(i.namespace)}:{i.key}" for i in found]}


def recall(state: State) -> dict[str, Any]:
    """A sync node (run in a thread): the store's sync methods."""
    store = get_store()
    store.put(("memories", state["user"]), "sync", {"text": "coffee", "n": 2})
    item = store.get(("memories", state["user"]), "likes")
    return {"found": [*state.get("found", []), item.value["text"] if item else "none"]}


def _app(make_app: AppFactory, **kwargs: Any) -> Runplane:
    app = make_app(**kwargs)
    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_node("recall", recall)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "recall")
    app.add_graph("memo", Compiled("memo", builder.compile()))

    @app.workflow("notes")
    async def notes(ctx: Context, input: Any) -> Any:
        await ctx.store.aput(("notes",), input["key"], {"text": input["text"]})
        return [i.key for i in await ctx.store.asearch(("notes",))]

    return app


async def test_items_are_put_read_replaced_searched_and_deleted(make_app: AppFactory):
    clock = ManualClock()
    async with _app(make_app, clock=clock) as app:
        await app.memory.put(["docs", "u1"], "a", {"title": "A", "n": 1})
        clock.advance(1)
        await app.memory.put(["docs", "u1"], "b", {"title": "B", "n": 5})
        clock.advance(1)
        await app.memory.put(["docs", "u2"], "c", {"title": "C", "n": 3, "tag": "x"})
        first = await app.memory.get(["docs", "u1"], "a")
        assert (first.namespace, first.key, first.value) == (("docs", "u1"), "a",
                                                             {"title": "A", "n": 1})
        clock.advance(1)
        await app.memory.put(["docs", "u1"], "a", {"title": "A2", "n": 1})
        again = await app.memory.get(["docs", "u1"], "a")
        assert again.value["title"] == "A2" and again.created_at == first.created_at
        assert again.updated_at > first.updated_at

        def keys(items: list[Any]) -> list[str]:
            return [i.key for i in items]

        assert keys(await app.memory.search(["docs"])) == ["a", "c", "b"]  # newest first
        assert keys(await app.memory.search(["docs", "u1"])) == ["a", "b"]
        assert keys(await app.memory.search(["doc"])) == []  # whole labels, not text
        assert keys(await app.memory.search()) == ["a", "c", "b"]
        assert keys(await app.memory.search(["docs"], filter={"tag": "x"})) == ["c"]
        assert keys(await app.memory.search(["docs"], filter={"n": {"$gt": 1}})) == ["c", "b"]
        assert keys(await app.memory.search(["docs"], filter={"n": {"$gt": 1, "$lt": 5}})) \
            == ["c"]
        assert keys(await app.memory.search(["docs"], filter={"title": {"$ne": "B"}},
                                            limit=1, offset=1)) == ["c"]
        assert keys(await app.memory.search(["docs"], filter={"title": {"$gt": 2}})) == []
        assert keys(await app.memory.search(["docs"], limit=2, offset=1)) == ["c", "b"]

        await app.memory.delete(["docs", "u1"], "a")
        await app.memory.delete(["docs", "u1"], "a")  # nothing to delete: no error
        assert await app.memory.get(["docs", "u1"], "a") is None


async def test_namespaces_are_listed_by_prefix_suffix_and_depth(make_app: AppFactory):
    async with _app(make_app) as app:
        for namespace in (["a", "b", "c"], ["a", "b", "d"], ["a", "x"], ["z", "b", "c"]):
            await app.memory.put(namespace, "k", {})
        assert await app.memory.namespaces() == [
            ("a", "b", "c"), ("a", "b", "d"), ("a", "x"), ("z", "b", "c")]
        assert await app.memory.namespaces(prefix=["a", "b"]) == [("a", "b", "c"),
                                                                  ("a", "b", "d")]
        assert await app.memory.namespaces(prefix=["*", "b"]) == [
            ("a", "b", "c"), ("a", "b", "d"), ("z", "b", "c")]
        assert await app.memory.namespaces(suffix=["c"]) == [("a", "b", "c"), ("z", "b", "c")]
        assert await app.memory.namespaces(suffix=["b", "*"]) == [
            ("a", "b", "c"), ("a", "b", "d"), ("z", "b", "c")]
        assert await app.memory.namespaces(max_depth=2) == [("a", "b"), ("a", "x"),
                                                            ("z", "b")]
        assert await app.memory.namespaces(prefix=["a"], max_depth=1) == [("a",)]
        assert await app.memory.namespaces(limit=1, offset=1) == [("a", "b", "d")]


async def test_bad_items_and_searches_are_refused_and_store_nothing(make_app: AppFactory):
    async with _app(make_app) as app:
        bad_puts = [
            ([], "k", {}, "namespace"),
            (["a.b"], "k", {}, "namespace"),
            (["a", ""], "k", {}, "namespace"),
            (["*"], "k", {}, "namespace"),
            ("docs", "k", {}, "namespace"),
            (["langgraph"], "k", {}, "namespace"),
            (["a"], "", {}, "key"),
            (["a"], "k", ["not", "an", "object"], "value"),
            (["a"], "k", {"x": float("nan")}, "value"),
        ]
        for namespace, key, value, field in bad_puts:
            with pytest.raises(InvalidInput) as refused:
                await app.memory.put(namespace, key, value)
            assert refused.value.field.startswith(field), (namespace, key, value)
        for ttl in (0, -1, float("inf"), True, "10"):
            with pytest.raises(InvalidInput, match="ttl"):
                await app.memory.put(["a"], "k", {}, ttl=ttl)
        with pytest.raises(InvalidInput, match="unknown comparison"):
            await app.memory.search(["a"], filter={"n": {"$regex": "x"}})
        with pytest.raises(InvalidInput, match="semantic search"):
            await app.memory.search(["a"], query="what does ada like")
        with pytest.raises(InvalidInput, match="max_depth"):
            await app.memory.namespaces(max_depth=0)
        assert await app.memory.namespaces() == []


async def test_an_item_lives_its_ttl_after_its_last_write_or_read(make_app: AppFactory):
    clock = ManualClock()
    async with _app(make_app, clock=clock) as app:
        await app.memory.put(["t"], "read", {}, ttl=10)
        await app.memory.put(["t"], "unread", {}, ttl=10)
        await app.memory.put(["t"], "kept", {})
        clock.advance(599)
        assert await app.memory.get(["t"], "read") is not None  # its time starts again
        assert await app.memory.get(["t"], "unread", refresh_ttl=False) is not None
        clock.advance(1)
        assert await app.memory.get(["t"], "unread") is None  # expired: never answered
        assert [i.key for i in await app.memory.search(["t"], refresh_ttl=False)] == [
            "kept", "read"]
        assert app.worker is not None
        await app.worker.reap()  # deletes it: not there even for a clock before its end
        assert await app.store.get_item("", ["t"], "unread", 0.0, refresh=False) is None
        assert await app.store.get_item("", ["t"], "read", 0.0, refresh=False) is not None
        clock.advance(598)  # 599 s after the read
        assert [i.key for i in await app.memory.search(["t"])] == ["kept", "read"]
        clock.advance(599)  # the search refreshed it too
        assert await app.memory.get(["t"], "read") is not None
        clock.advance(601)
        assert [i.key for i in await app.memory.search(["t"])] == ["kept"]
        await app.worker.reap()
        assert await app.store.get_item("", ["t"], "read", 0.0, refresh=False) is None
        assert await app.store.expire_items(clock.now() + 10**6) == 0  # "kept" has no ttl


async def test_each_owner_has_a_space_of_its_own(make_app: AppFactory):
    async with _app(make_app) as app:
        await app.memory.put(["prefs"], "theme", {"v": "dark"}, caller=ADA)
        await app.memory.put(["prefs"], "theme", {"v": "light"}, caller=BOB)
        assert (await app.memory.get(["prefs"], "theme", caller=ADA)).value == {"v": "dark"}
        assert (await app.memory.get(["prefs"], "theme", caller=BOB)).value == {"v": "light"}
        assert await app.memory.get(["prefs"], "theme") is None  # without a key: shared
        await app.memory.delete(["prefs"], "theme", caller=BOB)
        assert (await app.memory.get(["prefs"], "theme", caller=ADA)).value == {"v": "dark"}
        assert await app.memory.namespaces(caller=BOB) == []
        assert [i.key for i in await app.memory.search(caller=ADA)] == ["theme"]


async def test_a_graphs_nodes_and_a_workflow_use_their_runs_owners_store(
    make_app: AppFactory
):
    async with _app(make_app) as app:
        run = await app.runs.create(None, "memo", {"user": "u1"}, caller=ADA)
        assert await app.runs.join(run.run_id) == {
            "user": "u1", "found": ["memories/u1:likes", "tea"]}
        found = await app.memory.search(["memories", "u1"], caller=ADA)
        assert sorted(i.key for i in found) == ["likes", "sync"]
        assert await app.memory.search(["memories"]) == []  # not in the shared space

        run = await app.runs.create(None, "notes", {"key": "n1", "text": "hi"})
        assert await app.runs.join(run.run_id) == ["n1"]
        assert (await app.memory.get(["notes"], "n1")).value == {"text": "hi"}
