"""Streams over HTTP (``runplane.server.runs``, rendered by ``runplane.server.streams``):
the stream of a new run, joining one, ``Last-Event-ID``, and clients that go away."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from acceptance.http.helpers import (
    STREAM_TIMEOUT,
    Server,
    assert_detail,
    collect,
    new_thread,
    of,
    parse_sse,
    start_parked,
    ticked_on,
    wait_mark,
    wait_status,
)


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
