"""LangGraph's thread-centric streaming protocol (``client.threads.stream``) against
``runplane serve --config``, through the real ``langgraph_sdk``, on both stores: a chat
graph's values and token-streamed messages; an interrupt answered with ``run.respond``
(the node before it not run again); a cancel ends ``thread.output`` with the error; a
reconnect with ``since`` goes on with the same events; a refused command is an error
envelope, an unknown channel a 422, and neither starts a run."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from acceptance.http.helpers import Server, parse_sse, serve_graph_project

from support import eventually
from support.databases import STORES

TIMEOUT = 20.0


@pytest.fixture(scope="module", params=STORES)
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_graph_project(request, tmp_path_factory, "protocol")


async def _events(http: httpx.AsyncClient, thread_id: str, body: dict[str, Any],
                  until: str) -> list[dict[str, Any]]:
    """The envelopes of one event stream, read until one whose data ``event`` is
    ``until`` (the stream itself stays open)."""
    envelopes: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT), http.stream(
            "POST", f"/threads/{thread_id}/stream/events", json=body) as answer:
        assert answer.status_code == 200, await answer.aread()
        buffer = ""
        async for text in answer.aiter_text():
            buffer += text
            *frames, buffer = buffer.split("\n\n")
            for frame in parse_sse("\n\n".join(frames) + "\n\n") if frames else []:
                envelopes.append(json.loads(frame["data"]))
                if envelopes[-1]["params"]["data"].get("event") == until:
                    return envelopes
    raise AssertionError(f"the stream ended before {until!r}: {envelopes}")


async def test_a_chat_graph_streams_values_and_tokens(client: LangGraphClient,
                                                      http: httpx.AsyncClient):
    question = {"messages": [{"role": "user", "content": "what is runplane?"}]}
    thread_id = (await client.threads.create())["thread_id"]
    async with client.threads.stream(thread_id, assistant_id="agent") as thread:
        values: list[Any] = []
        messages: list[Any] = []
        subscribed = asyncio.Event()

        async def read_values() -> None:
            async for state in thread.values:
                values.append(state)
                subscribed.set()  # the first is the state read once its stream was open

        async def read_messages() -> None:
            async for message in thread.messages:
                messages.append(message)

        # The SDK opens one stream per new projection and may lose the first if the second
        # opens before the first's headers came: the projections open one after the
        # other, before the run starts, so that neither misses an event.
        reading = [asyncio.create_task(read_values())]
        await asyncio.wait_for(subscribed.wait(), TIMEOUT)
        reading.append(asyncio.create_task(read_messages()))
        await asyncio.sleep(0)  # lets it open its stream (it then waits for the headers)
        await thread.run.start(input=question)
        await asyncio.wait_for(asyncio.gather(*reading), TIMEOUT)
        output = await asyncio.wait_for(thread.output, TIMEOUT)
        texts = [await m.text for m in messages]
    answer = "Here is what I found: runplane runs agents as durable runs whose stop " \
             "button always works."
    assert texts == ["", answer]  # the tool call, then the answer
    assert [m.node for m in messages] == ["chat", "chat"]
    assert output["messages"][-1]["content"] == answer
    assert values[0] == {} and values[-1] == output
    # the answer came token by token, each its own event, in the thread's order
    events = await _events(http, thread_id, {"channels": ["messages", "lifecycle"]},
                           until="completed")
    deltas = [e["params"]["data"]["delta"]["text"] for e in events
              if e["params"]["data"].get("event") == "content-block-delta"
              and e["params"]["data"]["delta"]["type"] == "text-delta"]
    assert len(deltas) > 5 and "".join(deltas) == answer
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)) and all(e["event_id"] == str(e["seq"]) for e in events)
    assert [e["params"]["data"]["event"] for e in events
            if e["method"] == "lifecycle"] == ["running", "completed"]


async def test_an_interrupt_is_answered_with_respond(client: LangGraphClient):
    async with client.threads.stream(assistant_id="approval") as thread:
        await thread.run.start(input={"to": "Ada"})

        async def read_values() -> None:
            async for _ in thread.values:
                pass

        await asyncio.wait_for(read_values(), TIMEOUT)
        assert thread.interrupted
        [asked] = thread.interrupts
        assert asked["value"] == {"question": "send this email?",
                                  "draft": "Dear Ada, the run is done."}
        await thread.run.respond("approve")
        output = await asyncio.wait_for(thread.output, TIMEOUT)
    assert output["decision"] == "approve" and output["sent"] is True
    assert output["runs"] == ["draft", "review", "send"]  # draft ran once


async def test_a_cancelled_run_ends_the_output_with_its_reason(
        client: LangGraphClient, tmp_path: Path):
    gate = tmp_path / "gate"
    async with client.threads.stream(assistant_id="gated") as thread:
        run = await thread.run.start(input={"gate": str(gate)})

        async def running() -> bool:
            found = await client.runs.get(thread.thread_id, run["run_id"])
            return found["status"] == "running"

        await eventually(running, timeout=TIMEOUT)
        await client.runs.cancel(thread.thread_id, run["run_id"], wait=True)
        with pytest.raises(RuntimeError, match="run cancelled"):
            await asyncio.wait_for(thread.output, TIMEOUT)


async def test_a_reconnect_with_since_goes_on_where_it_left(
        client: LangGraphClient, http: httpx.AsyncClient):
    thread_id = str(uuid.uuid4())
    command = {"id": 1, "method": "run.start",
               "params": {"assistant_id": "approval", "input": {"to": "Bo"}}}
    started = (await http.post(f"/threads/{thread_id}/commands", json=command)).json()
    assert started["type"] == "success" and started["id"] == 1
    since = started["meta"]["applied_through_seq"]
    every = {"channels": ["values", "updates", "lifecycle", "input"], "since": since}
    whole = await _events(http, thread_id, every, until="interrupted")
    assert whole[0]["seq"] > since
    methods = [e["method"] for e in whole]
    assert methods[0] == "lifecycle" and "input.requested" in methods
    rest = await _events(http, thread_id, {**every, "since": whole[2]["seq"]},
                         until="interrupted")
    assert rest == whole[3:]
    # without since, a new connection replays the current run from its start
    assert await _events(http, thread_id, {"channels": every["channels"]},
                         until="interrupted") == whole
    updates = [e for e in whole if e["method"] == "updates"]
    assert updates[0]["params"]["node"] == "draft"


async def test_refused_commands_and_subscriptions_start_nothing(
        client: LangGraphClient, http: httpx.AsyncClient):
    thread_id = str(uuid.uuid4())
    path = f"/threads/{thread_id}/commands"
    for command, code in [
            ({"id": 7, "method": "state.get", "params": {}}, "unknown_command"),
            ({"id": 8, "method": "run.start", "params": {}}, "invalid_argument"),
            ({"id": 9, "method": "run.start", "params": {"assistant_id": "nope"}},
             "invalid_argument"),
            ({"id": 10, "method": "run.start",
              "params": {"assistant_id": "agent", "config": "not an object"}},
             "invalid_argument")]:
        answer = await http.post(path, json=command)
        assert answer.status_code == 200
        body = answer.json()
        assert body["type"] == "error" and body["id"] == command["id"], body
        assert body["error"] == code and body["message"], body
    assert (await http.post(path, json={"method": "run.start"})).status_code == 422
    thread = (await client.threads.create())["thread_id"]
    answer = await http.post(f"/threads/{thread}/commands", json={
        "id": 1, "method": "input.respond",
        "params": {"interrupt_id": "nope", "namespace": [], "response": 1}})
    assert answer.json()["error"] == "no_such_interrupt"
    answer = await http.post(f"/threads/{thread}/stream/events",
                             json={"channels": ["values", "gossip"]})
    assert answer.status_code == 422 and "gossip" in answer.text
    assert await client.runs.list(thread) == []
    # the refused run.start commands created neither the minted thread nor a run
    assert (await http.get(f"/threads/{thread_id}")).status_code == 404
