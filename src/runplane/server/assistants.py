"""Assistants: each registered workflow's and graph's own (the code's; a graph's under the
LangGraph server's id), and those made through the API, in versions (see
``RunService.create_assistant``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Response

from runplane.server.deps import Service, Who
from runplane.server.wire import (
    AssistantAnswer,
    AssistantCount,
    AssistantCreate,
    AssistantId,
    AssistantLatest,
    AssistantSearch,
    AssistantUpdate,
    AssistantVersionAnswer,
    AssistantVersionsSearch,
    GraphAnswer,
    SchemasAnswer,
    SelectedAssistantAnswer,
    answers,
    assistant_body,
    selected,
)

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig

    from runplane.service import RunService

router = APIRouter(prefix="/assistants", tags=["assistants"])

#: The header that says a search has more to page through (the next page's offset).
NEXT_PAGE = "X-Pagination-Next"


@router.post("", **answers(AssistantAnswer, 400, 404, 409, 413))
async def create(service: Service, caller: Who, body: AssistantCreate) -> dict[str, Any]:
    """``graph_id`` names a graph or workflow served here; an ``assistant_id`` in use is a
    409 unless ``if_exists`` is ``do_nothing`` (the existing assistant is answered)."""
    return assistant_body(await service.create_assistant(
        body.graph_id, config=body.config, context=body.context, metadata=body.metadata,
        name=body.name, description=body.description, assistant_id=body.assistant_id,
        if_exists=body.if_exists, caller=caller))


@router.post("/search", **answers(list[AssistantAnswer | SelectedAssistantAnswer], 400, 413))
async def search(service: Service, caller: Who, query: AssistantSearch,
                 response: Response) -> list[dict[str, Any]]:
    """Sorted and paged; ``X-Pagination-Next`` gives the next page's offset when there is
    one."""
    found = await service.search_assistants(
        graph_id=query.graph_id, name=query.name, metadata=query.metadata,
        limit=query.limit, offset=query.offset, sort_by=query.sort_by,
        sort_order=query.sort_order, caller=caller)
    after = query.offset + query.limit
    if found and len(found) == query.limit and await service.count_assistants(
            graph_id=query.graph_id, name=query.name, metadata=query.metadata,
            caller=caller) > after:
        response.headers[NEXT_PAGE] = str(after)
    return selected([assistant_body(a) for a in found], query.select)


@router.post("/count", **answers(int, 400, 413))
async def count(service: Service, caller: Who, query: AssistantCount) -> int:
    return await service.count_assistants(graph_id=query.graph_id, name=query.name,
                                          metadata=query.metadata, caller=caller)


@router.get("/{assistant_id}", **answers(AssistantAnswer, 404))
async def get(service: Service, caller: Who, assistant_id: AssistantId) -> dict[str, Any]:
    return assistant_body(await service.get_assistant(assistant_id, caller=caller))


@router.patch("/{assistant_id}", **answers(AssistantAnswer, 400, 404, 409, 413))
async def update(service: Service, caller: Who, assistant_id: AssistantId,
                 body: AssistantUpdate) -> dict[str, Any]:
    """A new version: what is given replaces the current version's (``metadata`` merges
    into it), the rest is kept. A workflow's or graph's own assistant cannot change (409)."""
    return assistant_body(await service.update_assistant(
        assistant_id, graph_id=body.graph_id, config=body.config, context=body.context,
        metadata=body.metadata, name=body.name, description=body.description, caller=caller))


@router.delete("/{assistant_id}", **answers(None, 404, 409, status=204))
async def delete(service: Service, caller: Who, assistant_id: AssistantId,
                 delete_threads: bool = False) -> Response:
    """Refused (409) while one of its runs is pending or running; ``delete_threads``: also
    the threads whose metadata names it."""
    await service.delete_assistant(assistant_id, delete_threads=delete_threads, caller=caller)
    return Response(status_code=204)


@router.post("/{assistant_id}/versions",
             **answers(list[AssistantVersionAnswer], 400, 404, 413))
async def versions(service: Service, caller: Who, assistant_id: AssistantId,
                   query: AssistantVersionsSearch) -> list[dict[str, Any]]:
    """Newest first."""
    found = await service.assistant_versions(assistant_id, metadata=query.metadata,
                                             limit=query.limit, offset=query.offset,
                                             caller=caller)
    return [assistant_body(a, version=True) for a in found]


@router.post("/{assistant_id}/latest", **answers(AssistantAnswer, 400, 404, 409, 413))
async def set_latest(service: Service, caller: Who, assistant_id: AssistantId,
                     body: AssistantLatest) -> dict[str, Any]:
    """Make a version current: runs created from now on use it."""
    return assistant_body(await service.set_latest_assistant_version(
        assistant_id, body.version, caller=caller))


#: The config a graph is built with to describe it (a factory is called for that).
_DESCRIBE: RunnableConfig = {"configurable": {}}


@router.get("/{assistant_id}/graph", **answers(GraphAnswer, 404))
async def graph(service: Service, caller: Who, assistant_id: AssistantId,
                xray: Annotated[int | bool, Query()] = False) -> dict[str, Any]:
    """A graph's nodes and edges (``xray``: subgraphs' too, to that depth); a workflow is
    code, not a declared graph: start -> workflow -> end."""
    assistant = await service.assistant_code(assistant_id, caller=caller)
    if assistant.graph is not None:
        async with assistant.graph.build(_DESCRIBE) as built:
            drawn = await built.aget_graph(_DESCRIBE, xray=xray)
        return drawn.to_json()
    name = assistant.graph_id
    nodes = [{"id": "__start__", "type": "schema", "data": "__start__"},
             {"id": name, "type": "runnable", "data": name},
             {"id": "__end__", "type": "schema", "data": "__end__"}]
    edges = [{"source": "__start__", "target": name},
             {"source": name, "target": "__end__"}]
    return {"nodes": nodes, "edges": edges}


@router.get("/{assistant_id}/schemas", **answers(SchemasAnswer, 404))
async def schemas(service: Service, caller: Who, assistant_id: AssistantId) -> dict[str, Any]:
    """A graph's input, output, state, config and context JSON schemas (None where the
    graph declares none); a workflow declares none."""
    assistant = await service.assistant_code(assistant_id, caller=caller)
    if assistant.graph is None:
        return {"graph_id": assistant.graph_id, "input_schema": None, "output_schema": None,
                "state_schema": None, "config_schema": None, "context_schema": None}
    from runplane.graphs.runner import graph_schemas

    async with assistant.graph.build(_DESCRIBE) as built:
        return {"graph_id": assistant.graph_id, **graph_schemas(built)}


async def _subgraphs(service: RunService, caller: Any, assistant_id: str,
                     namespace: str | None, recurse: bool) -> dict[str, Any]:
    assistant = await service.assistant_code(assistant_id, caller=caller)
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
async def subgraphs(service: Service, caller: Who, assistant_id: AssistantId,
                    recurse: bool = False) -> dict[str, Any]:
    """A graph's subgraphs' schemas by namespace (``recurse``: theirs too); a workflow has
    none."""
    return await _subgraphs(service, caller, assistant_id, None, recurse)


@router.get("/{assistant_id}/subgraphs/{namespace}", **answers(dict[str, SchemasAnswer], 404))
async def subgraphs_in(service: Service, caller: Who, assistant_id: AssistantId,
                       namespace: str, recurse: bool = False) -> dict[str, Any]:
    """The subgraphs of the graph's subgraph at ``namespace``."""
    return await _subgraphs(service, caller, assistant_id, namespace, recurse)
