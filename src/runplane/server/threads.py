"""Threads: create, read, update, delete, search, and their state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from runplane.server.deps import Service, Who
from runplane.server.wire import (
    HistoryQuery,
    PruneAnswer,
    StateAt,
    StateUpdate,
    StateUpdateAnswer,
    ThreadAnswer,
    ThreadCount,
    ThreadCreate,
    ThreadId,
    ThreadPrune,
    ThreadSearch,
    ThreadStateAnswer,
    ThreadUpdate,
    answers,
    state_body,
    thread_body,
)

router = APIRouter(prefix="/threads", tags=["threads"])


@router.post("", **answers(ThreadAnswer, 400, 409, 413))
async def create(service: Service, caller: Who, body: ThreadCreate) -> dict[str, Any]:
    thread = await service.create_thread(
        thread_id=body.thread_id, metadata=body.metadata, if_exists=body.if_exists,
        caller=caller)
    return thread_body(thread)


@router.post("/prune", **answers(PruneAnswer, 400, 413))
async def prune(service: Service, caller: Who, body: ThreadPrune) -> dict[str, Any]:
    """``delete`` the threads (active runs cancelled first), or keep each one's latest
    checkpoint only (``keep_latest``); unknown ids are skipped."""
    return {"pruned_count": await service.prune_threads(body.thread_ids,
                                                        strategy=body.strategy, caller=caller)}


@router.post("/{thread_id}/copy", **answers(ThreadAnswer, 404))
async def copy(service: Service, caller: Who, thread_id: ThreadId) -> dict[str, Any]:
    """A new thread with this one's metadata, values and checkpoints."""
    return thread_body(await service.copy_thread(thread_id, caller=caller))


@router.post("/search", **answers(list[ThreadAnswer], 400, 413))
async def search(service: Service, caller: Who, body: ThreadSearch) -> list[dict[str, Any]]:
    threads = await service.search_threads(
        metadata=body.metadata, status=body.status, ids=body.ids, limit=body.limit,
        offset=body.offset, sort_by=body.sort_by, sort_order=body.sort_order, caller=caller)
    return [thread_body(t) for t in threads]


@router.post("/count", **answers(int, 400, 413))
async def count(service: Service, caller: Who, body: ThreadCount) -> int:
    return await service.count_threads(metadata=body.metadata, status=body.status,
                                       caller=caller)


@router.get("/{thread_id}", **answers(ThreadAnswer, 404))
async def get(service: Service, caller: Who, thread_id: ThreadId) -> dict[str, Any]:
    return thread_body(await service.get_thread(thread_id, caller=caller))


@router.patch("/{thread_id}", **answers(ThreadAnswer, 400, 404, 413))
async def update(service: Service, caller: Who, thread_id: ThreadId,
                 body: ThreadUpdate) -> dict[str, Any]:
    return thread_body(await service.update_thread(thread_id, metadata=body.metadata,
                                                   caller=caller))


@router.delete("/{thread_id}", **answers(None, 404, status=204))
async def delete(service: Service, caller: Who, thread_id: ThreadId) -> Response:
    """Cancels the thread's active runs first, then deletes it with its runs."""
    await service.delete_thread(thread_id, caller=caller)
    return Response(status_code=204)


@router.get("/{thread_id}/state", **answers(ThreadStateAnswer, 400, 404))
async def state(service: Service, caller: Who, thread_id: ThreadId,
                subgraphs: bool = False) -> dict[str, Any]:
    """A graph thread's state from its latest checkpoint; a workflow thread's values."""
    return state_body(await service.get_state(thread_id, subgraphs=subgraphs, caller=caller))


@router.post("/{thread_id}/state", **answers(StateUpdateAnswer, 400, 404, 409, 413))
async def update_state(service: Service, caller: Who, thread_id: ThreadId,
                       body: StateUpdate) -> dict[str, Any]:
    """A new checkpoint of a graph thread with ``values`` applied (409 while a run is
    pending or running on the thread)."""
    return {"checkpoint": await service.update_state(
        thread_id, body.values, as_node=body.as_node, checkpoint=body.checkpoint,
        checkpoint_id=body.checkpoint_id, caller=caller)}


@router.post("/{thread_id}/state/checkpoint", **answers(ThreadStateAnswer, 400, 404, 413))
async def state_at_checkpoint(service: Service, caller: Who, thread_id: ThreadId,
                              body: StateAt) -> dict[str, Any]:
    """A graph thread's state at the checkpoint a config names."""
    return state_body(await service.get_state(thread_id, checkpoint_id=body.checkpoint_id(),
                                              subgraphs=body.subgraphs, caller=caller))


@router.get("/{thread_id}/state/{checkpoint_id}", **answers(ThreadStateAnswer, 400, 404))
async def state_at(service: Service, caller: Who, thread_id: ThreadId, checkpoint_id: str,
                   subgraphs: bool = False) -> dict[str, Any]:
    """A graph thread's state at one of its checkpoints."""
    return state_body(await service.get_state(thread_id, checkpoint_id=checkpoint_id,
                                              subgraphs=subgraphs, caller=caller))


@router.post("/{thread_id}/history", **answers(list[ThreadStateAnswer], 400, 404, 413))
async def history(service: Service, caller: Who, thread_id: ThreadId,
                  body: HistoryQuery | None = None) -> list[dict[str, Any]]:
    """A graph thread's states, newest first; a workflow thread has one, its values."""
    body = body or HistoryQuery()
    states = await service.get_history(thread_id, limit=body.limit, before=body.before_id(),
                                       metadata=body.metadata, caller=caller)
    return [state_body(s) for s in states]
