"""Runs: create (in the background, streamed or awaited), read, cancel, join, stream.

The same handlers serve runs on a thread (``/threads/{thread_id}/runs/...``) and
thread-less runs (``/runs/...``); a run addressed through a thread that is not
its own is not found.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from runplane.errors import RunConflict, RunNotFound, StoreClosed
from runplane.limits import MAX_ID_LENGTH
from runplane.models import Caller, Run, RunStatus
from runplane.server.deps import Service, Settings, Who
from runplane.server.streams import event_stream, parse_last_event_id, sse
from runplane.server.wire import (
    SSE,
    ActionName,
    BulkCancel,
    BulkCancelAnswer,
    CancelAnswer,
    LimitQuery,
    OffsetQuery,
    ReasonQuery,
    RunAnswer,
    RunCreate,
    RunId,
    RunStatusName,
    ScopeName,
    StreamModesQuery,
    ThreadId,
    TreeAnswer,
    WebhookAnswer,
    answers,
    cancel_body,
    run_body,
    run_result,
    stream_modes,
    tree_body,
    webhook_body,
)
from runplane.service import RunService

log = logging.getLogger("runplane.server")

router = APIRouter(tags=["runs"])

LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]
#: 202: cancelled (or already interrupted); with ``wait``, 200 once the task stopped.
_CANCEL_ANSWERS = answers(CancelAnswer, 404, 409, status=202,
                          also={200: {"model": CancelAnswer, "description": "With wait: the "
                                      "run's task has stopped."}})


# --- helpers ---------------------------------------------------------------------------------
def run_path(run: Run) -> str:
    if run.thread_id is None:
        return f"/runs/{quote(run.run_id)}"
    return f"/threads/{quote(run.thread_id)}/runs/{quote(run.run_id)}"


def _headers(run: Run, location: str | None = None) -> dict[str, str]:
    headers = {"Content-Location": run_path(run)}
    if location is not None:
        headers["Location"] = location
    return headers


#: Fields of a run's creation the service takes as they are; one not given keeps the
#: service's default.
_CREATE_OPTIONS = {"multitask_strategy", "metadata", "timeout", "max_attempts", "if_not_exists",
                   "config", "context", "stream_subgraphs", "durability", "checkpoint",
                   "checkpoint_id", "interrupt_before", "interrupt_after", "after_seconds",
                   "webhook"}


def _options(body: RunCreate) -> dict[str, Any]:
    """The service's arguments of a run's creation."""
    options = body.model_dump(include=_CREATE_OPTIONS, exclude_none=True)
    if body.command is not None:  # a resume to None is a resume: keep the keys sent
        options["command"] = body.command.model_dump(exclude_unset=True)
    return {"assistant_id": body.assistant_id, "input": body.input,
            "stream_mode": body.stream_modes(), **options}


async def _create(service: RunService, caller: Caller | None, thread_id: str | None,
                  body: RunCreate) -> Run:
    return await service.create_run(thread_id, caller=caller, **_options(body))


def _cancel_in_background(request: Request, run_id: str, reason: str) -> None:
    """Cancel ``run_id`` because its client went away. A task of its own: the request's
    own task is being torn down. A run that ended meanwhile is left as it is."""

    if request.app.state.shutting_down:
        return

    async def cancel() -> None:
        with contextlib.suppress(RunConflict, RunNotFound, StoreClosed):
            await request.app.state.runplane.service.cancel(
                run_id, reason=reason, requested_by="on_disconnect")

    background: set[asyncio.Task[None]] = request.app.state.background
    task = asyncio.get_running_loop().create_task(cancel())
    background.add(task)
    task.add_done_callback(background.discard)


def _stream(request: Request, service: RunService, settings: Any, run: Run, modes: list[str],
            *, after_seq: int = 0, cancel_on_disconnect: bool) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        ended = False
        try:
            events = service.stream(run.run_id, after_seq=after_seq, idle=settings.sse_heartbeat)

            async def final_status() -> RunStatus:
                return (await service.get_run(run.run_id)).status

            async for chunk in event_stream(run.run_id, run.attempt, modes, events,
                                            final_status, graph=run.of_graph):
                if request.app.state.shutting_down:  # not the client leaving: keep the run
                    ended = True
                    return
                yield chunk
            ended = True
        except (StoreClosed, RunNotFound) as exc:  # shutting down, or the run was deleted
            ended = True
            yield sse("error", {"error": type(exc).__name__, "message": str(exc)})
        finally:
            if not ended and cancel_on_disconnect:
                _cancel_in_background(request, run.run_id, "stream client disconnected")

    location = f"{run_path(run)}/stream?{urlencode([('stream_mode', m) for m in modes])}"
    headers = {**_headers(run, location), "Cache-Control": "no-store",
               "X-Accel-Buffering": "no"}
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _result(request: Request, service: RunService, run: Run, *,
                  cancel_on_disconnect: bool) -> Response:
    """The run's result once it settled; a client leaving first cancels it if asked to."""
    settled = asyncio.ensure_future(service.settled(run.run_id))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({settled, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (settled, gone):
            if not task.done():
                task.cancel()
    if settled.done() and not settled.cancelled():
        final = settled.result()
        return JSONResponse(run_result(final), headers=_headers(final, f"{run_path(final)}/join"))
    if cancel_on_disconnect:
        _cancel_in_background(request, run.run_id, "waiting client disconnected")
    return Response(status_code=499)


# --- creating runs ---------------------------------------------------------------------------
@router.post("/threads/{thread_id}/runs", **answers(RunAnswer, 400, 404, 409, 413))
async def create_on_thread(service: Service, caller: Who, thread_id: ThreadId,
                           body: RunCreate) -> JSONResponse:
    run = await _create(service, caller, thread_id, body)
    return JSONResponse(run_body(run), headers=_headers(run))


@router.post("/runs", **answers(RunAnswer, 400, 404, 409, 413))
async def create_threadless(service: Service, caller: Who, body: RunCreate) -> JSONResponse:
    run = await _create(service, caller, None, body)
    return JSONResponse(run_body(run), headers=_headers(run))


@router.post("/runs/batch", **answers(list[RunAnswer], 400, 404, 409, 413))
async def create_batch(service: Service, caller: Who, body: list[RunCreate]) -> JSONResponse:
    """Thread-less background runs; every payload is checked before any run is created."""
    runs = await service.create_runs([_options(b) for b in body], caller=caller)
    return JSONResponse([run_body(run) for run in runs])


@router.post("/threads/{thread_id}/runs/stream",
             **answers(None, 400, 404, 409, 413, ok_content=SSE))
async def stream_on_thread(request: Request, service: Service, settings: Settings,
                           caller: Who, thread_id: ThreadId, body: RunCreate) -> StreamingResponse:
    run = await _create(service, caller, thread_id, body)
    return _stream(request, service, settings, run, body.stream_modes(),
                   cancel_on_disconnect=body.on_disconnect != "continue")


@router.post("/runs/stream", **answers(None, 400, 404, 409, 413, ok_content=SSE))
async def stream_threadless(request: Request, service: Service, settings: Settings,
                            caller: Who, body: RunCreate) -> StreamingResponse:
    run = await _create(service, caller, None, body)
    return _stream(request, service, settings, run, body.stream_modes(),
                   cancel_on_disconnect=body.on_disconnect != "continue")


@router.post("/threads/{thread_id}/runs/wait", **answers(Any, 400, 404, 409, 413))
async def wait_on_thread(request: Request, service: Service, caller: Who, thread_id: ThreadId,
                         body: RunCreate) -> Response:
    run = await _create(service, caller, thread_id, body)
    return await _result(request, service, run,
                         cancel_on_disconnect=body.on_disconnect != "continue")


@router.post("/runs/wait", **answers(Any, 400, 404, 409, 413))
async def wait_threadless(request: Request, service: Service, caller: Who,
                          body: RunCreate) -> Response:
    run = await _create(service, caller, None, body)
    return await _result(request, service, run,
                         cancel_on_disconnect=body.on_disconnect != "continue")


# --- reading, deleting -----------------------------------------------------------------------
@router.get("/threads/{thread_id}/runs", **answers(list[RunAnswer], 404))
async def list_on_thread(service: Service, caller: Who, thread_id: ThreadId, limit: LimitQuery = 10,
                         offset: OffsetQuery = 0,
                         status: RunStatusName | None = None) -> list[dict[str, Any]]:
    runs = await service.list_runs(thread_id, status=status, limit=limit, offset=offset,
                                   caller=caller)
    return [run_body(r) for r in runs]


@router.get("/threads/{thread_id}/runs/{run_id}", **answers(RunAnswer, 404))
async def get_on_thread(service: Service, caller: Who, thread_id: ThreadId,
                        run_id: RunId) -> dict[str, Any]:
    return run_body(await service.get_run(run_id, thread_id=thread_id, caller=caller))


@router.get("/runs", **answers(list[RunAnswer]))
async def list_all(service: Service, caller: Who, limit: LimitQuery = 10, offset: OffsetQuery = 0,
                   status: RunStatusName | None = None,
                   id_prefix: Annotated[str | None, Query(max_length=MAX_ID_LENGTH)] = None,
                   ) -> list[dict[str, Any]]:
    """Every run of the caller's, newest first (children and thread-less runs included);
    ``id_prefix`` (a runplane extension): only runs whose id starts with it."""
    runs = await service.list_runs(None, status=status, limit=limit, offset=offset,
                                   id_prefix=id_prefix or None, caller=caller)
    return [run_body(r) for r in runs]


@router.get("/runs/{run_id}", **answers(RunAnswer, 404))
async def get_by_id(service: Service, caller: Who, run_id: RunId) -> dict[str, Any]:
    return run_body(await service.get_run(run_id, caller=caller))


@router.delete("/threads/{thread_id}/runs/{run_id}", **answers(None, 404, 409, status=204))
async def delete_on_thread(service: Service, caller: Who, thread_id: ThreadId,
                           run_id: RunId) -> Response:
    """Only a run that is not active (409 otherwise: cancel it first)."""
    await service.delete_run(run_id, thread_id=thread_id, caller=caller)
    return Response(status_code=204)


# --- joining, streaming an existing run ------------------------------------------------------
@router.get("/threads/{thread_id}/runs/{run_id}/join", **answers(Any, 404))
async def join_on_thread(service: Service, caller: Who, thread_id: ThreadId,
                         run_id: RunId) -> JSONResponse:
    run = await service.settled(run_id, thread_id=thread_id, caller=caller)
    return JSONResponse(run_result(run), headers=_headers(run))


@router.get("/runs/{run_id}/join", **answers(Any, 404))
async def join_by_id(service: Service, caller: Who, run_id: RunId) -> JSONResponse:
    run = await service.settled(run_id, caller=caller)
    return JSONResponse(run_result(run), headers=_headers(run))


@router.get("/threads/{thread_id}/runs/{run_id}/stream", **answers(None, 404, ok_content=SSE))
async def join_stream_on_thread(
    request: Request, service: Service, settings: Settings, caller: Who, thread_id: ThreadId,
    run_id: RunId, stream_mode: StreamModesQuery = None, cancel_on_disconnect: bool = False,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    modes = stream_modes(stream_mode, join=True)
    run = await service.get_run(run_id, thread_id=thread_id, caller=caller)
    return _stream(request, service, settings, run, modes,
                   after_seq=parse_last_event_id(last_event_id),
                   cancel_on_disconnect=cancel_on_disconnect)


@router.get("/runs/{run_id}/stream", **answers(None, 404, ok_content=SSE))
async def join_stream_by_id(
    request: Request, service: Service, settings: Settings, caller: Who, run_id: RunId,
    stream_mode: StreamModesQuery = None, cancel_on_disconnect: bool = False,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    modes = stream_modes(stream_mode, join=True)
    run = await service.get_run(run_id, caller=caller)
    return _stream(request, service, settings, run, modes,
                   after_seq=parse_last_event_id(last_event_id),
                   cancel_on_disconnect=cancel_on_disconnect)


@router.post("/runs/{run_id}/resume", **answers(RunAnswer, 404, 409))
async def resume(service: Service, caller: Who, run_id: RunId) -> dict[str, Any]:
    """A runplane extension: queue an interrupted run again, under the same id; it goes on
    after its last completed step (a graph's from its last checkpoint). 409 for a run
    that is not interrupted."""
    return run_body(await service.resume(run_id, caller=caller))


# --- cancelling ------------------------------------------------------------------------------
@router.post("/threads/{thread_id}/runs/{run_id}/cancel", **_CANCEL_ANSWERS)
async def cancel_on_thread(service: Service, caller: Who, thread_id: ThreadId, run_id: RunId,
                           wait: bool = False, action: ActionName = "interrupt",
                           scope: ScopeName = "run", reason: ReasonQuery = None) -> JSONResponse:
    """202 for a run this call interrupted and for one already interrupted (``outcome``
    tells which); with ``wait``, 200 once the worker really stopped the task. 409 for a
    finished run, 404 for an unknown run or another thread's. ``scope=tree`` cancels every
    run under the run's root, leaves first."""
    return await _cancel(service, caller, run_id, thread_id=thread_id, wait=wait,
                         action=action, scope=scope, reason=reason)


@router.post("/runs/{run_id}/cancel", **_CANCEL_ANSWERS)
async def cancel_by_id(service: Service, caller: Who, run_id: RunId, wait: bool = False,
                       action: ActionName = "interrupt", scope: ScopeName = "run",
                       reason: ReasonQuery = None) -> JSONResponse:
    """The thread run cancel, for runs addressed by id alone (children, thread-less runs)."""
    return await _cancel(service, caller, run_id, thread_id=None, wait=wait, action=action,
                         scope=scope, reason=reason)


async def _cancel(service: RunService, caller: Caller | None, run_id: str, *,
                  thread_id: str | None, wait: bool, action: str, scope: str,
                  reason: str | None) -> JSONResponse:
    result = await service.cancel(run_id, action=action, wait=wait, reason=reason,
                                  requested_by="api",
                                  thread_id=thread_id, scope=scope, caller=caller)
    return JSONResponse(cancel_body(result), status_code=200 if wait else 202)


@router.get("/runs/{run_id}/webhooks", **answers(list[WebhookAnswer], 404))
async def webhooks(service: Service, caller: Who, run_id: RunId) -> list[dict[str, Any]]:
    """A runplane extension: the deliveries of the run's ends to its webhook (pending,
    delivered, or failed with the last error)."""
    return [webhook_body(d) for d in await service.run_webhooks(run_id, caller=caller)]


@router.get("/runs/{run_id}/tree", **answers(TreeAnswer, 404))
async def tree(service: Service, caller: Who, run_id: RunId) -> dict[str, Any]:
    """The tree the run belongs to, from its root, with every run's status."""
    return tree_body(await service.tree(run_id, caller=caller))


@router.post("/runs/cancel", **answers(BulkCancelAnswer, 400, 404, 413))
async def cancel_many(service: Service, caller: Who, body: BulkCancel,
                      action: ActionName = "interrupt") -> dict[str, Any]:
    """The single-cancel rules, run by run, over the caller's runs: each outcome is
    reported, none raises (another owner's run is ``not_found``)."""
    outcomes = await service.cancel_many(
        run_ids=body.run_ids, thread_id=body.thread_id, status=body.status, action=action,
        requested_by="api", caller=caller)
    counts: dict[str, int] = {}
    for _, outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    return {"runs": [{"run_id": r, "outcome": o} for r, o in outcomes], "counts": counts}
