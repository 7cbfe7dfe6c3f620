"""Server-sent events from a run's durable event log, in the LangGraph stream format.

A stream is a view of the log, never a separate channel: joining late replays
what was missed, and ``Last-Event-ID`` (the log's sequence number) resumes
after the last event a client saw. One log event can give several stream
events (a completion gives its final ``values`` and the ``end``); only the
last of them carries the id, so a client cut off between them sees them all
again.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

from runplane.models import Event

#: Log events that end a run, and the stream ``error`` payload each gives.
_FAILURES = {"run:fail": "RunError", "run:timeout": "RunTimeout"}
_ENDINGS = {"run:complete": "success", "run:fail": "error", "run:timeout": "timeout",
            "run:cancel": "interrupted"}


def sse(event: str, data: Any, event_id: int | None = None) -> bytes:
    lines = f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n"
    if event_id is not None:
        lines += f"id: {event_id}\n"
    return (lines + "\n").encode()


HEARTBEAT = b": heartbeat\n\n"


def parse_last_event_id(value: str | None) -> int:
    """The sequence number to resume after; anything unparsable replays from the start."""
    try:
        return max(0, int(value)) if value else 0
    except ValueError:
        return 0


class StreamView:
    """Turns log events into the stream events of the requested modes."""

    def __init__(self, run_id: str, modes: list[str]) -> None:
        self.run_id = run_id
        self.modes = set(modes)
        self._last_values: Any = None

    def render(self, event: Event) -> Iterator[tuple[str, Any]]:
        name, data = event.event, event.data
        if "debug" in self.modes:
            yield "debug", {"type": name, "seq": event.seq, "data": data,
                            "timestamp": event.created_at.isoformat()}
        if name == "step:complete":
            if "updates" in self.modes:
                yield "updates", {data["name"]: data["result"]}
        elif name == "run:complete":
            output = data.get("output")
            if "values" in self.modes and output is not None and output != self._last_values:
                yield "values", output
        elif name in _FAILURES:
            yield "error", {"error": _FAILURES[name], "message": data.get("error")}
        elif ":" not in name and name in self.modes:  # a workflow's ctx.emit(mode, data)
            if name == "values":
                self._last_values = data
            yield name, data
        if name in _ENDINGS:
            yield "end", {"run_id": self.run_id, "status": _ENDINGS[name]}


async def event_stream(
    run_id: str, attempt: int, modes: list[str], events: AsyncIterator[Event | None]
) -> AsyncIterator[bytes]:
    """``metadata``, then the rendered log as it grows, a comment-line heartbeat for each
    idle tick (None) of ``events``; ends when ``events`` does (the run ended)."""
    view = StreamView(run_id, modes)
    yield sse("metadata", {"run_id": run_id, "attempt": attempt})
    async for event in events:
        if event is None:
            yield HEARTBEAT
            continue
        parts = list(view.render(event))
        for k, (name, data) in enumerate(parts):
            yield sse(name, data, event.seq if k == len(parts) - 1 else None)
