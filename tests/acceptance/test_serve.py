"""``runplane serve`` as a process: the demo assistants, and a shutdown that keeps runs.

A client that goes away cancels its run; a server that shuts down is not a client going
away: its streams end, its embedded worker hands the run back to the queue, and no cancel
is written.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from langgraph_sdk import get_client

from http_app import marks
from runplane import Runplane, RunStatus

from support import eventually
from support.processes import Processes, Server

#: What every server here runs with, but for its app and database.
SERVE = ("--poll-interval", "0.02", "--log-level", "warning")


async def _serve(processes: Processes, cwd: Path, *args: str) -> Server:
    return await asyncio.to_thread(processes.serve, "server", *args, *SERVE, cwd=cwd)


async def test_without_an_app_it_serves_the_demo_assistants(
    processes: Processes, tmp_path: Path
):
    served = await _serve(processes, tmp_path, "--database", f"sqlite:///{tmp_path}/demo.db")
    url, proc = served.url, served.process
    client = get_client(url=url)
    names = [a["assistant_id"] for a in await client.assistants.search()]
    assert names == ["flaky_tool", "needs_approval", "research_agent", "summarise"]
    out = await client.runs.wait(None, "summarise", input={"text": "One. Two three."})
    assert out == {"summary": "Two three. One."}
    thread = (await client.threads.create())["thread_id"]  # one asks a person
    asked = await client.runs.wait(thread, "needs_approval", input={"topic": "x"})
    assert asked["__interrupt__"][0]["value"]["question"] == "publish this post?"
    edited = await client.runs.wait(thread, "needs_approval",
                                    command={"resume": {"post": "Shorter."}})
    assert edited == {"published": "Shorter."}
    proc.send_signal(signal.SIGINT)
    await proc.ended(30)
    assert f"on {url}" in proc.output()


async def test_a_server_shutdown_hands_streamed_runs_back_instead_of_cancelling(
    processes: Processes, tmp_path: Path
):
    database = f"sqlite:///{tmp_path}/shutdown.db"
    served = await _serve(processes, tmp_path, "http_app:app", "--database", database,
                          "--grace", "0.2", "--sse-heartbeat", "0.2")
    url, proc = served.url, served.process
    client = get_client(url=url)
    marker = str(tmp_path / "marker")
    parts: list[str] = []

    async def consume() -> None:  # on_disconnect defaults to "cancel"
        async for part in client.runs.stream(None, "parks", input={"marker": marker}):
            parts.append(part.event)

    streaming = asyncio.ensure_future(consume())
    await eventually(lambda: "parked" in marks(marker))
    proc.send_signal(signal.SIGTERM)
    await proc.ended(30)
    streaming.cancel()
    await asyncio.gather(streaming, return_exceptions=True)
    assert "cleanup-done" in marks(marker)  # the worker stopped the task at shutdown

    async with Runplane(database, worker=False) as rp:
        [run] = await rp.runs.list()
        events = [e.event for e in await rp.runs.events(run.run_id)]
    assert run.status is RunStatus.PENDING, events  # back in the queue, not interrupted
    assert "run:cancel" not in events and events[-1] == "run:resume"
    assert parts[0] == "metadata"
