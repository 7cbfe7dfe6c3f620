"""How a graph's run is handed to LangGraph, without running one: the config it gets, the
modes it streams, its chunks as JSON."""

from __future__ import annotations

import dataclasses
import uuid
from types import SimpleNamespace
from typing import Any

from langchain_core.messages import AIMessageChunk
from langgraph.types import Interrupt, Send

from runplane.graphs.runner import graph_modes, jsonable, run_config

RUN = str(uuid.uuid4())


def _ctx(**changes: Any) -> Any:
    return SimpleNamespace(**{"thread_id": "t1", "run_id": RUN, "assistant_id": "a1",
                              "attempt": 2, **changes})


def test_the_runs_identity_is_laid_over_its_config() -> None:
    config = run_config(_ctx(), "agent", {"config": {
        "configurable": {"user": "ada", "thread_id": "not-this-one"},
        "metadata": {"source": "ui"}, "recursion_limit": 5, "tags": ["x"]}})
    assert config["configurable"] == {
        "user": "ada", "thread_id": "t1", "checkpoint_ns": "", "run_id": RUN,
        "assistant_id": "a1", "graph_id": "agent"}
    # metadata.run_id makes a second attempt resume its own checkpoint
    assert config["metadata"] == {"source": "ui", "thread_id": "t1", "run_id": RUN,
                                  "assistant_id": "a1", "graph_id": "agent", "run_attempt": 2}
    assert (config["recursion_limit"], config["tags"]) == (5, ["x"])
    assert config["run_id"] == uuid.UUID(RUN)


def test_a_run_id_that_is_no_uuid_is_not_the_graphs_root_run_id() -> None:
    assert "run_id" not in run_config(_ctx(run_id="my-run"), "agent", {})


def test_the_graph_always_streams_values_and_messages_tuple_is_its_messages() -> None:
    assert graph_modes([]) == ["values"]
    assert graph_modes(["updates"]) == ["values", "updates"]
    assert graph_modes(["messages-tuple", "messages", "events", "values"]) == [
        "values", "messages"]


def test_chunks_become_json_as_the_langgraph_server_sends_them() -> None:
    @dataclasses.dataclass
    class Point:
        x: int

    chunk = AIMessageChunk(content="hi", id="m1")
    assert jsonable({"m": chunk, "p": Point(1), "s": {3}, "i": Interrupt("ok?", id="i1"),
                     "send": Send("node", {"a": 1}), "t": ("a", 1)}) == {
        "m": chunk.model_dump(mode="json"), "p": {"x": 1}, "s": [3],
        "i": {"value": "ok?", "id": "i1", "response_schema": None},
        "send": {"node": "node", "arg": {"a": 1}},
        "t": ["a", 1]}
