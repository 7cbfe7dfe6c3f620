"""A graph that remembers: its node writes to and searches the long-term memory store
(``runtime.store``), as a LangGraph agent keeps what it learnt about a user."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict


class Memo(TypedDict, total=False):
    user: str
    fact: str
    known: list[str]


async def remember(state: Memo, runtime: Runtime) -> dict[str, Any]:
    store = runtime.store
    assert store is not None, "the server gives every run a store"
    namespace = ("memories", state["user"])
    await store.aput(namespace, f"fact-{len(await store.asearch(namespace))}",
                     {"text": state["fact"]})
    return {"known": sorted(i.value["text"] for i in await store.asearch(namespace))}


builder = StateGraph(Memo)
builder.add_node("remember", remember)
builder.add_edge(START, "remember")
builder.add_edge("remember", END)
graph = builder.compile()
