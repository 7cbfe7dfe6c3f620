"""``runplane serve`` as a process: the demo assistants, and a shutdown that keeps runs.

A client that goes away cancels its run; a server that shuts down is not a client going
away: its streams end, its embedded worker hands the run back to the queue, and no cancel
is written.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from http_app import marks
from runplane import Runplane, RunStatus

from support import APPS, eventually, free_port


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[callable]:
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> tuple[str, subprocess.Popen]:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "runplane.cli", "serve", *args, "--port", str(port),
             "--poll-interval", "0.02", "--log-level", "warning"],
            env={**os.environ, "PYTHONPATH": str(APPS)}, cwd=tmp_path,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        return f"http://127.0.0.1:{port}", proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


async def _up(url: str) -> None:
    async def ok() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(f"{url}/ok")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(ok, timeout=30)


async def test_without_an_app_it_serves_the_demo_assistants(serve, tmp_path: Path):
    url, proc = serve("--database", f"sqlite:///{tmp_path}/demo.db")
    await _up(url)
    client = get_client(url=url)
    names = [a["assistant_id"] for a in await client.assistants.search()]
    assert names == ["flaky_tool", "research_agent", "summarise"]
    out = await client.runs.wait(None, "summarise", input={"text": "One. Two three."})
    assert out == {"summary": "Two three. One."}
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=30)
    assert f"on {url}" in output


async def test_a_server_shutdown_hands_streamed_runs_back_instead_of_cancelling(
    serve, tmp_path: Path
):
    database = f"sqlite:///{tmp_path}/shutdown.db"
    url, proc = serve("http_app:app", "--database", database, "--grace", "0.2",
                      "--sse-heartbeat", "0.2")
    await _up(url)
    client = get_client(url=url)
    marker = str(tmp_path / "marker")
    parts: list[str] = []

    async def consume() -> None:  # on_disconnect defaults to "cancel"
        async for part in client.runs.stream(None, "parks", input={"marker": marker}):
            parts.append(part.event)

    streaming = asyncio.ensure_future(consume())
    await eventually(lambda: "parked" in marks(marker))
    proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(proc.communicate, timeout=30)
    streaming.cancel()
    await asyncio.gather(streaming, return_exceptions=True)
    assert "cleanup-done" in marks(marker)  # the worker stopped the task at shutdown

    async with Runplane(database, worker=False) as rp:
        [run] = await rp.runs.list()
        events = [e.event for e in await rp.runs.events(run.run_id)]
    assert run.status is RunStatus.PENDING, events  # back in the queue, not interrupted
    assert "run:cancel" not in events and events[-1] == "run:resume"
    assert parts[0] == "metadata"
