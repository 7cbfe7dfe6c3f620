"""The events of LangGraph's thread-centric streaming protocol (``client.threads.stream``),
rendered from a run's durable log.

Like the run streams of :mod:`runplane.server.streams`, a protocol stream is a view of the
log, never a separate channel: a connection replays a run's log from its start and renders
it the same way every time, so each event gets the same ``seq`` (and ``event_id``) on every
connection, and ``since`` resumes after the last one a client saw. The ``seq`` of an event
is its place in the thread: the run's creation order, the log event's own sequence number,
and the event's place among those one log event gives (``cursor``), so it only grows along
a thread's runs.

What each log event gives (a graph run logs LangGraph's chunks, ``mode|ns``; a workflow's
log its steps and ``ctx.emit`` events):

- ``run:start``: root ``lifecycle`` ``running``;
- ``values`` (a graph's chunk, or a workflow's ``ctx.emit("values")``): ``input.requested``
  for each interrupt it carries that was not asked yet (``interrupt_id``, ``payload`` and
  ``value``: the SDK reads the latter), root ``lifecycle`` ``interrupted`` after them, then
  ``values`` without ``__interrupt__`` (none if nothing else is left);
- ``updates`` (a graph's chunk; a workflow's completed step, named for the step): one node's
  update with its ``node``, several as they are; ``__interrupt__`` as for ``values``;
- ``messages`` (a graph's ``(message, metadata)`` chunks): the content-block events of
  each AI message (``message-start``, ``content-block-start``/``-delta``/``-finish``,
  ``message-finish``) as its tokens arrive, built by langchain_core's own converter; a
  message ends with its last chunk, at the next ``values``/``updates`` of its namespace,
  or with the run;
- ``custom``: ``{"payload": data}`` (a workflow's ``ctx.emit(name, data)`` under another
  name: ``{"name": name, "payload": data}``, the channel ``custom:<name>``); ``tasks`` as
  LangGraph gives them;
- the run's end: root ``lifecycle`` ``completed``; ``interrupted`` when its output is an
  interrupt (the thread waits for an answer); ``failed`` with the error for a failed,
  timed-out or cancelled run (the SDK's ``thread.output`` waits for ``completed`` or
  ``failed``, so a cancel must end it too).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from runplane.lifecycle import RESERVED_PREFIXES, EventName
from runplane.models import STREAM_MODES, Event, Run

#: The protocol's channels (``custom:<name>`` too).
CHANNELS = ("values", "updates", "messages", "tools", "lifecycle", "input", "checkpoints",
            "tasks", "custom")
#: What a run started through the protocol logs, for a graph (with its subgraphs').
RUN_STREAM_MODES = ["values", "updates", "messages-tuple", "custom", "tasks"]

_EVENT_BITS, _PART_BITS = 24, 8


def cursor(run_seq: int, event_seq: int, part: int) -> int:
    """An event's ``seq``: its run's creation order, the log event's sequence number, and
    its place among the events that log event gives."""
    return (run_seq << (_EVENT_BITS + _PART_BITS)) | (event_seq << _PART_BITS) | \
        min(part, (1 << _PART_BITS) - 1)


def run_seq_of(seq: int) -> int:
    """The creation order of the run an event's ``seq`` belongs to."""
    return seq >> (_EVENT_BITS + _PART_BITS)


#: One rendered event: method, namespace, data and node (or None).
Rendered = tuple[str, list[str], Any, str | None]


