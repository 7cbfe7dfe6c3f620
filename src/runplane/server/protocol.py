"""LangGraph's thread-centric streaming protocol, the SDK's ``client.threads.stream``:
commands posted to ``/threads/{id}/commands`` and events from ``/threads/{id}/stream/events``
(SSE), over the same runs, service rules and durable logs as the rest of the API.

- ``run.start`` creates a run on the thread (the thread too, if it is new; the SDK mints its
  id), logging what the protocol's channels need; with input while the thread waits at an
  interrupt, it answers the interrupt (as LangGraph's server does). ``input.respond``
  answers pending interrupts by id with a new run (``command.resume``). Other commands
  answer ``unknown_command``; a refusal of the service is an error envelope naming why.
  Both answer ``meta.applied_through_seq``: the last ``seq`` before the run's events.
- ``stream/events`` replays the thread's current run (its oldest active one, else its
  latest) from its start, or everything after ``since``, then follows each run created
  after it, rendered by :mod:`runplane.server.protocol_events` and filtered by the
  subscription's ``channels``, ``namespaces`` and ``depth``. The stream stays open across
  runs, with a heartbeat comment while idle.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from runplane import limits
from runplane.errors import Conflict, InvalidInput, NotFound, UnknownWorkflow
from runplane.models import Caller, Run, Thread
from runplane.server.deps import Service, Settings, Who
from runplane.server.protocol_events import (
    RUN_STREAM_MODES,
    ProtocolView,
    Rendered,
    cursor,
    run_seq_of,
)
from runplane.server.streams import HEARTBEAT, sse, thread_runs
from runplane.server.wire import (
    SSE,
    CommandAnswer,
    EventStreamRequest,
    ProtocolCommand,
    ThreadId,
    answers,
)
from runplane.service import RunService

router = APIRouter(prefix="/threads", tags=["threads"])

#: How long ``input.respond`` waits for the run that asked an interrupt to end.
RESPOND_WAIT = 10.0


class ProtocolError(Exception):
    """A command the protocol refuses: its error code and why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@router.post("/{thread_id}/commands", **answers(CommandAnswer, 400, 404, 413))
async def command(service: Service, caller: Who, thread_id: ThreadId,
                  body: ProtocolCommand) -> dict[str, Any]:
    """One protocol command: ``run.start`` or ``input.respond``. A refusal is an error
    envelope (``invalid_argument``, ``no_such_interrupt``, ``unknown_command``); another
    owner's thread is a 404, as everywhere."""
    limits.check_id("thread_id", thread_id)
    try:
        if body.method == "run.start":
            result, run = await _run_start(service, caller, thread_id, body.params)
        elif body.method == "input.respond":
            result, run = await _respond(service, caller, thread_id, body.params)
        else:
            raise ProtocolError("unknown_command", f"unknown command {body.method!r}; this "
                                "server takes run.start and input.respond")
    except ProtocolError as exc:
        return {"type": "error", "id": body.id, "error": exc.code, "message": str(exc)}
    except (InvalidInput, UnknownWorkflow, Conflict) as exc:
        return {"type": "error", "id": body.id, "error": "invalid_argument",
                "message": str(exc)}
    return {"type": "success", "id": body.id, "result": result,
            "meta": {"applied_through_seq": cursor(run.seq, 0, 0) - 1}}


async def _run_start(service: RunService, caller: Caller | None, thread_id: str,
                     params: dict[str, Any]) -> tuple[dict[str, Any], Run]:
    assistant_id = params.get("assistant_id")
    if not isinstance(assistant_id, str) or not assistant_id:
        raise ProtocolError("invalid_argument", "run.start requires an assistant_id")
    input = params.get("input")
    command = None
    if input is not None:  # while the thread waits at an interrupt, input answers it
        try:
            thread = await service.get_thread(thread_id, caller=caller)
        except NotFound:
            thread = None
        if thread is not None and thread.interrupts:
            command, input = {"resume": input}, None
    run = await service.create_run(
        thread_id, assistant_id, input, if_not_exists="create", command=command,
        config=params.get("config"), metadata=params.get("metadata"),
        multitask_strategy=params.get("multitaskStrategy") or "enqueue",
        stream_mode=RUN_STREAM_MODES, stream_subgraphs=True, caller=caller)
    return {"run_id": run.run_id}, run


