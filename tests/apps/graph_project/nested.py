"""A graph with a subgraph, served by file path."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict


class Inner(TypedDict, total=False):
    text: str


def shout(state: Inner) -> dict[str, Any]:
    return {"text": state["text"].upper()}


inner = StateGraph(Inner)
inner.add_node("shout", shout)
inner.add_edge(START, "shout")
inner.add_edge("shout", END)


def exclaim(state: Inner) -> dict[str, Any]:
    return {"text": state["text"] + "!"}


outer = StateGraph(Inner)
outer.add_node("inner", inner.compile())
outer.add_node("exclaim", exclaim)
outer.add_edge(START, "inner")
outer.add_edge("inner", "exclaim")
outer.add_edge("exclaim", END)
graph = outer.compile()
