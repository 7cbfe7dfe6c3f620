"""The HTTP API end to end: a real ``runplane serve`` process driven by the official client.

One server per store (SQLite, PostgreSQL) per module serves ``http_app:app``; every test
talks to it through ``langgraph_sdk.get_client`` only, except where the SDK cannot express
what is checked (raw status codes, headers, malformed bodies), where it uses httpx against
the same server. Each test works on threads of its own. Races are made deterministic with
workflows that park until cancelled (``parks``) or until the test opens a gate (``ticks``),
and with condition waits (``eventually``) instead of sleeps: marker files written by the
workflow's step and its ``finally`` show the test when it really parked and when its cleanup
really ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError
from langgraph_sdk.schema import StreamPart

from http_app import WORKFLOWS, marks

from support import APPS, eventually, free_port
from support.databases import postgres_schema

#: ``--max-body-bytes`` of the server under test.
MAX_BODY_BYTES = 64 * 1024
#: How long a stream that must end may take before the test calls it a hang.
STREAM_TIMEOUT = 20.0
ACTIVE = ("pending", "running")
T = TypeVar("T")


# --------------------------------------------------------------------------- #
# the server under test                                                       #
# --------------------------------------------------------------------------- #


@dataclass
class Server:
    """A running ``runplane serve http_app:app`` process and where its output goes."""

    store: str
    database: str
    url: str
    proc: subprocess.Popen
    log_path: Path
    _log_file: Any = field(repr=False, default=None)

    def output(self, start: int = 0) -> str:
        data = self.log_path.read_bytes()[start:]
        text = data.decode(errors="replace")
        return text if len(text) <= 20_000 else "...\n" + text[-20_000:]

    def output_size(self) -> int:
        return self.log_path.stat().st_size


def _start_server(store: str, database: str, folder: Path, *args: str,
                  target: str | None = "http_app:app") -> Server:
    """``runplane serve`` of ``target`` (None: the demo assistants) with ``args`` added."""
    port = free_port()
    log_path = folder / "server.log"
    log_file = log_path.open("wb")
    cmd = [sys.executable, "-m", "runplane.cli", "serve", *([target] if target else []),
           "--database", database, "--host", "127.0.0.1", "--port", str(port),
           "--poll-interval", "0.02", "--max-body-bytes", str(MAX_BODY_BYTES), *args]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(APPS)},
                            stdout=log_file, stderr=subprocess.STDOUT)
    server = Server(store, database, f"http://127.0.0.1:{port}", proc, log_path, log_file)
    deadline = 30.0
    waited = 0.0
    with httpx.Client(base_url=server.url, timeout=2.0) as http:
        while True:  # a condition poll: the server answers /ok, or it died, or time is up
            if proc.poll() is not None:
                log_file.close()
                pytest.fail(f"runplane serve exited with {proc.returncode} before answering "
                            f"/ok:\n{server.output()}")
            with contextlib.suppress(httpx.TransportError):
                if http.get("/ok").status_code == 200:
                    return server
            if waited > deadline:
                _stop_server(server)
                pytest.fail(f"runplane serve did not answer /ok within {deadline}s:\n"
                            f"{server.output()}")
            threading.Event().wait(0.05)
            waited += 0.05


def _stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        # Leftover active runs (a failed test) would hold the graceful shutdown.
        with contextlib.suppress(httpx.HTTPError), httpx.Client(base_url=server.url) as http:
            http.post("/runs/cancel", json={"status": "all"}, timeout=10)
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
    if server._log_file is not None:
        server._log_file.close()


class _Loop:
    """An event loop of its own on a thread, for the module-scoped (sync) fixture."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class _ServerOutputInReports:
    """Adds the server's output (from the test's start) to the report of a failed test."""

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Any:
        outcome = yield
        report = outcome.get_result()
        server = getattr(item, "funcargs", {}).get("server")
        if report.failed and isinstance(server, Server):
            start = getattr(item, "_runplane_log_start", 0)
            report.sections.append(
                (f"runplane serve output ({server.store})", server.output(start)))


_REPORTER = "runplane-http-e2e-server-output"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    plugins = request.config.pluginmanager
    if not plugins.has_plugin(_REPORTER):
        plugins.register(_ServerOutputInReports(), _REPORTER)
    folder = tmp_path_factory.mktemp(f"http_{request.param}")
    if request.param == "sqlite":
        srv = _start_server("sqlite", f"sqlite:///{folder}/http.db", folder)
        try:
            yield srv
        finally:
            _stop_server(srv)
        return
    pg = request.getfixturevalue("postgres_server")
    loop = _Loop()
    schema = postgres_schema(pg, "rp_http")
    try:
        url = loop.run(schema.__aenter__())
        srv = _start_server("postgres", url, folder)
        try:
            yield srv
        finally:
            _stop_server(srv)
            loop.run(schema.__aexit__(None, None, None))
    finally:
        loop.close()


