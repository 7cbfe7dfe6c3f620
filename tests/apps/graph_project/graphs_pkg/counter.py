"""Graphs of the end-to-end project, served by module path: a compiled graph, a factory
taking the run's config, and an async context manager factory entered per run."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.pregel import Pregel
from typing_extensions import TypedDict


class Count(TypedDict, total=False):
    x: int
    by: str


def _builder(step: int) -> StateGraph:
    def add(state: Count, config: RunnableConfig) -> dict[str, Any]:
        get_stream_writer()({"adding": step})
        return {"x": state["x"] + step,
                "by": config["configurable"].get("user", state.get("by", "nobody"))}

    builder = StateGraph(Count)
    builder.add_node("add", add)
    builder.add_edge(START, "add")
    builder.add_edge("add", END)
    return builder


graph = _builder(1).compile()


def make_graph(config: RunnableConfig) -> Pregel:
    """A factory: the step is the run's ``configurable.step``."""
    return _builder(int(config["configurable"].get("step", 10))).compile()


#: how many times the managed graph was entered and left, as a file can tell another process
ENTERED: list[str] = []


@contextlib.asynccontextmanager
async def managed_graph() -> AsyncIterator[Pregel]:
    ENTERED.append("enter")
    try:
        yield _builder(100).compile()
    finally:
        ENTERED.append("exit")
