"""Human in the loop for a native workflow over HTTP, through ``langgraph_sdk``: a run
that calls ``ctx.interrupt`` ends ``success`` with ``__interrupt__`` and leaves its thread
``interrupted``, exactly as a graph's interrupt does; a run created with
``command={"resume": ...}`` (or ``run.respond`` on a thread stream) goes on from there
without running a completed step again.
What a workflow cannot take is refused with a JSON ``detail`` and creates no run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from langgraph_sdk.client import LangGraphClient

from acceptance.http.helpers import assert_detail
from http_app import marks


async def test_a_paused_workflow_is_answered_through_the_sdk(
        client: LangGraphClient, tmp_path: Path):
    log = str(tmp_path / "executions")
    thread = (await client.threads.create())["thread_id"]
    output = await client.runs.wait(thread, "asks", input={"to": "Ada", "log": log})
    [asked] = output["__interrupt__"]
    assert asked["value"] == {"send to": "Ada"}
    [paused] = await client.runs.list(thread)
    assert paused["status"] == "success"
    waiting = await client.threads.get(thread)
    assert waiting["status"] == "interrupted"
    assert waiting["interrupts"] == {paused["run_id"]: [asked]}
    assert waiting["values"] == {"draft": "Ada"}

    answered = await client.runs.wait(thread, "asks", command={"resume": "approved"})
    assert answered == {"answer": "approved", "steps": ["draft", "send:approved"]}
    assert marks(log) == ["draft", "send:approved"]  # the draft step ran once
    done = await client.threads.get(thread)
    assert done["status"] == "idle" and done["interrupts"] == {}


def _refused(response: httpx.Response, status: int, says: str) -> None:
    assert says in assert_detail(response, status)["detail"]


async def test_what_a_workflow_run_cannot_answer_is_refused(
        client: LangGraphClient, http: httpx.AsyncClient):
    thread = (await client.threads.create())["thread_id"]
    path = f"/threads/{thread}/runs"
    _refused(await http.post(path, json={"assistant_id": "asks",
                                         "command": {"resume": "yes"}}),
             409, "no pending interrupt")
    await client.runs.wait(thread, "asks", input={"to": "Bo"})
    _refused(await http.post(path, json={"assistant_id": "echo",
                                         "command": {"resume": "yes"}}),
             409, "paused in workflow 'asks'")
    _refused(await http.post(path, json={"assistant_id": "asks",
                                         "command": {"update": {"to": "Cy"}}}),
             422, "update and goto are a graph's")
    _refused(await http.post(path, json={"assistant_id": "asks", "input": {"to": "Cy"},
                                         "command": {"resume": "yes"}}),
             422, "takes no input")
    assert len(await client.runs.list(thread)) == 1
    assert (await client.threads.get(thread))["status"] == "interrupted"


async def test_a_paused_workflow_is_answered_through_a_thread_stream(
        client: LangGraphClient, tmp_path: Path):
    """``client.threads.stream``: the pause shows as an interrupt, ``run.respond``
    answers it, and the stream follows the answering run to its end."""
    log = str(tmp_path / "executions")
    async with client.threads.stream(assistant_id="asks") as thread:
        await thread.run.start(input={"to": "Ada", "log": log})

        async def read_values() -> None:  # ends when the interrupt is asked
            async for _ in thread.values:
                pass

        await asyncio.wait_for(read_values(), 20)
        assert thread.interrupted
        [asked] = thread.interrupts
        assert asked["value"] == {"send to": "Ada"} and asked["namespace"] == []
        assert (await client.threads.get(thread.thread_id))["values"] == {"draft": "Ada"}
        await thread.run.respond("approved")
        output = await asyncio.wait_for(thread.output, 20)
    assert output == {"answer": "approved", "steps": ["draft", "send:approved"]}
    assert marks(log) == ["draft", "send:approved"]
