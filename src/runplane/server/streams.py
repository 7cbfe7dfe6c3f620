"""Server-sent events from a run's durable event log, in the LangGraph stream format.

A stream is a view of the log, never a separate channel: joining late replays
what was missed, and ``Last-Event-ID`` (the log's sequence number) resumes
after the last event a client saw. One log event can give several stream
events (a completion gives its final ``values`` and the ``end``); only the
last of them carries the id, so a client cut off between them sees them all
again. A stream of a run that is over always ends with ``end``, even when
``Last-Event-ID`` points past the run's ending event.

Joining a run's stream with the mode ``log`` (a runplane extension) gives every event of
the log as stored, ``{type, seq, data, timestamp}``, for any run (``runplane runs tail``).

A workflow's ``ctx.emit(name, data)`` streams under the mode ``name`` when that is
a stream mode (``values``, ``custom``, ``messages``, ...); any other name streams
under ``custom`` as ``{name: data}``, the way ``updates`` names each step.

A graph's run logs LangGraph's own chunks, named by their mode (``mode|ns`` for a
subgraph's), and streams them as the LangGraph server does: each under its name, and
its message chunks (logged as ``messages``: ``[chunk, metadata]``) as the SSE event
``messages`` for ``messages-tuple``, or as ``messages/metadata`` then
``messages/partial`` (the message so far) or ``messages/complete`` for ``messages``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from runplane.lifecycle import ENDED_BY, RESERVED_PREFIXES, EventName
from runplane.models import STREAM_MODES, Caller, Event, Run, RunStatus

if TYPE_CHECKING:
    from starlette.requests import Request

    from runplane.service import RunService

#: Log events that end a run failed, and the stream ``error`` payload each gives.
_FAILURES: dict[str, str] = {EventName.RUN_FAIL: "RunError", EventName.RUN_TIMEOUT: "RunTimeout"}
#: Log events that end a run, and the status its stream's ``end`` gives.
_ENDINGS: dict[str, str] = {event: status.value for status, event in ENDED_BY.items()}


def sse(event: str, data: Any, event_id: int | str | None = None) -> bytes:
    lines = f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n"
    if event_id is not None:
        lines += f"id: {event_id}\n"
    return (lines + "\n").encode()


HEARTBEAT = b": heartbeat\n\n"


def parse_last_event_id(value: str | None) -> int:
    """The sequence number to resume after: a decimal number, however large (the service
    caps it), as the stream sent it; anything else replays from the start."""
    digits = (value or "").strip()
    if not (digits.isascii() and digits.isdigit()):
        return 0
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 19 else 2**63  # more than any log can hold


class StreamView:
    """Turns log events into the stream events of the requested modes."""

    def __init__(self, run_id: str, modes: list[str], *, graph: bool = False) -> None:
        self.run_id = run_id
        self.modes = set(modes)
        #: the run is a graph's: its log holds LangGraph's chunks (see the module docstring)
        self.graph = graph
        self._last_values: Any = None
        #: ``messages``: each message so far, by id (its chunks added up)
        self._messages: dict[str, Any] = {}
        #: ``end`` was sent for the run's latest attempt (a resume starts a new one)
        self.ended = False

    def render(self, event: Event) -> Iterator[tuple[str, Any]]:
        name, data = event.event, event.data
        if "log" in self.modes:  # the durable log itself, whatever the run logged
            yield "log", {"type": name, "seq": event.seq, "data": data,
                          "timestamp": event.created_at.isoformat()}
        if self.graph:
            if not name.startswith(RESERVED_PREFIXES):  # a chunk (its ns may hold a ':')
                yield from self._graph_chunk(name, data)
        else:
            yield from self._workflow_event(event)
        if name in _FAILURES:
            yield "error", {"error": _FAILURES[name], "message": data.get("error")}
        elif name == EventName.RUN_RESUME:
            self.ended = False
        if name in _ENDINGS:
            self.ended = True
            yield "end", self.end(_ENDINGS[name])

    def _workflow_event(self, event: Event) -> Iterator[tuple[str, Any]]:
        name, data = event.event, event.data
        if "debug" in self.modes:
            yield "debug", {"type": name, "seq": event.seq, "data": data,
                            "timestamp": event.created_at.isoformat()}
        if name == EventName.STEP_COMPLETE:
            if "updates" in self.modes:
                yield "updates", {data["name"]: data["result"]}
        elif name == EventName.RUN_COMPLETE:
            output = data.get("output")
            if "values" in self.modes and output is not None and output != self._last_values:
                yield "values", output
        elif ":" not in name:  # a workflow's ctx.emit(name, data)
            if name not in STREAM_MODES:
                if "custom" in self.modes:
                    yield "custom", {name: data}
            elif name in self.modes:
                if name == "values":
                    self._last_values = data
                yield name, data

    def _graph_chunk(self, name: str, data: Any) -> Iterator[tuple[str, Any]]:
        mode, bar, namespace = name.partition("|")
        if mode != "messages":
            if mode in self.modes:
                yield name, data
            return
        if "messages-tuple" in self.modes:
            yield name, data
        if "messages" in self.modes:
            chunk, metadata = data
            message_id = chunk.get("id")
            if message_id not in self._messages:
                yield f"messages/metadata{bar}{namespace}", {message_id: {"metadata": metadata}}
            if str(chunk.get("type", "")).endswith("Chunk"):
                whole = self._messages[message_id] = _added(self._messages.get(message_id), chunk)
                yield f"messages/partial{bar}{namespace}", [whole]
            else:
                self._messages[message_id] = chunk
                yield f"messages/complete{bar}{namespace}", [chunk]

    def end(self, status: str) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": status}


def _added(whole: dict[str, Any] | None, chunk: dict[str, Any]) -> dict[str, Any]:
    """A message so far plus its next chunk, added up as LangChain adds message chunks
    (content, tool call chunks, usage)."""
    from langchain_core import messages

    kind = getattr(messages, chunk["type"], None)
    if not (isinstance(kind, type) and issubclass(kind, messages.BaseMessageChunk)):
        return chunk  # not a chunk LangChain knows: the latest is the whole
    added = kind.model_validate(chunk)
    if whole is not None:
        added = kind.model_validate(whole) + added
    return added.model_dump(mode="json")


async def event_stream(
    run_id: str, attempt: int, modes: list[str], events: AsyncIterator[Event | None],
    final_status: Callable[[], Awaitable[RunStatus]], *, graph: bool = False,
    id_prefix: str = "",
) -> AsyncIterator[bytes]:
    """``metadata``, then the rendered log as it grows, a comment-line heartbeat for each
    idle tick (None) of ``events``; ends when ``events`` does (the run ended), with ``end``
    from ``final_status()`` if the log read gave none (it resumed past the run's end)."""
    view = StreamView(run_id, modes, graph=graph)
    yield sse("metadata", {"run_id": run_id, "attempt": attempt})
    async for event in events:
        if event is None:
            yield HEARTBEAT
            continue
        parts = list(view.render(event))
        for k, (name, data) in enumerate(parts):
            yield sse(name, data, f"{id_prefix}{event.seq}" if k == len(parts) - 1 else None)
    if not view.ended:
        yield sse("end", view.end((await final_status()).value))


async def thread_runs(
    request: Request, service: RunService, thread_id: str, first: Run | None, *,
    after: str | None, caller: Caller | None,
) -> AsyncIterator[Run | None]:
    """The runs a thread's stream follows, one after the other: ``first`` (if any), then
    each run created after the last one given (after run ``after`` to begin with; with
    neither, the thread's oldest active run), until the server shuts down. A new run is
    looked for every ``poll_interval``; None after each SSE heartbeat's time of waiting (a
    keep-alive tick). The consumer reads a run's log to its end before it asks for the
    next run."""
    state = request.app.state
    poll, heartbeat = state.runplane.settings.poll_interval, state.settings.sse_heartbeat
    run, last, idle = first, after, 0.0
    while not state.shutting_down:
        if run is None:
            run = await service.next_thread_run(thread_id, last, caller=caller)
            if run is None:
                await asyncio.sleep(poll)
                idle += poll
                if idle >= heartbeat:
                    idle = 0.0
                    yield None
                continue
        idle = 0.0
        yield run
        last, run = run.run_id, None
