"""Serving a LangGraph graph in a test app without a project file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel


@dataclass(frozen=True)
class Compiled:
    """A graph source serving one compiled graph (the loader's simplest kind)."""

    graph_id: str
    graph: Pregel
    description: str | None = None

    @asynccontextmanager
    async def build(self, config: RunnableConfig) -> AsyncIterator[Pregel]:
        yield self.graph
