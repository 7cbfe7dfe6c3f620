"""Assistants: one per registered workflow (id = graph = name) and one per LangGraph graph
(its default assistant, as the LangGraph server names it): see runplane.assistants."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request

from runplane.assistants import Assistant
from runplane.server.deps import App
from runplane.server.wire import (
    AssistantAnswer,
    AssistantSearch,
    GraphAnswer,
    SchemasAnswer,
    answers,
    assistant_body,
)

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

router = APIRouter(prefix="/assistants", tags=["assistants"])


def _bodies(rp: Any, request: Request) -> list[dict[str, Any]]:
    return [assistant_body(a, request.app.state.started_at) for a in rp.assistants.all()]


def _matching(rp: Any, request: Request, query: AssistantSearch) -> list[dict[str, Any]]:
    return [
        a for a in _bodies(rp, request)
        if query.graph_id in (None, a["graph_id"]) and query.name in (None, a["name"])
        and all(a["metadata"].get(k) == v for k, v in (query.metadata or {}).items())
    ]


@router.post("/search", **answers(list[AssistantAnswer], 400, 413))
async def search(rp: App, request: Request, query: AssistantSearch) -> list[dict[str, Any]]:
    return _matching(rp, request, query)[query.offset:query.offset + query.limit]


@router.post("/count", **answers(int, 400, 413))
async def count(rp: App, request: Request, query: AssistantSearch) -> int:
    return len(_matching(rp, request, query))


@router.get("/{assistant_id}", **answers(AssistantAnswer, 404))
async def get(rp: App, request: Request, assistant_id: str) -> dict[str, Any]:
    return assistant_body(rp.assistants.resolve(assistant_id), request.app.state.started_at)


#: The config a graph is built with to describe it (a factory is called for that).
_DESCRIBE: RunnableConfig = {"configurable": {}}


@router.get("/{assistant_id}/graph", **answers(GraphAnswer, 404))
async def graph(rp: App, assistant_id: str,
                xray: Annotated[int | bool, Query()] = False) -> dict[str, Any]:
    """A graph's nodes and edges (``xray``: subgraphs' too, to that depth); a workflow is
    code, not a declared graph: start -> workflow -> end."""
    assistant: Assistant = rp.assistants.resolve(assistant_id)
    if assistant.graph is not None:
        async with assistant.graph.build(_DESCRIBE) as built:
            drawn = await built.aget_graph(_DESCRIBE, xray=xray)
        return drawn.to_json()
    nodes = [{"id": "__start__", "type": "schema", "data": "__start__"},
             {"id": assistant_id, "type": "runnable", "data": assistant_id},
             {"id": "__end__", "type": "schema", "data": "__end__"}]
    edges = [{"source": "__start__", "target": assistant_id},
             {"source": assistant_id, "target": "__end__"}]
    return {"nodes": nodes, "edges": edges}


@router.get("/{assistant_id}/schemas", **answers(SchemasAnswer, 404))
async def schemas(rp: App, assistant_id: str) -> dict[str, Any]:
    """A graph's input, output, state, config and context JSON schemas (None where the
    graph declares none); a workflow declares none."""
    assistant: Assistant = rp.assistants.resolve(assistant_id)
    if assistant.graph is None:
        return {"graph_id": assistant.graph_id, "input_schema": None, "output_schema": None,
                "state_schema": None, "config_schema": None, "context_schema": None}
    from runplane.graphs.runner import graph_schemas

    async with assistant.graph.build(_DESCRIBE) as built:
        return {"graph_id": assistant.graph_id, **graph_schemas(built)}


async def _subgraphs(rp: Any, assistant_id: str, namespace: str | None,
                     recurse: bool) -> dict[str, Any]:
    assistant: Assistant = rp.assistants.resolve(assistant_id)
    if assistant.graph is None:
        return {}
    from langgraph.pregel import Pregel

    from runplane.graphs.runner import graph_schemas

    async with assistant.graph.build(_DESCRIBE) as built:  # a remote subgraph: not described
        return {ns: {"graph_id": assistant.graph_id, **graph_schemas(sub)}
                async for ns, sub in built.aget_subgraphs(namespace=namespace,
                                                          recurse=recurse)
                if isinstance(sub, Pregel)}


@router.get("/{assistant_id}/subgraphs", **answers(dict[str, SchemasAnswer], 404))
async def subgraphs(rp: App, assistant_id: str, recurse: bool = False) -> dict[str, Any]:
    """A graph's subgraphs' schemas by namespace (``recurse``: theirs too); a workflow has
    none."""
    return await _subgraphs(rp, assistant_id, None, recurse)


@router.get("/{assistant_id}/subgraphs/{namespace}", **answers(dict[str, SchemasAnswer], 404))
async def subgraphs_in(rp: App, assistant_id: str, namespace: str,
                       recurse: bool = False) -> dict[str, Any]:
    """The subgraphs of the graph's subgraph at ``namespace``."""
    return await _subgraphs(rp, assistant_id, namespace, recurse)
