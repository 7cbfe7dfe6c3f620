"""Assistants: runplane's registered workflows, one assistant each (id = graph = name)."""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import APIRouter, Request

from runplane.errors import UnknownWorkflow
from runplane.server.deps import App
from runplane.server.wire import (
    AssistantAnswer,
    AssistantSearch,
    GraphAnswer,
    SchemasAnswer,
    answers,
    assistant_body,
)

router = APIRouter(prefix="/assistants", tags=["assistants"])


def _assistants(rp: Any, request: Request) -> list[dict[str, Any]]:
    started = request.app.state.started_at
    return [
        assistant_body(name, (inspect.getdoc(fn) or "").split("\n\n")[0] or None, started)
        for name, fn in sorted(rp.workflows.items())
    ]


def _one(rp: Any, request: Request, assistant_id: str) -> dict[str, Any]:
    for body in _assistants(rp, request):
        if body["assistant_id"] == assistant_id:
            return body
    raise UnknownWorkflow(assistant_id, sorted(rp.workflows))


def _matching(rp: Any, request: Request, query: AssistantSearch) -> list[dict[str, Any]]:
    return [
        a for a in _assistants(rp, request)
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
    return _one(rp, request, assistant_id)


@router.get("/{assistant_id}/graph", **answers(GraphAnswer, 404))
async def graph(rp: App, request: Request, assistant_id: str) -> dict[str, Any]:
    """A workflow is code, not a declared graph: start -> workflow -> end."""
    _one(rp, request, assistant_id)
    nodes = [{"id": "__start__", "type": "schema", "data": "__start__"},
             {"id": assistant_id, "type": "runnable", "data": assistant_id},
             {"id": "__end__", "type": "schema", "data": "__end__"}]
    edges = [{"source": "__start__", "target": assistant_id},
             {"source": assistant_id, "target": "__end__"}]
    return {"nodes": nodes, "edges": edges}


@router.get("/{assistant_id}/schemas", **answers(SchemasAnswer, 404))
async def schemas(rp: App, request: Request, assistant_id: str) -> dict[str, Any]:
    _one(rp, request, assistant_id)
    return {"graph_id": assistant_id, "input_schema": None, "output_schema": None,
            "state_schema": None, "config_schema": None, "context_schema": None}
