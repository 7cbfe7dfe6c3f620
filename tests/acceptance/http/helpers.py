"""What the tests of the HTTP API share: the server under test and the calls they make.

One server per store serves ``http_app:app`` for the package (``conftest.server``); a
module that reads the server's whole output starts one of its own. Races are made
deterministic with workflows that park until cancelled (``parks``) or until the test opens
a gate (``ticks``), and with condition waits (``eventually``) instead of sleeps: marker files
written by the workflow's step and its ``finally`` show the test when it really parked and
when its cleanup really ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from http_app import marks

from support import APPS, eventually
from support.databases import database_for_processes
from support.processes import Process, Processes

#: ``--max-body-bytes`` of the server under test.
MAX_BODY_BYTES = 64 * 1024
#: How long a stream that must end may take before the test calls it a hang.
STREAM_TIMEOUT = 20.0
ACTIVE = ("pending", "running")


@dataclass
class Server:
    """A ``runplane serve`` process on one store, and its output."""

    store: str
    database: str
    url: str
    process: Process

    def output(self, start: int = 0) -> str:
        """What it printed from byte ``start`` on (its end, if long)."""
        return self.process.tail(start)

    def output_size(self) -> int:
        return self.process.output_size()


@contextlib.contextmanager
def http_server(store: str, database: str, folder: Path, *args: str,
                target: str | None = "http_app:app") -> Iterator[Server]:
    """``runplane serve`` of ``target`` (None: the demo assistants) with ``args`` added, up
    while the block runs."""
    with Processes(folder) as procs:
        started = procs.serve("server", *([target] if target else []), "--database", database,
                              "--poll-interval", "0.02",
                              "--max-body-bytes", str(MAX_BODY_BYTES), *args)
        try:
            yield Server(store, database, started.url, started.process)
        finally:
            # Leftover active runs (a failed test) would hold the graceful shutdown.
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{started.url}/runs/cancel", json={"status": "all"}, timeout=10)


def serve_http_app(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The body of a ``server`` fixture: ``http_app:app`` on a fresh database of the store
    ``request.param``."""
    folder = tmp_path_factory.mktemp(f"http_{request.param}")
    with (database_for_processes(request, request.param, folder, "http") as database,
          http_server(request.param, database, folder) as server):
        yield server


#: The LangGraph project of the graph tests (test_graphs.py, test_hitl.py).
GRAPH_PROJECT = APPS / "graph_project" / "langgraph.json"


def serve_graph_project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                        tag: str) -> Iterator[Server]:
    """The body of a ``server`` fixture: ``runplane serve --config`` of the graph project on
    a fresh database of the store ``request.param``."""
    folder = tmp_path_factory.mktemp(f"{tag}_{request.param}")
    with (database_for_processes(request, request.param, folder, tag) as database,
          http_server(request.param, database, folder, "--config", str(GRAPH_PROJECT),
                      target=None) as server):
        yield server


async def new_thread(client: LangGraphClient, **metadata: Any) -> str:
    return (await client.threads.create(metadata=metadata or None))["thread_id"]


async def wait_status(client: LangGraphClient, thread_id: str, run_id: str,
                      *statuses: str, timeout: float = 10.0) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        run = await client.runs.get(thread_id, run_id)
        return run if run["status"] in statuses else None

    return await eventually(check, timeout=timeout, interval=0.02)


async def wait_mark(path: Path, line: str, timeout: float = 10.0) -> None:
    await eventually(lambda: line in marks(path), timeout=timeout, interval=0.01)


@dataclass
class Parked:
    thread_id: str
    run_id: str
    marker: Path


async def start_parked(client: LangGraphClient, tmp_path: Path, thread_id: str | None = None,
                       *, values: Any = None, cleanup_seconds: float = 0.0,
                       **create: Any) -> Parked:
    """A ``parks`` run whose step is parked (its marker says ``parked``)."""
    thread_id = thread_id or await new_thread(client)
    marker = tmp_path / f"park-{uuid.uuid4().hex[:8]}.log"
    payload: dict[str, Any] = {"marker": str(marker), "cleanup_seconds": cleanup_seconds}
    if values is not None:
        payload["values"] = values
    run = await client.runs.create(thread_id, "parks", input=payload, **create)
    await wait_mark(marker, "parked")
    return Parked(thread_id, run["run_id"], marker)


async def ticked_on(client: LangGraphClient, thread_id: str, more: int) -> int:
    """Wait until the thread's ``ticks`` run emitted ``more`` values since now; -> that tick.

    Meanwhile the server tried to send that many events to any stream of the run, so it
    has noticed a client that went away."""
    async def tick_now() -> int:
        return ((await client.threads.get_state(thread_id))["values"] or {}).get("tick", 0)

    start = await tick_now()

    async def reached() -> int:
        tick = await tick_now()
        return tick if tick >= start + more else 0

    return await eventually(reached, timeout=10, interval=0.02)


async def collect(stream: AsyncIterator[StreamPart],
                  timeout: float = STREAM_TIMEOUT) -> list[StreamPart]:
    parts = []
    async with asyncio.timeout(timeout):
        async for part in stream:
            parts.append(part)
    return parts


def of(parts: list[StreamPart], event: str) -> list[Any]:
    return [p.data for p in parts if p.event == event]


def cancel_path(thread_id: str, run_id: str) -> str:
    return f"/threads/{thread_id}/runs/{run_id}/cancel"


def parse_sse(body: str) -> list[dict[str, str]]:
    """Raw SSE text -> one dict per message, with its ``event``, ``data`` and ``id`` fields."""
    messages = []
    for block in body.replace("\r\n", "\n").split("\n\n"):
        message: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            message[name] = message[name] + "\n" + value if name in message else value
        if message:
            messages.append(message)
    return messages


def assert_detail(response: httpx.Response, status: int | tuple[int, ...],
                  string: bool = True) -> Any:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body, dict) and body.get("detail"), body
    if string:
        assert isinstance(body["detail"], str), body
    return body



def runplane_cli(server: Server, *args: str, env: dict[str, str] | None = None
                 ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runplane.cli", "runs", *args,
                           "--url", server.url], capture_output=True, text=True, timeout=60,
                          env=None if env is None else {**os.environ, **env})

