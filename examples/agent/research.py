"""A slow research graph, good for pressing stop: it plans, researches four sources (five
seconds each, reporting progress as it goes) and writes a report, about 22 seconds in all.

Cancel it half-way and the sources already read stay in its checkpoints; resume it and it
goes on from the next one.
"""

from __future__ import annotations

import asyncio
import operator
from typing import Annotated, Any

from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

SOURCES = ("archive", "journals", "interviews", "field notes")
#: Seconds each source takes to read.
READ_SECONDS = 5.0


class Research(TypedDict, total=False):
    question: str
    plan: list[str]
    notes: Annotated[list[str], operator.add]
    report: str


async def plan(state: Research) -> dict[str, Any]:
    await asyncio.sleep(1.0)
    return {"plan": list(SOURCES)}


def read(source: str):
    async def read_source(state: Research) -> dict[str, Any]:
        write = get_stream_writer()
        for percent in (25, 50, 75, 100):
            await asyncio.sleep(READ_SECONDS / 4)
            write({"source": source, "progress": percent})
        return {"notes": [f"{source}: something about {state.get('question', 'it')}"]}

    return read_source


async def report(state: Research) -> dict[str, Any]:
    await asyncio.sleep(1.0)
    return {"report": f"{len(state['notes'])} sources read: " + "; ".join(state["notes"])}


builder = StateGraph(Research)
builder.add_node("plan", plan)
previous = "plan"
for name in SOURCES:
    node = name.replace(" ", "_")
    builder.add_node(node, read(name))
    builder.add_edge(previous, node)
    previous = node
builder.add_node("report", report)
builder.add_edge(START, "plan")
builder.add_edge(previous, "report")
builder.add_edge("report", END)
graph = builder.compile()
