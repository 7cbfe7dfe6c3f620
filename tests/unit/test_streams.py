"""The stream view of a run's log: which stream events each log event gives, and that a
stream of a finished run always ends with ``end``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from runplane.models import Event, RunStatus
from runplane.server.streams import (
    STREAM_MODES,
    StreamView,
    event_stream,
    parse_last_event_id,
)
from runplane.server.wire import RunCreate, stream_modes

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def ev(seq: int, name: str, data: Any) -> Event:
    return Event("r1", seq, name, data, NOW)


def test_emits_under_a_stream_mode_stream_under_that_mode() -> None:
    view = StreamView("r1", ["values", "custom", "messages"])
    assert list(view.render(ev(1, "values", {"v": 1}))) == [("values", {"v": 1})]
    assert list(view.render(ev(2, "custom", {"p": 1}))) == [("custom", {"p": 1})]
    assert list(view.render(ev(3, "messages", ["m"]))) == [("messages", ["m"])]
    assert list(view.render(ev(4, "updates", {"u": 1}))) == []  # not asked for


def test_emits_under_other_names_stream_under_custom_with_their_name() -> None:
    assert list(StreamView("r1", ["custom"]).render(ev(1, "progress", 0.5))) == [
        ("custom", {"progress": 0.5})]
    assert list(StreamView("r1", ["values"]).render(ev(1, "progress", 0.5))) == []


def test_stream_modes_are_langgraphs_and_unknown_ones_are_refused() -> None:
    assert stream_modes(None) == stream_modes([]) == stream_modes("") == ["values"]
    assert stream_modes(["updates", "values", "updates"]) == ["updates", "values"]
    assert stream_modes(list(STREAM_MODES)) == list(STREAM_MODES)
    with pytest.raises(ValueError, match=r"unknown stream mode 'progress', 'x'; allowed: "
                                         r"values, updates, custom, debug, messages"):
        stream_modes(["values", "progress", "x"])
    with pytest.raises(ValueError, match="unknown stream mode 'valuez'"):
        RunCreate(assistant_id="a", stream_mode="valuez")


@pytest.mark.parametrize(("header", "after"), [
    (None, 0), ("", 0), ("7", 7), (" 7 ", 7), ("-3", 0), ("x", 0), ("1e3", 0), ("٣", 0),
    (str(2**63 - 1), 2**63 - 1), ("0" * 30 + "5", 5), ("9" * 5000, 2**63),
])
def test_last_event_id_parses_decimal_numbers_of_any_size(header: str | None,
                                                          after: int) -> None:
    assert parse_last_event_id(header) == after


async def _log(*events: Event) -> AsyncIterator[Event | None]:
    for event in events:
        yield event


async def _messages(stream: AsyncIterator[bytes]) -> list[tuple[str, Any, str | None]]:
    out = []
    async for chunk in stream:
        fields = dict(line.split(": ", 1) for line in chunk.decode().splitlines() if line)
        out.append((fields["event"], json.loads(fields["data"]), fields.get("id")))
    return out


async def test_a_log_read_past_the_runs_end_still_ends_with_end() -> None:
    async def status() -> RunStatus:
        return RunStatus.TIMEOUT

    got = await _messages(event_stream("r1", 2, ["values"], _log(), status))
    assert got == [("metadata", {"run_id": "r1", "attempt": 2}, None),
                   ("end", {"run_id": "r1", "status": "timeout"}, None)]


async def test_end_is_sent_once_and_again_after_a_resume() -> None:
    asked: list[bool] = []

    async def status() -> RunStatus:
        asked.append(True)
        return RunStatus.SUCCESS

    ended = _log(ev(1, "run:cancel", {}), ev(2, "step:cancel", {}))
    got = await _messages(event_stream("r1", 1, ["values"], ended, status))
    assert [m[0] for m in got] == ["metadata", "end"] and not asked
    resumed = _log(ev(1, "run:cancel", {}), ev(2, "run:resume", {}))
    got = await _messages(event_stream("r1", 1, ["values"], resumed, status))
    assert [(m[0], m[1].get("status")) for m in got][1:] == [
        ("end", "interrupted"), ("end", "success")]


def _chunk(content: str, kind: str = "AIMessageChunk") -> dict[str, Any]:
    return {"content": content, "additional_kwargs": {}, "response_metadata": {}, "type": kind,
            "name": None, "id": "m1", "tool_calls": [], "invalid_tool_calls": [],
            "usage_metadata": None, "tool_call_chunks": []}


def test_a_graph_runs_chunks_stream_under_their_names_as_langgraph_sends_them() -> None:
    view = StreamView("r1", ["values", "updates", "debug"], graph=True)
    assert list(view.render(ev(2, "values", {"x": 1}))) == [("values", {"x": 1})]
    assert list(view.render(ev(3, "updates|sub:1", {"a": {}}))) == [("updates|sub:1", {"a": {}})]
    assert list(view.render(ev(4, "custom", {"p": 1}))) == []  # not asked for
    # the lifecycle is not debug output of a graph, and the output was streamed already
    assert list(view.render(ev(5, "run:start", {"attempt": 1}))) == []
    assert list(view.render(ev(6, "run:complete", {"output": {"x": 2}}))) == [
        ("end", {"run_id": "r1", "status": "success"})]


def test_a_graph_runs_message_chunks_as_tuples_or_as_messages_so_far() -> None:
    meta = {"langgraph_node": "chat"}
    tuples = StreamView("r1", ["messages-tuple"], graph=True)
    assert list(tuples.render(ev(2, "messages", [_chunk("Hel"), meta]))) == [
        ("messages", [_chunk("Hel"), meta])]
    whole = StreamView("r1", ["messages"], graph=True)
    first = list(whole.render(ev(2, "messages", [_chunk("Hel"), meta])))
    assert [name for name, _ in first] == ["messages/metadata", "messages/partial"]
    assert first[0][1] == {"m1": {"metadata": meta}}
    [(name, [so_far])] = list(whole.render(ev(3, "messages", [_chunk("lo"), meta])))
    assert (name, so_far["content"], so_far["id"]) == ("messages/partial", "Hello", "m1")
    done = {**_chunk("Hello"), "type": "ai", "id": "m2"}
    assert [name for name, _ in whole.render(ev(4, "messages|sub", [done, meta]))] == [
        "messages/metadata|sub", "messages/complete|sub"]