@pytest.fixture(autouse=True)
def _log_start(server: Server, request: pytest.FixtureRequest) -> None:
    request.node._runplane_log_start = server.output_size()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[LangGraphClient]:
    c = get_client(url=server.url, api_key=None)
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
async def http(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client, for what the SDK cannot express."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as h:
        yield h


# --------------------------------------------------------------------------- #
# helpers                                                                     #
# --------------------------------------------------------------------------- #


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


# --------------------------------------------------------------------------- #
# service basics and assistants                                               #
# --------------------------------------------------------------------------- #


async def test_ok_openapi_and_docs_are_served(http: httpx.AsyncClient) -> None:
    ok = await http.get("/ok")
    assert ok.status_code == 200 and ok.json() == {"ok": True}
    spec = await http.get("/openapi.json")
    assert spec.status_code == 200
    assert "/threads/{thread_id}/runs/{run_id}/cancel" in spec.json()["paths"]
    assert (await http.get("/docs")).status_code == 200


async def test_assistants_are_the_registered_workflows(client: LangGraphClient) -> None:
    found = await client.assistants.search(limit=100)
    assert sorted(a["assistant_id"] for a in found) == sorted(WORKFLOWS)
    assert all(a["graph_id"] == a["assistant_id"] for a in found)
    echo = await client.assistants.get("echo")
    assert echo["assistant_id"] == "echo" and echo["graph_id"] == "echo"
    graph = await client.assistants.get_graph("echo")
    assert isinstance(graph.get("nodes"), list) and isinstance(graph.get("edges"), list)
    schemas = await client.assistants.get_schemas("echo")
    assert schemas["graph_id"] == "echo"


async def test_unknown_assistant_is_not_found(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.assistants.get("no-such-workflow")


# --------------------------------------------------------------------------- #
# threads                                                                     #
# --------------------------------------------------------------------------- #


async def test_thread_create_get_and_duplicate_id_conflicts(client: LangGraphClient) -> None:
    thread_id = str(uuid.uuid4())
    made = await client.threads.create(thread_id=thread_id, metadata={"owner": "a"})
    assert made["thread_id"] == thread_id and made["metadata"] == {"owner": "a"}
    assert made["status"] == "idle"
    for key in ("created_at", "updated_at", "values"):
        assert key in made
    got = await client.threads.get(thread_id)
    assert got["thread_id"] == thread_id and got["metadata"] == {"owner": "a"}
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread_id, metadata={"owner": "b"})
    with pytest.raises(ConflictError):
        await client.threads.create(thread_id=thread_id, if_exists="raise")
    same = await client.threads.create(thread_id=thread_id, metadata={"owner": "c"},
                                       if_exists="do_nothing")
    assert same["thread_id"] == thread_id and same["metadata"] == {"owner": "a"}
    assert same["created_at"] == made["created_at"]


async def test_thread_update_merges_metadata(client: LangGraphClient) -> None:
    thread_id = await new_thread(client, a=1, b=2)
    updated = await client.threads.update(thread_id, metadata={"b": 3, "c": 4})
    assert updated["metadata"] == {"a": 1, "b": 3, "c": 4}
    assert (await client.threads.get(thread_id))["metadata"] == {"a": 1, "b": 3, "c": 4}


async def test_thread_search_filters_by_metadata_status_and_pages(
        client: LangGraphClient, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex
    idle = await new_thread(client, tag=tag, kind="idle")
    busy = await new_thread(client, tag=tag, kind="busy")
    await new_thread(client, tag="other")
    parked = await start_parked(client, tmp_path, busy)
    try:
        found = await client.threads.search(metadata={"tag": tag}, limit=10)
        assert sorted(t["thread_id"] for t in found) == sorted([idle, busy])
        found = await client.threads.search(metadata={"tag": tag}, status="busy")
        assert [t["thread_id"] for t in found] == [busy]
        found = await client.threads.search(metadata={"tag": tag}, status="idle")
        assert [t["thread_id"] for t in found] == [idle]
        first = await client.threads.search(metadata={"tag": tag}, limit=1, offset=0)
        second = await client.threads.search(metadata={"tag": tag}, limit=1, offset=1)
        assert len(first) == 1 and len(second) == 1
        assert {first[0]["thread_id"], second[0]["thread_id"]} == {idle, busy}
    finally:
        await client.runs.cancel(parked.thread_id, parked.run_id)


async def test_thread_state_holds_the_last_runs_output(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    out = await client.runs.wait(thread_id, "echo", input={"x": 1})
    assert out == {"echo": {"x": 1}}
    state = await client.threads.get_state(thread_id)
    assert state["values"] == out
    assert state["next"] == []
    assert isinstance(state["checkpoint"], dict)
    thread = await client.threads.get(thread_id)
    assert thread["values"] == out and thread["status"] == "idle"


async def test_thread_status_follows_its_last_run(client: LangGraphClient,
                                                  tmp_path: Path) -> None:
    thread_id = await new_thread(client)
    parked = await start_parked(client, tmp_path, thread_id)
    assert (await client.threads.get(thread_id))["status"] == "busy"
    await client.runs.cancel(thread_id, parked.run_id, wait=True)
    assert (await client.threads.get(thread_id))["status"] == "interrupted"
    with pytest.raises(Exception, match="boom"):
        await client.runs.wait(thread_id, "fails", input={})
    assert (await client.threads.get(thread_id))["status"] == "error"
    await client.runs.wait(thread_id, "echo", input={})
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_thread_delete_cancels_its_active_run_first(client: LangGraphClient,
                                                          tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path)
    await client.threads.delete(parked.thread_id)
    with pytest.raises(NotFoundError):
        await client.threads.get(parked.thread_id)
    # The run's task was stopped: its cleanup ran (it would otherwise park forever).
    await wait_mark(parked.marker, "cleanup-done")


async def test_unknown_thread_is_not_found(client: LangGraphClient) -> None:
    with pytest.raises(NotFoundError):
        await client.threads.get(str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        await client.threads.delete(str(uuid.uuid4()))


# --------------------------------------------------------------------------- #
# runs: create, join, wait, get, list, delete                                 #
# --------------------------------------------------------------------------- #


async def test_run_create_then_join_returns_the_output(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input={"q": "hi"},
                                   metadata={"who": "test"})
    assert run["thread_id"] == thread_id and run["assistant_id"] == "echo"
    assert run["status"] in ACTIVE
    assert run["metadata"] == {"who": "test"}
    assert run["multitask_strategy"] == "enqueue"  # the default
    assert run["created_at"] and run["updated_at"]
    assert await client.runs.join(thread_id, run["run_id"]) == {"echo": {"q": "hi"}}
    done = await client.runs.get(thread_id, run["run_id"])
    assert done["status"] == "success" and done["run_id"] == run["run_id"]


async def test_run_wait_returns_the_output_on_a_thread_and_without(
        client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    assert await client.runs.wait(thread_id, "echo", input={"a": 1}) == {"echo": {"a": 1}}
    assert await client.runs.wait(None, "echo", input={"b": 2}) == {"echo": {"b": 2}}
    assert await client.runs.wait(None, "steps", input={"n": 4}) == {"total": 10, "done": 4}


async def test_failing_run_wait_raises_and_join_answers_an_error_body(
        client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    with pytest.raises(Exception, match="boom"):
        await client.runs.wait(thread_id, "fails", input={})
    run = await client.runs.create(thread_id, "fails", input={})
    joined = await client.runs.join(thread_id, run["run_id"])
    # "error" names the status or the kind of failure; the message says what went wrong
    assert isinstance(joined["__error__"]["error"], str) and joined["__error__"]["error"]
    assert "boom" in joined["__error__"]["message"], joined
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "error"


async def test_join_of_an_interrupted_run_answers_an_error_body(client: LangGraphClient,
                                                                tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path)
    await client.runs.cancel(parked.thread_id, parked.run_id)
    joined = await client.runs.join(parked.thread_id, parked.run_id)
    assert set(joined) == {"__error__"}, joined
    assert isinstance(joined["__error__"]["error"], str) and joined["__error__"]["error"]
    assert isinstance(joined["__error__"]["message"], str)


async def test_run_of_another_thread_is_not_found(client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    other = await new_thread(client)
    run = await client.runs.create(thread_id, "echo", input={})
    await client.runs.join(thread_id, run["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(other, run["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(thread_id, str(uuid.uuid4()))


async def test_run_list_filters_by_status(client: LangGraphClient, tmp_path: Path) -> None:
    thread_id = await new_thread(client)
    first = await client.runs.create(thread_id, "echo", input={})
    await client.runs.join(thread_id, first["run_id"])
    parked = await start_parked(client, tmp_path, thread_id)
    try:
        listed = await client.runs.list(thread_id)
        assert sorted(r["run_id"] for r in listed) == sorted([first["run_id"], parked.run_id])
        running = await client.runs.list(thread_id, status="running")
        assert [r["run_id"] for r in running] == [parked.run_id]
        succeeded = await client.runs.list(thread_id, status="success")
        assert [r["run_id"] for r in succeeded] == [first["run_id"]]
    finally:
        await client.runs.cancel(thread_id, parked.run_id)


async def test_run_delete_refuses_an_active_run(client: LangGraphClient,
                                                tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path)
    with pytest.raises(ConflictError):
        await client.runs.delete(parked.thread_id, parked.run_id)
    assert (await client.runs.get(parked.thread_id, parked.run_id))["status"] == "running"
    await client.runs.cancel(parked.thread_id, parked.run_id, wait=True)
    await client.runs.delete(parked.thread_id, parked.run_id)
    with pytest.raises(NotFoundError):
        await client.runs.get(parked.thread_id, parked.run_id)


async def test_run_on_a_missing_thread_is_rejected_unless_if_not_exists_create(
        client: LangGraphClient) -> None:
    thread_id = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.runs.create(thread_id, "echo", input={})
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)
    run = await client.runs.create(thread_id, "echo", input={"n": 1}, if_not_exists="create")
    assert run["thread_id"] == thread_id
    assert await client.runs.join(thread_id, run["run_id"]) == {"echo": {"n": 1}}
    assert (await client.threads.get(thread_id))["thread_id"] == thread_id


# --------------------------------------------------------------------------- #
# cancellation                                                                #
# --------------------------------------------------------------------------- #


async def test_twenty_concurrent_sdk_cancels_of_a_running_run_all_succeed(
        client: LangGraphClient, tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path)
    answers = await asyncio.gather(
        *(client.runs.cancel(parked.thread_id, parked.run_id, wait=bool(i % 2))
          for i in range(20)),
        return_exceptions=True)
    assert [a for a in answers if isinstance(a, BaseException)] == []
    run = await client.runs.get(parked.thread_id, parked.run_id)
    assert run["status"] == "interrupted"
    await wait_mark(parked.marker, "cleanup-done")


async def test_twenty_concurrent_cancels_have_exactly_one_winner(
        client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path)
    path = cancel_path(parked.thread_id, parked.run_id)
    answers = await asyncio.gather(
        *(http.post(path, params={"wait": 0, "action": "interrupt"}) for _ in range(20)))
    assert [a.status_code for a in answers] == [202] * 20, [a.text for a in answers]
    bodies = [a.json() for a in answers]
    assert Counter(b["outcome"] for b in bodies) == {"cancelled": 1, "already_interrupted": 19}
    assert {b["run_id"] for b in bodies} == {parked.run_id}
    assert {b["status"] for b in bodies} == {"interrupted"}


async def test_cancel_of_an_interrupted_run_answers_202_already_interrupted(
        client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path)
    path = cancel_path(parked.thread_id, parked.run_id)
    first = await http.post(path, params={"wait": 0})
    assert first.status_code == 202 and first.json()["outcome"] == "cancelled"
    for wait in (0, 1):
        again = await http.post(path, params={"wait": wait})
        assert again.status_code == (200 if wait else 202), again.text
        assert again.json()["outcome"] == "already_interrupted"
        assert again.json()["status"] == "interrupted"
    # and through the SDK: no exception, with or without waiting
    await client.runs.cancel(parked.thread_id, parked.run_id)
    await client.runs.cancel(parked.thread_id, parked.run_id, wait=True)
    assert (await client.runs.get(parked.thread_id, parked.run_id))["status"] == "interrupted"


async def test_cancel_of_a_finished_run_conflicts_with_its_status(
        client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    ok = await client.runs.create(thread_id, "echo", input={})
    await client.runs.join(thread_id, ok["run_id"])
    with pytest.raises(ConflictError):
        await client.runs.cancel(thread_id, ok["run_id"])
    with pytest.raises(httpx.HTTPStatusError) as waited:
        await client.runs.cancel(thread_id, ok["run_id"], wait=True)
    assert waited.value.response.status_code == 409
    raw = await http.post(cancel_path(thread_id, ok["run_id"]), params={"wait": 0})
    assert assert_detail(raw, 409)["status"] == "success"
    assert (await client.runs.get(thread_id, ok["run_id"]))["status"] == "success"

    failed = await client.runs.create(thread_id, "fails", input={})
    await client.runs.join(thread_id, failed["run_id"])
    raw = await http.post(cancel_path(thread_id, failed["run_id"]), params={"wait": 1})
    assert assert_detail(raw, 409)["status"] == "error"
    with pytest.raises(ConflictError):
        await client.runs.cancel(thread_id, failed["run_id"], action="rollback")


async def test_cancel_of_an_unknown_run_is_not_found(client: LangGraphClient,
                                                     http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    unknown = str(uuid.uuid4())
    with pytest.raises(NotFoundError):
        await client.runs.cancel(thread_id, unknown)
    with pytest.raises(httpx.HTTPStatusError) as waited:
        await client.runs.cancel(thread_id, unknown, wait=True)
    assert waited.value.response.status_code == 404
    assert_detail(await http.post(cancel_path(thread_id, unknown)), 404)


async def test_cancel_through_another_thread_is_not_found_and_changes_nothing(
        client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path)
    other = await new_thread(client)
    try:
        with pytest.raises(NotFoundError):
            await client.runs.cancel(other, parked.run_id)
        assert_detail(await http.post(cancel_path(other, parked.run_id)), 404)
        assert (await client.runs.get(parked.thread_id, parked.run_id))["status"] == "running"
        assert "cleanup-start" not in marks(parked.marker)
    finally:
        await client.runs.cancel(parked.thread_id, parked.run_id)


async def test_cancel_wait_answers_200_only_once_the_task_stopped(
        client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path) -> None:
    # The parked step's cleanup takes 0.3 s: an answer before it finished is too early.
    parked = await start_parked(client, tmp_path, cleanup_seconds=0.3)
    answer = await http.post(cancel_path(parked.thread_id, parked.run_id),
                             params={"wait": 1, "action": "interrupt"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "interrupted"
    assert answer.json()["outcome"] == "cancelled"
    assert marks(parked.marker)[-1] == "cleanup-done"


async def test_sdk_cancel_wait_returns_only_once_the_task_stopped(
        client: LangGraphClient, tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path, cleanup_seconds=0.3)
    await client.runs.cancel(parked.thread_id, parked.run_id, wait=True)
    assert marks(parked.marker)[-1] == "cleanup-done"
    assert (await client.runs.get(parked.thread_id, parked.run_id))["status"] == "interrupted"


async def test_cancelled_pending_run_never_starts(client: LangGraphClient,
                                                  http: httpx.AsyncClient,
                                                  tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    parked = await start_parked(client, tmp_path)
    queued = await client.runs.create(parked.thread_id, "echo",
                                      input={"log": str(log), "tag": "queued"})
    assert (await client.runs.get(parked.thread_id, queued["run_id"]))["status"] == "pending"
    answer = await http.post(cancel_path(parked.thread_id, queued["run_id"]))
    assert answer.status_code == 202 and answer.json()["outcome"] == "cancelled"
    await client.runs.cancel(parked.thread_id, parked.run_id, wait=True)
    after = await client.runs.create(parked.thread_id, "echo",
                                     input={"log": str(log), "tag": "after"})
    await client.runs.join(parked.thread_id, after["run_id"])
    assert marks(log) == ["after"]
    assert (await client.runs.get(parked.thread_id, queued["run_id"]))["status"] == "interrupted"


async def test_cancel_interrupt_keeps_the_thread_values(client: LangGraphClient,
                                                        tmp_path: Path) -> None:
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "echo", input={"v": 0})
    parked = await start_parked(client, tmp_path, thread_id, values={"v": "during"})
    assert (await client.threads.get_state(thread_id))["values"] == {"v": "during"}
    await client.runs.cancel(thread_id, parked.run_id, wait=True, action="interrupt")
    assert (await client.threads.get_state(thread_id))["values"] == {"v": "during"}


async def test_cancel_rollback_restores_the_thread_values_and_keeps_the_run(
        client: LangGraphClient, tmp_path: Path) -> None:
    thread_id = await new_thread(client)
    before = await client.runs.wait(thread_id, "echo", input={"v": 0})
    parked = await start_parked(client, tmp_path, thread_id, values={"v": "during"})
    assert (await client.threads.get_state(thread_id))["values"] == {"v": "during"}
    await client.runs.cancel(thread_id, parked.run_id, wait=True, action="rollback")
    assert (await client.threads.get_state(thread_id))["values"] == before
    assert (await client.runs.get(thread_id, parked.run_id))["status"] == "interrupted"
    assert "cleanup-done" in marks(parked.marker)


async def test_invalid_cancel_action_is_422_and_changes_nothing(
        client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path)
    try:
        answer = await http.post(cancel_path(parked.thread_id, parked.run_id),
                                 params={"wait": 0, "action": "explode"})
        assert_detail(answer, 422, string=False)
        assert (await client.runs.get(parked.thread_id, parked.run_id))["status"] == "running"
    finally:
        await client.runs.cancel(parked.thread_id, parked.run_id)


async def test_cancel_many_by_run_ids_cancels_each_run(client: LangGraphClient,
                                                       tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path)
    queued = await client.runs.create(parked.thread_id, "echo", input={})
    ids = [parked.run_id, queued["run_id"]]
    await client.runs.cancel_many(thread_id=parked.thread_id, run_ids=ids)
    for run_id in ids:
        assert (await client.runs.get(parked.thread_id, run_id))["status"] == "interrupted"
    await wait_mark(parked.marker, "cleanup-done")
    await client.runs.cancel_many(thread_id=parked.thread_id, run_ids=ids)  # idempotent


async def test_cancel_many_by_thread_catches_every_active_run(client: LangGraphClient,
                                                              tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path)
    queued = await client.runs.create(parked.thread_id, "echo", input={})
    await client.runs.cancel_many(thread_id=parked.thread_id)
    for run_id in (parked.run_id, queued["run_id"]):
        assert (await client.runs.get(parked.thread_id, run_id))["status"] == "interrupted"


async def test_cancel_many_by_status_pending_leaves_running_runs(
        client: LangGraphClient, tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path)
    queued = await client.runs.create(parked.thread_id, "echo", input={})
    try:
        await client.runs.cancel_many(status="pending")
        assert (await client.runs.get(parked.thread_id, queued["run_id"]))["status"] == (
            "interrupted")
        assert (await client.runs.get(parked.thread_id, parked.run_id))["status"] == "running"
        assert "cleanup-start" not in marks(parked.marker)
    finally:
        await client.runs.cancel(parked.thread_id, parked.run_id)


async def test_cancel_many_by_status_running(client: LangGraphClient, tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path)
    await client.runs.cancel_many(status="running", action="interrupt")
    assert (await client.runs.get(parked.thread_id, parked.run_id))["status"] == "interrupted"
    await wait_mark(parked.marker, "cleanup-done")


# --------------------------------------------------------------------------- #
# multitask strategies                                                        #
# --------------------------------------------------------------------------- #


async def test_multitask_reject_conflicts_while_a_run_is_active(client: LangGraphClient,
                                                                tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path)
    try:
        with pytest.raises(ConflictError):
            await client.runs.create(parked.thread_id, "echo", input={},
                                     multitask_strategy="reject")
        assert [r["run_id"] for r in await client.runs.list(parked.thread_id)] == [
            parked.run_id]
        assert (await client.runs.get(parked.thread_id, parked.run_id))["status"] == "running"
    finally:
        await client.runs.cancel(parked.thread_id, parked.run_id)
    # with the thread idle again, reject lets a run through
    run = await client.runs.create(parked.thread_id, "echo", input={"k": 1},
                                   multitask_strategy="reject")
    assert run["multitask_strategy"] == "reject"
    assert await client.runs.join(parked.thread_id, run["run_id"]) == {"echo": {"k": 1}}


async def test_multitask_interrupt_stops_the_active_run_and_keeps_its_values(
        client: LangGraphClient, tmp_path: Path) -> None:
    thread_id = await new_thread(client)
    await client.runs.wait(thread_id, "echo", input={"v": 0})
    first = await start_parked(client, tmp_path, thread_id, values={"v": "first"})
    second = await start_parked(client, tmp_path, thread_id, multitask_strategy="interrupt")
    try:
        assert (await client.runs.get(thread_id, first.run_id))["status"] == "interrupted"
        assert (await client.runs.get(thread_id, second.run_id))["status"] == "running"
        await wait_mark(first.marker, "cleanup-done")
        assert (await client.threads.get_state(thread_id))["values"] == {"v": "first"}
    finally:
        await client.runs.cancel(thread_id, second.run_id)


async def test_multitask_interrupt_new_run_completes(client: LangGraphClient,
                                                     tmp_path: Path) -> None:
    first = await start_parked(client, tmp_path)
    run = await client.runs.create(first.thread_id, "echo", input={"k": 2},
                                   multitask_strategy="interrupt")
    assert await client.runs.join(first.thread_id, run["run_id"]) == {"echo": {"k": 2}}
    assert (await client.runs.get(first.thread_id, first.run_id))["status"] == "interrupted"


async def test_multitask_rollback_restores_values_and_starts_the_new_run(
        client: LangGraphClient, tmp_path: Path) -> None:
    thread_id = await new_thread(client)
    before = await client.runs.wait(thread_id, "echo", input={"v": 0})
    first = await start_parked(client, tmp_path, thread_id, values={"v": "first"})
    assert (await client.threads.get_state(thread_id))["values"] == {"v": "first"}
    second = await start_parked(client, tmp_path, thread_id, multitask_strategy="rollback")
    try:
        assert (await client.runs.get(thread_id, first.run_id))["status"] == "interrupted"
        assert (await client.runs.get(thread_id, second.run_id))["status"] == "running"
        assert (await client.threads.get_state(thread_id))["values"] == before
        await wait_mark(first.marker, "cleanup-done")
    finally:
        await client.runs.cancel(thread_id, second.run_id)


async def test_multitask_enqueue_starts_runs_in_creation_order(client: LangGraphClient,
                                                               tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    first = await start_parked(client, tmp_path)
    queued = [
        await client.runs.create(first.thread_id, "echo",
                                 input={"log": str(log), "tag": f"run{i}"},
                                 multitask_strategy="enqueue")
        for i in (2, 3, 4)
    ]
    # the first still runs, so the others wait
    for run in queued:
        assert (await client.runs.get(first.thread_id, run["run_id"]))["status"] == "pending"
    assert marks(log) == []
    await client.runs.cancel(first.thread_id, first.run_id, wait=True)
    assert await client.runs.join(first.thread_id, queued[-1]["run_id"]) == {
        "echo": {"log": str(log), "tag": "run4"}}
    assert marks(log) == ["run2", "run3", "run4"]
    for run in queued:
        assert (await client.runs.get(first.thread_id, run["run_id"]))["status"] == "success"


# --------------------------------------------------------------------------- #
# streaming                                                                   #
# --------------------------------------------------------------------------- #


async def test_stream_yields_metadata_then_requested_modes_then_end(
        client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    created: list[Any] = []
    parts = await collect(client.runs.stream(
        thread_id, "steps", input={"n": 3}, stream_mode=["values", "updates", "custom"],
        on_run_created=created.append))
    assert parts[0].event == "metadata"
    run_id = parts[0].data["run_id"]
    assert [(c["run_id"], c["thread_id"]) for c in created] == [(run_id, thread_id)]
    assert parts[-1].event == "end"
    assert parts[-1].data == {"run_id": run_id, "status": "success"}
    assert {p.event for p in parts} == {"metadata", "values", "updates", "custom", "end"}
    assert of(parts, "custom") == [{"progress": i, "of": 3} for i in (1, 2, 3)]
    assert of(parts, "updates") == [{"step_0": 1}, {"step_1": 3}, {"step_2": 6}]
    values = of(parts, "values")
    distinct = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
    assert distinct == [{"total": 1, "done": 1}, {"total": 3, "done": 2},
                        {"total": 6, "done": 3}]
    assert (await client.runs.get(thread_id, run_id))["status"] == "success"


@pytest.mark.parametrize("stream_mode", ["values", [], ["values"]])
async def test_stream_default_and_empty_mode_mean_values(client: LangGraphClient,
                                                         stream_mode: Any) -> None:
    parts = await collect(client.runs.stream(None, "steps", input={"n": 2},
                                             stream_mode=stream_mode))
    assert parts[0].event == "metadata" and parts[-1].event == "end"
    assert {p.event for p in parts} == {"metadata", "values", "end"}
    assert of(parts, "values")[-1] == {"total": 3, "done": 2}


async def test_stream_of_a_failing_run_yields_error_then_end(client: LangGraphClient) -> None:
    parts = await collect(client.runs.stream(None, "fails", input={}))
    events = [p.event for p in parts]
    assert events[0] == "metadata" and events[-1] == "end"
    assert "error" in events
    assert parts[-1].data == {"run_id": parts[0].data["run_id"], "status": "error"}


async def test_stream_response_headers_name_the_run(client: LangGraphClient,
                                                    http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    async with asyncio.timeout(STREAM_TIMEOUT), http.stream(
            "POST", f"/threads/{thread_id}/runs/stream",
            json={"assistant_id": "echo", "input": {"h": 1},
                  "stream_mode": ["values"]}) as res:
        assert res.status_code == 200
        assert res.headers["content-type"].partition(";")[0] == "text/event-stream"
        body = (await res.aread()).decode()
    messages = parse_sse(body)
    run_id = json.loads(messages[0]["data"])["run_id"]
    assert urlsplit(res.headers["content-location"]).path == f"/threads/{thread_id}/runs/{run_id}"
    assert urlsplit(res.headers["location"]).path == f"/threads/{thread_id}/runs/{run_id}/stream"
    assert messages[-1]["event"] == "end"
    ids = [int(m["id"]) for m in messages if "id" in m]
    assert ids and ids == sorted(set(ids))
    # the Location reconnects: it replays the run's stream from its durable log
    async with asyncio.timeout(STREAM_TIMEOUT), http.stream(
            "GET", res.headers["location"]) as again:
        assert again.status_code == 200
        assert again.headers["content-type"].partition(";")[0] == "text/event-stream"
        replayed = parse_sse((await again.aread()).decode())
    assert [m for m in replayed if m["event"] == "values"] == [
        m for m in messages if m["event"] == "values"]
    assert replayed[-1]["event"] == "end"


async def test_threadless_stream_names_the_run_in_content_location(
        http: httpx.AsyncClient) -> None:
    async with asyncio.timeout(STREAM_TIMEOUT), http.stream(
            "POST", "/runs/stream", json={"assistant_id": "echo", "input": {}}) as res:
        assert res.status_code == 200
        assert res.headers["content-type"].partition(";")[0] == "text/event-stream"
        body = (await res.aread()).decode()
    messages = parse_sse(body)
    run_id = json.loads(messages[0]["data"])["run_id"]
    assert urlsplit(res.headers["content-location"]).path == f"/runs/{run_id}"
    assert urlsplit(res.headers["location"]).path == f"/runs/{run_id}/stream"
    assert messages[-1]["event"] == "end"
    assert json.loads(messages[-1]["data"])["status"] == "success"


async def test_stream_ends_when_another_client_cancels_the_run(
        client: LangGraphClient, server: Server, tmp_path: Path) -> None:
    thread_id = await new_thread(client)
    marker = tmp_path / "park.log"
    parts: list[StreamPart] = []
    async with get_client(url=server.url, api_key=None) as canceller:
        async with asyncio.timeout(STREAM_TIMEOUT):
            async for part in client.runs.stream(
                    thread_id, "parks", stream_mode=["values"],
                    input={"marker": str(marker), "values": {"v": "parked"}}):
                parts.append(part)
                if part.event == "values":
                    await wait_mark(marker, "parked")
                    await canceller.runs.cancel(thread_id, parts[0].data["run_id"])
    run_id = parts[0].data["run_id"]
    assert parts[-1].event == "end"
    assert parts[-1].data == {"run_id": run_id, "status": "interrupted"}
    assert (await client.runs.get(thread_id, run_id))["status"] == "interrupted"
    await wait_mark(marker, "cleanup-done")


async def _stream_then_disconnect(server: Server, thread_id: str, **stream: Any) -> str:
    """Start a ``ticks`` stream, read until the first values, then go away. -> run id."""
    streamer = get_client(url=server.url, api_key=None)
    try:
        parts = streamer.runs.stream(thread_id, "ticks", stream_mode=["values"], **stream)
        run_id = None
        async with asyncio.timeout(STREAM_TIMEOUT):
            async for part in parts:
                if part.event == "metadata":
                    run_id = part.data["run_id"]
                if part.event == "values":
                    break
        await parts.aclose()
    finally:
        await streamer.aclose()
    assert run_id is not None
    return run_id


@pytest.mark.parametrize("on_disconnect", ["cancel", None])
async def test_stream_disconnect_cancels_the_run_by_default(
        client: LangGraphClient, server: Server, tmp_path: Path,
        on_disconnect: str | None) -> None:
    thread_id = await new_thread(client)
    gate, marker = tmp_path / "gate", tmp_path / "ticks.log"
    try:
        run_id = await _stream_then_disconnect(
            server, thread_id, input={"gate": str(gate), "marker": str(marker)},
            on_disconnect=on_disconnect)
        await wait_status(client, thread_id, run_id, "interrupted", "success", "error")
        assert (await client.runs.get(thread_id, run_id))["status"] == "interrupted"
        await wait_mark(marker, "cleanup-done")
    finally:
        gate.touch()


async def test_stream_disconnect_with_continue_lets_the_run_finish(
        client: LangGraphClient, server: Server, tmp_path: Path) -> None:
    thread_id = await new_thread(client)
    gate, marker = tmp_path / "gate", tmp_path / "ticks.log"
    try:
        run_id = await _stream_then_disconnect(
            server, thread_id, input={"gate": str(gate), "marker": str(marker)},
            on_disconnect="continue")
        # Let the run emit a good many events the gone client can no longer receive.
        tick = await ticked_on(client, thread_id, 20)
        assert (await client.runs.get(thread_id, run_id))["status"] == "running"
    finally:
        gate.touch()
    out = await client.runs.join(thread_id, run_id)
    assert out["ticks"] >= tick
    assert (await client.runs.get(thread_id, run_id))["status"] == "success"


async def test_join_stream_replays_the_log_after_last_event_id(
        client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "steps", input={"n": 3})
    await client.runs.join(thread_id, run["run_id"])
    modes = ["values", "updates", "custom"]
    full = await collect(client.runs.join_stream(thread_id, run["run_id"], stream_mode=modes))
    assert full[-1].event == "end"
    assert full[-1].data == {"run_id": run["run_id"], "status": "success"}
    data = [p for p in full if p.event in modes]
    assert of(data, "custom") == [{"progress": i, "of": 3} for i in (1, 2, 3)]
    assert of(data, "updates") == [{"step_0": 1}, {"step_1": 3}, {"step_2": 6}]
    ids = [int(p.id) for p in data if p.id is not None]
    assert len(ids) == len(data) and ids == sorted(set(ids)), [p.id for p in data]

    cut = data[2].id
    assert cut is not None
    replay = await collect(client.runs.join_stream(
        thread_id, run["run_id"], stream_mode=modes, last_event_id=cut))
    assert replay[-1].event == "end"
    replayed = [(p.event, p.data, p.id) for p in replay if p.event in modes]
    assert replayed == [(p.event, p.data, p.id) for p in data[3:]]


async def test_join_stream_of_a_finished_run_with_default_mode_replays_values(
        client: LangGraphClient) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "steps", input={"n": 2})
    await client.runs.join(thread_id, run["run_id"])
    parts = await collect(client.runs.join_stream(thread_id, run["run_id"]))
    assert parts[-1].event == "end"
    assert {p.event for p in parts} <= {"metadata", "values", "end"}
    assert of(parts, "values")[0] == {"total": 1, "done": 1}
    assert of(parts, "values")[-1] == {"total": 3, "done": 2}


async def _raw_stream(http: httpx.AsyncClient, method: str, path: str,
                      **kwargs: Any) -> tuple[int, list[dict[str, str]]]:
    """A whole stream read with httpx: its status and its messages (a cut body raises)."""
    async with asyncio.timeout(STREAM_TIMEOUT), http.stream(method, path, **kwargs) as res:
        return res.status_code, parse_sse((await res.aread()).decode())


@pytest.mark.parametrize("last_event_id", [
    "1000000", str(2**63 - 1), str(2**63), str(2**64 + 7), "9" * 5000,
])
async def test_join_stream_past_the_end_of_the_log_still_ends_with_end(
        client: LangGraphClient, http: httpx.AsyncClient, last_event_id: str) -> None:
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "steps", input={"n": 2})
    await client.runs.join(thread_id, run["run_id"])
    status, messages = await _raw_stream(
        http, "GET", f"/threads/{thread_id}/runs/{run['run_id']}/stream",
        params={"stream_mode": ["values", "updates"]}, headers={"Last-Event-ID": last_event_id})
    assert status == 200
    assert [m["event"] for m in messages] == ["metadata", "end"]
    assert json.loads(messages[-1]["data"]) == {"run_id": run["run_id"], "status": "success"}


@pytest.mark.parametrize("last_event_id", ["-5", "garbage", "1e3"])
async def test_join_stream_with_an_unusable_last_event_id_replays_from_the_start(
        client: LangGraphClient, http: httpx.AsyncClient, last_event_id: str) -> None:
    run = await client.runs.create(None, "steps", input={"n": 2})
    assert (await http.get(f"/runs/{run['run_id']}/join")).status_code == 200
    status, messages = await _raw_stream(
        http, "GET", f"/runs/{run['run_id']}/stream", headers={"Last-Event-ID": last_event_id})
    assert status == 200
    assert [json.loads(m["data"]) for m in messages if m["event"] == "values"][-1] == {
        "total": 3, "done": 2}
    assert messages[-1]["event"] == "end"


async def test_join_stream_past_the_end_of_a_live_run_ends_with_end_once_it_is_over(
        client: LangGraphClient, server: Server, tmp_path: Path) -> None:
    thread_id = await new_thread(client)
    gate, marker = tmp_path / "gate", tmp_path / "ticks.log"
    run = await client.runs.create(thread_id, "ticks",
                                   input={"gate": str(gate), "marker": str(marker)})
    await wait_mark(marker, "started")
    parts: list[StreamPart] = []
    try:
        async with asyncio.timeout(STREAM_TIMEOUT):
            async for part in client.runs.join_stream(thread_id, run["run_id"],
                                                      stream_mode=["values"],
                                                      last_event_id=str(2**70)):
                parts.append(part)
                if part.event == "metadata":
                    gate.touch()
    finally:
        gate.touch()
    assert [p.event for p in parts] == ["metadata", "end"]
    assert parts[-1].data == {"run_id": run["run_id"], "status": "success"}


async def test_an_unknown_stream_mode_is_refused_before_anything_is_created(
        client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    before = {r["run_id"] for r in (await http.get("/runs", params={"limit": 1000})).json()}
    body = {"assistant_id": "echo", "input": {}, "stream_mode": ["values", "valuez"]}
    for path in (f"/threads/{thread_id}/runs/stream", "/runs/stream", "/runs", "/runs/wait",
                 f"/threads/{thread_id}/runs", f"/threads/{thread_id}/runs/wait"):
        refused = assert_detail(await http.post(path, json=body), 422)
        assert "'valuez'" in refused["detail"], refused
        assert "values, updates, custom, debug, messages" in refused["detail"], refused
    one = assert_detail(await http.post("/runs/stream", json={**body, "stream_mode": "nope"}),
                        422)
    assert "'nope'" in one["detail"]
    assert await client.runs.list(thread_id) == []
    after = {r["run_id"] for r in (await http.get("/runs", params={"limit": 1000})).json()}
    assert after == before

    run = await client.runs.create(thread_id, "echo", input={})
    await client.runs.join(thread_id, run["run_id"])
    for path in (f"/threads/{thread_id}/runs/{run['run_id']}/stream",
                 f"/runs/{run['run_id']}/stream"):
        bad = assert_detail(await http.get(path, params={"stream_mode": ["values", "x"]}), 422)
        assert "'x'" in bad["detail"] and "messages-tuple" in bad["detail"]


async def test_every_langgraph_stream_mode_is_accepted(client: LangGraphClient) -> None:
    from typing import get_args

    from langgraph_sdk.schema import StreamMode

    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "steps", input={"n": 1})
    await client.runs.join(thread_id, run["run_id"])
    modes = list(get_args(StreamMode))
    assert {"values", "messages-tuple", "checkpoints", "custom"} <= set(modes)
    parts = await collect(client.runs.join_stream(thread_id, run["run_id"], stream_mode=modes))
    assert parts[0].event == "metadata" and parts[-1].event == "end"
    assert {"values", "updates", "custom", "debug"} <= {p.event for p in parts}


async def test_join_stream_follows_a_live_run_until_it_is_cancelled(
        client: LangGraphClient, server: Server, tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path, values={"v": "live"})
    parts: list[StreamPart] = []
    async with get_client(url=server.url, api_key=None) as canceller:
        async with asyncio.timeout(STREAM_TIMEOUT):
            async for part in client.runs.join_stream(parked.thread_id, parked.run_id,
                                                      stream_mode=["values"]):
                parts.append(part)
                if part.event == "values":
                    await canceller.runs.cancel(parked.thread_id, parked.run_id)
    assert of(parts, "values")[0] == {"v": "live"}
    assert parts[-1].event == "end"
    assert parts[-1].data == {"run_id": parked.run_id, "status": "interrupted"}


async def test_join_stream_cancel_on_disconnect_cancels_the_run(
        client: LangGraphClient, server: Server, tmp_path: Path) -> None:
    parked = await start_parked(client, tmp_path, values={"v": "live"})
    joiner = get_client(url=server.url, api_key=None)
    try:
        parts = joiner.runs.join_stream(parked.thread_id, parked.run_id,
                                        stream_mode=["values"], cancel_on_disconnect=True)
        async with asyncio.timeout(STREAM_TIMEOUT):
            async for part in parts:
                if part.event == "values":
                    break
        await parts.aclose()
    finally:
        await joiner.aclose()
    await wait_status(client, parked.thread_id, parked.run_id, "interrupted")
    await wait_mark(parked.marker, "cleanup-done")


async def test_join_stream_without_cancel_on_disconnect_leaves_the_run_running(
        client: LangGraphClient, server: Server, tmp_path: Path) -> None:
    thread_id = await new_thread(client)
    gate, marker = tmp_path / "gate", tmp_path / "ticks.log"
    try:
        run = await client.runs.create(thread_id, "ticks",
                                       input={"gate": str(gate), "marker": str(marker)})
        joiner = get_client(url=server.url, api_key=None)
        try:
            parts = joiner.runs.join_stream(thread_id, run["run_id"], stream_mode=["values"])
            async with asyncio.timeout(STREAM_TIMEOUT):
                async for part in parts:
                    if part.event == "values":
                        break
            await parts.aclose()
        finally:
            await joiner.aclose()
        await ticked_on(client, thread_id, 20)
        assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "running"
    finally:
        gate.touch()
    assert (await client.runs.join(thread_id, run["run_id"]))["ticks"] >= 20
    assert (await client.runs.get(thread_id, run["run_id"]))["status"] == "success"


# --------------------------------------------------------------------------- #
# bad input                                                                   #
# --------------------------------------------------------------------------- #


async def test_malformed_json_is_a_client_error_with_a_detail(
        client: LangGraphClient, http: httpx.AsyncClient) -> None:
    headers = {"content-type": "application/json"}
    answer = await http.post("/threads", content=b'{"metadata": {', headers=headers)
    assert_detail(answer, (400, 422))
    thread_id = await new_thread(client)
    answer = await http.post(f"/threads/{thread_id}/runs",
                             content=b'{"assistant_id": "echo", ', headers=headers)
    assert_detail(answer, (400, 422))
    assert await client.runs.list(thread_id) == []


async def test_wrong_types_are_422_with_a_detail(client: LangGraphClient,
                                                 http: httpx.AsyncClient) -> None:
    thread_id = str(uuid.uuid4())
    body = assert_detail(await http.post(
        "/threads", json={"thread_id": thread_id, "metadata": "not an object"}), 422,
        string=False)
    assert "metadata" in json.dumps(body["detail"])
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)

    thread_id = await new_thread(client)
    body = assert_detail(await http.post(
        f"/threads/{thread_id}/runs", json={"assistant_id": ["echo"]}), 422, string=False)
    assert "assistant_id" in json.dumps(body["detail"])
    assert_detail(await http.post(f"/threads/{thread_id}/runs",
                                  json={"assistant_id": "echo", "metadata": [1, 2]}),
                  422, string=False)
    assert await client.runs.list(thread_id) == []


async def test_unknown_assistant_on_run_create_is_404_and_writes_nothing(
        client: LangGraphClient, http: httpx.AsyncClient) -> None:
    missing_thread = str(uuid.uuid4())
    answer = await http.post(f"/threads/{missing_thread}/runs",
                             json={"assistant_id": "nope", "if_not_exists": "create"})
    assert_detail(answer, 404)
    with pytest.raises(NotFoundError):  # the thread was not created either
        await client.threads.get(missing_thread)

    thread_id = await new_thread(client)
    assert_detail(await http.post(f"/threads/{thread_id}/runs",
                                  json={"assistant_id": "nope"}), 404)
    assert_detail(await http.post("/runs", json={"assistant_id": "nope"}), 404)
    with pytest.raises(NotFoundError):
        await client.runs.create(thread_id, "nope", input={})
    with pytest.raises(NotFoundError):
        await collect(client.runs.stream(thread_id, "nope", input={}))
    with pytest.raises(httpx.HTTPStatusError) as waited:
        await client.runs.wait(thread_id, "nope", input={})
    assert waited.value.response.status_code == 404
    assert await client.runs.list(thread_id) == []
    assert (await client.threads.get(thread_id))["status"] == "idle"


async def test_invalid_multitask_strategy_is_422_and_writes_nothing(
        client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    answer = await http.post(f"/threads/{thread_id}/runs",
                             json={"assistant_id": "echo", "multitask_strategy": "shove"})
    body = assert_detail(answer, 422, string=False)
    assert "multitask_strategy" in json.dumps(body["detail"]) or "shove" in json.dumps(
        body["detail"])
    assert await client.runs.list(thread_id) == []


async def test_oversized_body_is_413_and_writes_nothing(client: LangGraphClient,
                                                        http: httpx.AsyncClient) -> None:
    big = "x" * (MAX_BODY_BYTES + 1)
    thread_id = str(uuid.uuid4())
    assert_detail(await http.post("/threads", json={"thread_id": thread_id,
                                                    "metadata": {"big": big}}), 413)
    with pytest.raises(NotFoundError):
        await client.threads.get(thread_id)
    thread_id = await new_thread(client)
    assert_detail(await http.post(f"/threads/{thread_id}/runs",
                                  json={"assistant_id": "echo", "input": {"big": big}}), 413)
    assert await client.runs.list(thread_id) == []
    # just under the limit is fine
    small = "x" * (MAX_BODY_BYTES // 2)
    assert await client.runs.wait(thread_id, "echo", input={"s": small}) == {
        "echo": {"s": small}}


# --------------------------------------------------------------------------- #
# run options                                                                 #
# --------------------------------------------------------------------------- #


async def test_a_per_run_timeout_ends_the_run_timeout(
        client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path) -> None:
    thread_id = await new_thread(client)
    marker = tmp_path / "timeout.log"
    answer = await http.post(f"/threads/{thread_id}/runs", json={
        "assistant_id": "parks", "input": {"marker": str(marker)}, "timeout": 0.3})
    assert answer.status_code == 200, answer.text
    run = answer.json()
    assert run["timeout"] == 0.3
    final = await wait_status(client, thread_id, run["run_id"], "timeout")
    assert final["error"] == "run exceeded its timeout of 0.3s"
    await wait_mark(marker, "cleanup-done")  # the task was stopped, its cleanup ran
    assert_detail(await http.post("/runs", json={"assistant_id": "echo", "timeout": -1}), 422,
                  string=True)


async def test_run_options_runplane_cannot_honour_are_refused_not_ignored(
        client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    for field_name, value in [("webhook", "http://example.invalid/hook"),
                              ("interrupt_before", ["node"]), ("after_seconds", 5),
                              ("command", {"resume": 1})]:
        answer = await http.post(f"/threads/{thread_id}/runs",
                                 json={"assistant_id": "echo", field_name: value})
        body = assert_detail(answer, 422)
        assert field_name in body["detail"]
    # options that only tune LangGraph internals are accepted
    out = await client.runs.wait(thread_id, "echo", input=1, config={"tags": ["x"]},
                                 durability="sync")
    assert out == {"echo": 1}
    assert [r["assistant_id"] for r in await client.runs.list(thread_id)] == ["echo"]


async def test_a_waiting_client_that_goes_away_cancels_its_run(
        client: LangGraphClient, server: Server, tmp_path: Path) -> None:
    thread_id = await new_thread(client)
    marker = tmp_path / "wait.log"
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as gone:
        waiting = asyncio.ensure_future(gone.post(
            f"/threads/{thread_id}/runs/wait",
            json={"assistant_id": "parks", "input": {"marker": str(marker)}}))
        await wait_mark(marker, "parked")
        waiting.cancel()  # closes the connection mid-request
        await asyncio.gather(waiting, return_exceptions=True)
    [run] = await client.runs.list(thread_id)
    final = await wait_status(client, thread_id, run["run_id"], "interrupted")
    assert final["cancel_requested_by"] == "on_disconnect"
    await wait_mark(marker, "cleanup-done")


# --------------------------------------------------------------------------- #
# run trees over HTTP and the CLI                                             #
# --------------------------------------------------------------------------- #


async def start_family(client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path,
                       children: int = 2) -> tuple[str, str, list[dict[str, Any]], list[Path]]:
    """A ``family`` run on a thread of its own whose children are all parked."""
    thread_id = await new_thread(client)
    markers = [tmp_path / f"child-{uuid.uuid4().hex[:6]}.log" for _ in range(children)]
    run = await client.runs.create(thread_id, "family",
                                   input={"markers": [str(m) for m in markers]})
    for marker in markers:
        await wait_mark(marker, "parked")
    tree = (await http.get(f"/runs/{run['run_id']}/tree")).json()
    return thread_id, run["run_id"], tree["children"], markers


def runplane_cli(server: Server, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runplane.cli", "runs", *args,
                           "--url", server.url], capture_output=True, text=True, timeout=60)


async def test_tree_endpoint_nests_children_with_their_statuses(
        client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path) -> None:
    thread_id, root, children, _ = await start_family(client, http, tmp_path)
    tree = (await http.get(f"/runs/{children[0]['run_id']}/tree")).json()  # from any run
    assert tree["run_id"] == root and tree["status"] == "running"
    assert tree["thread_id"] == thread_id and tree["parent_run_id"] is None
    assert [(c["assistant_id"], c["status"], c["parent_run_id"], c["thread_id"])
            for c in tree["children"]] == [("parks", "running", root, None)] * 2
    assert_detail(await http.get("/runs/nope/tree"), 404)
    await http.post(f"/runs/{root}/cancel", params={"scope": "tree", "wait": 1})


async def test_cancelling_one_child_warns_that_the_tree_stays_active(
        client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path) -> None:
    _, root, children, markers = await start_family(client, http, tmp_path)
    answer = await http.post(f"/runs/{children[0]['run_id']}/cancel")
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["outcome"] == "cancelled" and body["scope"] == "run"
    assert body["root_run_id"] == root and body["remaining_active_in_tree"] == 2
    assert body["suggested_endpoint"] == f"/runs/{root}/cancel?scope=tree"
    assert "scope=tree" in body["warning"]
    await wait_mark(markers[0], "cleanup-done")
    assert (await http.get(f"/runs/{children[1]['run_id']}")).json()["status"] == "running"
    await http.post(f"/runs/{root}/cancel", params={"scope": "tree", "wait": 1})


async def test_tree_cancel_on_the_thread_endpoint_stops_the_tree_once(
        client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path) -> None:
    thread_id, root, children, markers = await start_family(client, http, tmp_path, 3)
    answer = await http.post(cancel_path(thread_id, root), params={"scope": "tree", "wait": 1})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["outcome"] == "cancelled" and body["stopped"] is True
    assert body["counts"] == {"cancelled": 4, "already_interrupted": 0, "already_finished": 0}
    assert body["warning"] is None
    for marker in markers:
        assert "cleanup-done" in marks(marker)
    again = await http.post(f"/runs/{children[0]['run_id']}/cancel", params={"scope": "tree"})
    assert again.status_code == 202
    assert again.json()["counts"] == {"cancelled": 0, "already_interrupted": 4,
                                      "already_finished": 0}
    assert_detail(await http.post(f"/runs/{root}/cancel", params={"scope": "forest"}), 422)


async def test_cancelling_a_parent_cancels_its_children(
        client: LangGraphClient, http: httpx.AsyncClient, tmp_path: Path) -> None:
    thread_id, root, _, markers = await start_family(client, http, tmp_path)
    answer = await http.post(cancel_path(thread_id, root))
    assert answer.status_code == 202
    assert answer.json()["counts"]["cancelled"] == 3 and answer.json()["warning"] is None
    for marker in markers:
        await wait_mark(marker, "cleanup-done")
    tree = (await http.get(f"/runs/{root}/tree")).json()
    assert {c["status"] for c in tree["children"]} == {"interrupted"}


async def test_cli_shows_and_cancels_a_tree(
        client: LangGraphClient, http: httpx.AsyncClient, server: Server, tmp_path: Path
) -> None:
    _, root, children, _ = await start_family(client, http, tmp_path)
    shown = await asyncio.to_thread(runplane_cli, server, "tree", root, "--json")
    assert shown.returncode == 0, shown.stderr
    assert [c["run_id"] for c in json.loads(shown.stdout)["children"]] == [
        c["run_id"] for c in children]
    pretty = await asyncio.to_thread(runplane_cli, server, "tree", children[0]["run_id"])
    assert "family" in pretty.stdout and pretty.stdout.count("parks") == 2
    got = await asyncio.to_thread(runplane_cli, server, "get", root, "--json")
    assert json.loads(got.stdout)["status"] == "running"
    listed = await asyncio.to_thread(runplane_cli, server, "list", "--status", "running",
                                     "--limit", "100", "--json")
    assert {root, *(c["run_id"] for c in children)} <= {
        r["run_id"] for r in json.loads(listed.stdout)}

    one = await asyncio.to_thread(runplane_cli, server, "cancel", children[0]["run_id"])
    assert one.returncode == 0, one.stderr
    assert "cancelled" in one.stdout and "warning" in one.stdout
    whole = await asyncio.to_thread(runplane_cli, server, "cancel", root, "--tree", "--wait",
                                    "--json")
    body = json.loads(whole.stdout)
    assert body["scope"] == "tree" and body["counts"]["cancelled"] == 2
    tail = await asyncio.to_thread(runplane_cli, server, "tail", root, "--json")
    kinds = [json.loads(line)["type"] for line in tail.stdout.splitlines()]
    assert kinds[0] == "run:created" and kinds[-1] == "run:cancel"

    missing = await asyncio.to_thread(runplane_cli, server, "get", "nope")
    assert missing.returncode == 1 and "404" in missing.stderr
    finished = await asyncio.to_thread(runplane_cli, server, "cancel", root)
    assert finished.returncode == 0 and "already_interrupted" in finished.stdout


async def test_a_failed_run_shows_its_traceback_and_logs_one_line(
        client: LangGraphClient, http: httpx.AsyncClient, server: Server) -> None:
    start = server.output_size()
    thread_id = await new_thread(client)
    run = await client.runs.create(thread_id, "fails", input={})
    await client.runs.join(thread_id, run["run_id"])
    body = (await http.get(f"/runs/{run['run_id']}")).json()
    assert body["status"] == "error" and body["error"] == "ValueError: boom"
    trace = body["traceback"]
    assert trace.startswith("Traceback (most recent call last):")
    assert 'raise ValueError("boom")' in trace and trace.rstrip().endswith("ValueError: boom")
    assert (await client.runs.get(thread_id, run["run_id"]))["traceback"] == trace

    shown = await asyncio.to_thread(runplane_cli, server, "get", run["run_id"])
    assert shown.returncode == 0, shown.stderr
    assert 'raise ValueError("boom")' in shown.stdout
    assert shown.stdout.rstrip().endswith("ValueError: boom")
    as_json = await asyncio.to_thread(runplane_cli, server, "get", run["run_id"], "--json")
    assert json.loads(as_json.stdout)["traceback"] == trace

    line = f"run {run['run_id']} (fails, attempt 1) ended error: ValueError: boom"
    await eventually(lambda: line in server.output(start), timeout=10)
    logged = [x for x in server.output(start).splitlines() if run["run_id"] in x
              and "WARNING" in x]
    assert len(logged) == 1 and logged[0].endswith(line), logged
    assert "Traceback" not in server.output(start)