class ProtocolView:
    """Turns one run's log events, in order from its first, into protocol events."""

    def __init__(self, run: Run) -> None:
        self.graph = run.of_graph
        self.graph_name = run.assistant_id
        #: interrupt ids already asked (an interrupt shows in ``values`` and ``updates``)
        self._asked: set[str] = set()
        #: the AI messages still streaming, by namespace and message id
        self._messages: dict[tuple[str, ...], dict[str, _MessageEvents]] = {}

    def render(self, event: Event) -> Iterator[Rendered]:
        name, data = event.event, event.data
        if name == EventName.RUN_START:
            yield self._lifecycle("running")
        elif name in (EventName.RUN_COMPLETE, EventName.RUN_FAIL, EventName.RUN_TIMEOUT,
                      EventName.RUN_CANCEL):
            yield from self._end(name, data)
        elif name == EventName.STEP_COMPLETE and not self.graph:
            yield from self._updates([], {data["name"]: data["result"]})
        elif not name.startswith(RESERVED_PREFIXES):
            mode, _, namespace = name.partition("|")
            yield from self._chunk(mode, namespace.split("|") if namespace else [], data)

    def _chunk(self, mode: str, namespace: list[str], data: Any) -> Iterator[Rendered]:
        if mode == "values":
            yield from self._finish_messages(namespace)
            yield from self._interrupts(namespace, (data or {}).get("__interrupt__")
                                        if isinstance(data, dict) else None)
            values = _without_interrupts(data)
            if values is not None:
                yield "values", namespace, values, None
        elif mode == "updates" and self.graph:
            yield from self._finish_messages(namespace)
            yield from self._updates(namespace, data)
        elif mode == "messages" and self.graph:
            yield from self._message_chunk(namespace, data)
        elif mode == "tasks" and self.graph:
            yield "tasks", namespace, data, None
        elif mode == "custom":
            yield "custom", namespace, {"payload": data}, None
        elif not self.graph and mode not in STREAM_MODES:  # a workflow's ctx.emit(name, ...)
            yield "custom", namespace, {"name": mode, "payload": data}, None

    def _updates(self, namespace: list[str], data: Any) -> Iterator[Rendered]:
        if not isinstance(data, dict):
            return
        yield from self._interrupts(namespace, data.get("__interrupt__"))
        nodes = {k: v for k, v in data.items() if k != "__interrupt__"}
        if len(nodes) == 1:
            [(node, update)] = nodes.items()
            yield ("updates", namespace, update if isinstance(update, dict)
                   else {"value": update}, node)
        elif nodes:
            yield "updates", namespace, nodes, None

    def _interrupts(self, namespace: list[str], asked: Any) -> Iterator[Rendered]:
        new = [i for i in asked or () if isinstance(i, dict)
               and isinstance(i.get("id"), str) and i["id"] not in self._asked]
        for interrupt in new:
            self._asked.add(interrupt["id"])
            value = interrupt.get("value")
            yield "input.requested", namespace, {"interrupt_id": interrupt["id"],
                                                 "payload": value, "value": value}, None
        if new:
            yield self._lifecycle("interrupted")

    def _end(self, name: str, data: Any) -> Iterator[Rendered]:
        for namespace in list(self._messages):
            yield from self._finish_messages(list(namespace))
        if name == EventName.RUN_COMPLETE:
            output = (data or {}).get("output")
            asked = output.get("__interrupt__") if isinstance(output, dict) else None
            yield from self._interrupts([], asked)
            if not asked:
                yield self._lifecycle("completed")
            return
        error = (data or {}).get("error") if name != EventName.RUN_CANCEL else \
            "run cancelled" + (f": {data['reason']}" if (data or {}).get("reason") else "")
        yield self._lifecycle("failed", error=error or name)

    def _lifecycle(self, event: str, **extra: Any) -> Rendered:
        return "lifecycle", [], {"event": event, "graph_name": self.graph_name, **extra}, None

    def _message_chunk(self, namespace: list[str], data: Any) -> Iterator[Rendered]:
        from langchain_core.messages import AIMessage, AIMessageChunk

        if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], dict)):
            return
        raw, metadata = data
        kind = raw.get("type")
        node = (metadata or {}).get("langgraph_node") if isinstance(metadata, dict) else None
        if kind == "AIMessageChunk":
            chunk = AIMessageChunk.model_validate(raw)
            open_ = self._messages.setdefault(tuple(namespace), {})
            key = chunk.id or ""
            if key not in open_:
                open_[key] = _MessageEvents(node)
            for part in open_[key].add(chunk):
                yield "messages", namespace, part, None
            if chunk.chunk_position == "last" or chunk.response_metadata.get("finish_reason"):
                for part in open_.pop(key).finish():
                    yield "messages", namespace, part, None
        elif kind == "ai":  # a whole message a node returned
            for part in _MessageEvents.whole(AIMessage.model_validate(raw), node):
                yield "messages", namespace, part, None

    def _finish_messages(self, namespace: list[str]) -> Iterator[Rendered]:
        for message in self._messages.pop(tuple(namespace), {}).values():
            for part in message.finish():
                yield "messages", namespace, part, None


def _without_interrupts(values: Any) -> Any:
    if isinstance(values, dict) and "__interrupt__" in values:
        return {k: v for k, v in values.items() if k != "__interrupt__"} or None
    return values


class _MessageEvents:
    """One AI message's content-block events as its chunks arrive: the steps of
    langchain_core's ``chunks_to_events``, which only converts a finished iterator."""

    def __init__(self, node: str | None) -> None:
        self.node = node
        self.started = False
        self.blocks: dict[Any, tuple[int, Any]] = {}
        self.usage: Any = None
        self.response_metadata: dict[str, Any] = {}
        self.additional_kwargs: dict[str, Any] = {}

    def add(self, chunk: Any) -> Iterator[dict[str, Any]]:
        from langchain_core.language_models import _compat_bridge as bridge
        from langchain_core.utils._merge import merge_dicts

        self.response_metadata.update(chunk.response_metadata or {})
        if chunk.additional_kwargs:
            self.additional_kwargs = merge_dicts(self.additional_kwargs, chunk.additional_kwargs)
        if not self.started:
            self.started = True
            yield self._start(bridge._build_message_start(chunk, None))
        for key, block in bridge._iter_protocol_blocks(chunk):
            if key not in self.blocks:
                index = len(self.blocks)
                self.blocks[key] = (index, dict(block))
                yield {"event": "content-block-start", "index": index,
                       "content": bridge._start_skeleton(block)}
            else:
                index, so_far = self.blocks[key]
                self.blocks[key] = (index, bridge._accumulate(so_far, block))
            delta = bridge._to_content_delta(block)
            if delta is not None:
                yield {"event": "content-block-delta", "index": index, "delta": delta}
        if chunk.usage_metadata:
            self.usage = bridge._accumulate_usage(self.usage, chunk.usage_metadata)

    def finish(self) -> Iterator[dict[str, Any]]:
        from langchain_core.language_models import _compat_bridge as bridge

        if not self.started:
            return
        for index, block in self.blocks.values():
            yield dict(bridge._finalize_and_build_finish(index, block))
        yield dict(bridge._build_message_finish(
            usage=self.usage, response_metadata=self.response_metadata,
            additional_kwargs=self.additional_kwargs))

    @staticmethod
    def whole(message: Any, node: str | None) -> Iterator[dict[str, Any]]:
        from langchain_core.language_models._compat_bridge import message_to_events

        for k, part in enumerate(message_to_events(message)):
            yield _MessageEvents(node)._start(part) if k == 0 else dict(part)

    def _start(self, start: Any) -> dict[str, Any]:
        """``message-start``, with the node that made the message (the SDK's ``node``)."""
        start = dict(start)
        if self.node is not None:
            start["metadata"] = {**start.get("metadata", {}), "langgraph_node": self.node}
        return start