async def _respond(service: RunService, caller: Caller | None, thread_id: str,
                   params: dict[str, Any]) -> tuple[dict[str, Any], Run]:
    responses = params.get("responses")
    if responses is None:
        responses = [{k: params.get(k) for k in ("interrupt_id", "namespace", "response")}]
    if not isinstance(responses, list) or not responses or \
            not all(isinstance(r, dict) and isinstance(r.get("interrupt_id"), str)
                    for r in responses):
        raise ProtocolError("invalid_argument", "input.respond takes an interrupt_id and a "
                            "response (or responses: a non-empty list of them)")
    asked = {r["interrupt_id"] for r in responses}
    thread = await service.get_thread(thread_id, caller=caller)
    runs = await service.list_runs(thread_id, limit=1, caller=caller)
    latest = runs[0] if runs else None
    if not asked <= _pending(thread) and latest is not None:
        # the stream shows an interrupt before the run that asked it ends (and with it,
        # writes it to the thread): give that run a moment to end
        if latest.status.active:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(service.settled(latest.run_id, caller=caller),
                                       RESPOND_WAIT)
        thread = await service.get_thread(thread_id, caller=caller)
    if missing := sorted(asked - _pending(thread)):
        raise ProtocolError("no_such_interrupt", f"thread {thread_id!r} has no pending "
                            f"interrupt {', '.join(map(repr, missing))}")
    assert latest is not None  # an interrupt is pending: a run asked it
    command: dict[str, Any] = {"resume": {r["interrupt_id"]: r.get("response")
                                          for r in responses}}
    command.update({k: params[k] for k in ("update", "goto") if params.get(k) is not None})
    run = await service.create_run(
        thread_id, latest.assistant_id, None, command=command, config=params.get("config"),
        metadata=params.get("metadata"), stream_mode=RUN_STREAM_MODES,
        stream_subgraphs=True, caller=caller)
    return {}, run


def _pending(thread: Thread) -> set[str]:
    return {str(i.get("id")) for asked in (thread.interrupts or {}).values() for i in asked}


@router.post("/{thread_id}/stream/events", **answers(None, 404, 413, ok_content=SSE))
async def events(request: Request, service: Service, settings: Settings, caller: Who,
                 thread_id: ThreadId, body: EventStreamRequest) -> StreamingResponse:
    """The thread's protocol events: its current run's from the start (or everything after
    ``since``), then each later run's as they happen; the stream stays open."""
    await service.get_thread(thread_id, caller=caller)
    since = body.since or 0

    async def body_() -> AsyncIterator[bytes]:
        # read here, once the answer's headers are out: the SDK waits for them, and when
        # it opens a second stream before the first one's came, it may drop the first
        runs = await service.list_runs(thread_id, limit=limits.MAX_LIMIT, caller=caller)
        runs.reverse()  # oldest first
        if since:
            first = next((r for r in runs if r.seq >= run_seq_of(since)), None)
        else:
            first = next((r for r in runs if r.status.active), runs[-1] if runs else None)
        after = runs[-1].run_id if first is None and runs else None
        async for run in thread_runs(request, service, thread_id, first, after=after,
                                     caller=caller):
            if run is None:
                yield HEARTBEAT
                continue
            view = ProtocolView(run)
            async for event in service.stream(run.run_id, idle=settings.sse_heartbeat,
                                              caller=caller):
                if event is None:
                    yield HEARTBEAT
                    continue
                stamp = int(event.created_at.timestamp() * 1000)
                for part, rendered in enumerate(view.render(event)):
                    seq = cursor(run.seq, event.seq, part)
                    if seq > since and _wanted(body, rendered):
                        yield _frame(seq, stamp, rendered)

    return StreamingResponse(body_(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _frame(seq: int, stamp: int, rendered: Rendered) -> bytes:
    method, namespace, data, node = rendered
    params: dict[str, Any] = {"namespace": namespace, "timestamp": stamp, "data": data}
    if node is not None:
        params["node"] = node
    return sse(method, {"type": "event", "event_id": str(seq), "seq": seq, "method": method,
                        "params": params}, seq)


def _wanted(request: EventStreamRequest, rendered: Rendered) -> bool:
    """Does the subscription take this event: its channel, and its namespace under one of
    the prefixes (a prefix segment without ``:`` matches a segment's node name), at most
    ``depth`` levels below it."""
    method, namespace, data, _ = rendered
    channel = "input" if method == "input.requested" else method
    if channel == "custom":
        name = data.get("name") if isinstance(data, dict) else None
        if "custom" not in request.channels and f"custom:{name}" not in request.channels:
            return False
    elif channel not in request.channels:
        return False
    if not request.namespaces:
        return True
    return any(_under(namespace, prefix) and (request.depth is None or
                                              len(namespace) - len(prefix) <= request.depth)
               for prefix in request.namespaces)


def _under(namespace: list[str], prefix: list[str]) -> bool:
    return len(prefix) <= len(namespace) and all(
        segment == part or (":" not in part and segment.split(":", 1)[0] == part)
        for segment, part in zip(namespace, prefix, strict=False))
