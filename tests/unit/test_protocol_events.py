"""The thread streaming protocol's view of a run's log: which protocol events each log
event gives, in which order, and which subscriptions take them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessageChunk

from runplane.models import CancelAction, Event, MultitaskStrategy, Run, RunStatus
from runplane.server.protocol import _wanted
from runplane.server.protocol_events import ProtocolView, cursor, run_seq_of
from runplane.server.wire import EventStreamRequest

NOW = datetime(2026, 1, 1, tzinfo=UTC)
RUN = Run(
    run_id="r1", thread_id="t1", assistant_id="agent", status=RunStatus.RUNNING, input=None,
    output=None, error=None, metadata={}, multitask_strategy=MultitaskStrategy.ENQUEUE,
    created_at=NOW, updated_at=NOW, started_at=NOW, ended_at=None, attempt=1,
    max_attempts=3, timeout=None, deadline_at=None, lease_owner=None, lease_generation=1,
    lease_expires_at=None, step_index=0, cancel_requested_at=None, cancel_reason=None,
    cancel_action=None, cancel_requested_by=None, cancelled_generation=None,
    root_run_id="r1", parent_run_id=None,
    kwargs={"config": {}, "stream_mode": ["values"]}, seq=7)
WORKFLOW = dataclasses.replace(RUN, kwargs={})


def rendered(view: ProtocolView, *events: tuple[str, Any]) -> list[tuple[str, Any, Any]]:
    out = []
    for seq, (name, data) in enumerate(events, 1):
        for method, namespace, body, node in view.render(Event("r1", seq, name, data, NOW)):
            out.append((method, namespace, body if node is None else (node, body)))
    return out


def chunk(text: str, **extra: Any) -> list[Any]:
    message = AIMessageChunk(content=text, id="m1", **extra).model_dump(mode="json")
    return [message, {"langgraph_node": "chat"}]


def test_a_graph_run_gives_lifecycle_values_and_the_tokens_of_its_messages() -> None:
    assert RUN.of_graph
    events = rendered(
        ProtocolView(RUN),
        ("run:created", {}), ("run:start", {}),
        ("values", {"messages": []}),
        ("messages", chunk("Hel")), ("messages", chunk("lo")),
        ("updates", {"chat": {"messages": ["Hello"]}}),
        ("run:complete", {"output": {"messages": ["Hello"]}}))
    kinds = [(m, b.get("event") if isinstance(b, dict) else None) for m, _, b in events]
    assert kinds == [
        ("lifecycle", "running"), ("values", None),
        ("messages", "message-start"), ("messages", "content-block-start"),
        ("messages", "content-block-delta"), ("messages", "content-block-delta"),
        ("messages", "content-block-finish"), ("messages", "message-finish"),
        ("updates", None), ("lifecycle", "completed")]
    start = events[2][2]
    assert start["id"] == "m1" and start["metadata"]["langgraph_node"] == "chat"
    assert [e[2]["delta"]["text"] for e in events[4:6]] == ["Hel", "lo"]
    assert events[6][2]["content"] == {"type": "text", "text": "Hello"}
    assert events[8][2] == ("chat", {"messages": ["Hello"]})


def test_a_message_ends_with_its_last_chunk() -> None:
    events = rendered(ProtocolView(RUN), ("messages", chunk("Hi")),
                      ("messages", chunk("", chunk_position="last")))
    assert [b["event"] for _, _, b in events][-2:] == ["content-block-finish",
                                                       "message-finish"]


def test_an_interrupt_is_asked_once_and_the_run_ends_interrupted() -> None:
    asked = {"__interrupt__": [{"id": "i1", "value": {"q": "ok?"}}]}
    events = rendered(ProtocolView(RUN),
                      ("values", {"done": 1, **asked}), ("updates", asked),
                      ("run:complete", {"output": {"done": 1, **asked}}))
    assert events == [
        ("input.requested", [], {"interrupt_id": "i1", "payload": {"q": "ok?"},
                                 "value": {"q": "ok?"}}),
        ("lifecycle", [], {"event": "interrupted", "graph_name": "agent"}),
        ("values", [], {"done": 1})]


def test_every_other_end_is_failed_with_its_reason() -> None:
    for name, data, error in [("run:fail", {"error": "boom"}, "boom"),
                              ("run:timeout", {"error": "too slow"}, "too slow"),
                              ("run:cancel", {"reason": "user stop",
                                              "action": CancelAction.INTERRUPT.value},
                               "run cancelled: user stop")]:
        assert rendered(ProtocolView(RUN), (name, data)) == [
            ("lifecycle", [], {"event": "failed", "graph_name": "agent", "error": error})]


def test_a_workflow_run_gives_its_steps_emits_and_pause() -> None:
    events = rendered(ProtocolView(WORKFLOW),
                      ("step:complete", {"name": "draft", "index": 0, "result": "text"}),
                      ("progress", {"of": 3}), ("custom", 5),
                      ("run:complete", {"output": {"__interrupt__": [
                          {"id": "p1", "value": "send?"}]}}))
    assert events == [
        ("updates", [], ("draft", {"value": "text"})),
        ("custom", [], {"name": "progress", "payload": {"of": 3}}),
        ("custom", [], {"payload": 5}),
        ("input.requested", [], {"interrupt_id": "p1", "payload": "send?", "value": "send?"}),
        ("lifecycle", [], {"event": "interrupted", "graph_name": "agent"})]


def test_seq_grows_along_runs_logs_and_parts() -> None:
    ordered = [cursor(7, 1, 0), cursor(7, 1, 3), cursor(7, 2, 0), cursor(8, 1, 0)]
    assert ordered == sorted(set(ordered))
    assert run_seq_of(cursor(8, 123, 4)) == 8


def test_subscriptions_take_their_channels_and_namespaces() -> None:
    def takes(request: dict[str, Any], method: str, namespace: list[str],
              data: Any = None) -> bool:
        return _wanted(EventStreamRequest(**request), (method, namespace, data or {}, None))

    assert takes({"channels": ["input"]}, "input.requested", [])
    assert not takes({"channels": ["values"]}, "updates", [])
    assert takes({"channels": ["custom"]}, "custom", [], {"name": "x", "payload": 1})
    assert takes({"channels": ["custom:x"]}, "custom", [], {"name": "x", "payload": 1})
    assert not takes({"channels": ["custom:y"]}, "custom", [], {"name": "x"})
    root = {"channels": ["messages"], "namespaces": [[]], "depth": 0}
    assert takes(root, "messages", []) and not takes(root, "messages", ["agent:1"])
    under = {"channels": ["values"], "namespaces": [["agent"]], "depth": 1}
    assert takes(under, "values", ["agent:3f1", "tools:9"])
    assert not takes(under, "values", ["agent:3f1", "tools:9", "deep:1"])
    assert not takes({"channels": ["values"], "namespaces": [["agent:zzz"]]}, "values",
                     ["agent:3f1"])
