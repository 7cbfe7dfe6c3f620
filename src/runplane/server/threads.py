"""Threads: create, read, update, delete, search, and their state."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from runplane import limits
from runplane.errors import InvalidInput, RunNotFound
from runplane.models import RunStatus
from runplane.server.deps import Service, Settings, Who
from runplane.server.streams import (
    HEARTBEAT,
    event_stream,
    parse_last_event_id,
    sse,
    thread_runs,
)
from runplane.server.wire import (
    SSE,
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
        ttl=body.ttl, caller=caller)
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


#: What ``?include=`` may add to a thread (comma-separated, as the SDK sends it).
THREAD_INCLUDES = ("ttl",)


@router.get("/{thread_id}", **answers(ThreadAnswer, 400, 404))
async def get(service: Service, caller: Who, thread_id: ThreadId,
              include: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    """``include=ttl``: the thread's time to live (strategy, minutes, expiry), if set."""
    fields = [f.strip() for f in (include or "").split(",") if f.strip()]
    for field in fields:
        limits.check_choice("include", field, THREAD_INCLUDES)
    return thread_body(await service.get_thread(thread_id, caller=caller), include=fields)


@router.patch("/{thread_id}", **answers(ThreadAnswer, 400, 404, 413))
async def update(service: Service, caller: Who, thread_id: ThreadId,
                 body: ThreadUpdate) -> dict[str, Any]:
    return thread_body(await service.update_thread(thread_id, metadata=body.metadata,
                                                   ttl=body.ttl, caller=caller))


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


#: What a thread's stream carries (the SDK's ``ThreadStreamMode``): every event of its runs
#: (``run_modes``), or only their starts and ends (``lifecycle``); runplane logs no
#: ``state_update`` events, so that mode carries nothing but the ends of runs.
THREAD_STREAM_MODES = ("run_modes", "lifecycle", "state_update")


@router.get("/{thread_id}/stream", **answers(None, 404, ok_content=SSE))
async def join_stream(
    request: Request, service: Service, settings: Settings, caller: Who, thread_id: ThreadId,
    stream_mode: Annotated[list[str] | None, Query()] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """The events of every run on the thread as they happen, run after run, each run's
    followed by ``metadata`` ``{"status": "run_done", "run_id"}``; the stream stays open for
    the thread's next runs. Event ids are ``<run id>:<seq>``: ``Last-Event-ID`` resumes
    after that event, and goes on with the runs created after that run."""
    modes = list(dict.fromkeys(stream_mode or ["run_modes"]))
    for mode in modes:
        limits.check_choice("stream_mode", mode, THREAD_STREAM_MODES)
    await service.get_thread(thread_id, caller=caller)
    resume_run, _, resume_seq = (last_event_id or "").strip().rpartition(":")
    current = None
    if resume_run:
        with contextlib.suppress(RunNotFound, InvalidInput):
            current = await service.get_run(resume_run, thread_id=thread_id, caller=caller)
    after_seq = parse_last_event_id(resume_seq) if current is not None else 0


    async def body() -> AsyncIterator[bytes]:
        first, seq, last = current, after_seq, None
        if first is None:  # nothing to resume: its active run, else the next one created
            first = await service.next_thread_run(thread_id, None, caller=caller)
            if first is None:
                runs = await service.list_runs(thread_id, limit=1, caller=caller)
                last = runs[0].run_id if runs else None
        async for run in thread_runs(request, service, thread_id, first, after=last,
                                     caller=caller):
            if run is None:
                yield HEARTBEAT
                continue
            if run is not first:
                seq = 0
            if "run_modes" in modes:
                events = service.stream(run.run_id, after_seq=seq, idle=settings.sse_heartbeat)

                async def final_status(run_id: str = run.run_id) -> RunStatus:
                    return (await service.get_run(run_id)).status

                async for chunk in event_stream(
                        run.run_id, run.attempt, run.kwargs.get("stream_mode") or ["values"],
                        events, final_status, graph=run.of_graph, id_prefix=f"{run.run_id}:"):
                    yield chunk
            else:
                yield sse("metadata", {"run_id": run.run_id, "attempt": run.attempt})
                await service.settled(run.run_id)
            yield sse("metadata", {"status": "run_done", "run_id": run.run_id})

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
