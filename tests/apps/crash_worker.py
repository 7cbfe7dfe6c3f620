"""Workflows whose steps, and a LangGraph graph whose nodes, log every execution to a
file, for tests that kill workers.

Run as a worker process: ``python -c "import crash_worker; crash_worker.main()" URL LOG HANG``
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import operator
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.pregel import Pregel
from typing_extensions import TypedDict

from runplane import Context, Runplane

STEPS = ("one", "two", "three")


def build(url: str, log: str, hang_at: str = "", **kwargs) -> Runplane:
    app = Runplane(url, **kwargs)

    @app.workflow("crashy")
    async def crashy(ctx: Context, input: dict) -> list[str]:
        return [await ctx.step(name, _execute, log, name, ctx.attempt, hang_at)
                for name in STEPS]

    @app.workflow("approval")
    async def approval(ctx: Context, input: dict) -> list[str]:
        """A step, a pause for a person's answer, a step."""
        first = await ctx.step("one", _execute, log, "one", ctx.attempt, hang_at)
        answer = await ctx.interrupt({"approve": input["item"]})
        return [first, answer, await ctx.step("two", _execute, log, "two", ctx.attempt, hang_at)]

    app.add_graph("crashy_graph", _GraphSource(_graph(log, hang_at)))
    return app


class Done(TypedDict):
    done: Annotated[list[str], operator.add]


def _graph(log: str, hang_at: str) -> Pregel:
    """one -> two -> three, each node a super-step of its own."""

    def node(name: str) -> Any:
        async def run(state: Done, config: RunnableConfig) -> dict[str, Any]:
            attempt = config["metadata"]["run_attempt"]
            return {"done": [await _execute(log, name, attempt, hang_at)]}

        return run

    builder = StateGraph(Done)
    for name in STEPS:
        builder.add_node(name, node(name))
    builder.add_edge(START, STEPS[0])
    for before, after in itertools.pairwise(STEPS):
        builder.add_edge(before, after)
    builder.add_edge(STEPS[-1], END)
    return builder.compile()


class _GraphSource:
    graph_id = "crashy_graph"
    description = None

    def __init__(self, graph: Pregel) -> None:
        self._graph = graph

    @contextlib.asynccontextmanager
    async def build(self, config: RunnableConfig) -> AsyncIterator[Pregel]:
        yield self._graph


async def _execute(log: str, name: str, attempt: int, hang_at: str) -> str:
    _append_line(log, f"{name}:{attempt}")
    if name == hang_at:
        await asyncio.sleep(3600)
    return name


def _append_line(log: str, line: str) -> None:
    with Path(log).open("a") as f:
        f.write(line + "\n")


def executions(log: str) -> list[str]:
    path = Path(log)
    return path.read_text().split() if path.exists() else []


def main() -> None:
    url, log, hang_at = sys.argv[1:4]

    async def serve() -> None:
        async with build(url, log, hang_at, lease_ttl=1.0, heartbeat_interval=0.2):
            await asyncio.Event().wait()

    asyncio.run(serve())
