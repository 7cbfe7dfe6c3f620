"""Runs over HTTP (``runplane.server.runs``): create, join, wait, get, list and delete, the
multitask strategies and the run options."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from acceptance.http.helpers import (
    ACTIVE,
    Server,
    assert_detail,
    new_thread,
    start_parked,
    wait_mark,
    wait_status,
)
from http_app import marks


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
    for field_name, value in [("webhook", "ftp://example.invalid/hook"),
                              ("interrupt_before", ["node"]), ("command", {"goto": "node"})]:
        answer = await http.post(f"/threads/{thread_id}/runs",
                                 json={"assistant_id": "echo", field_name: value})
        body = assert_detail(answer, 422)
        assert field_name in body["detail"]
    # options that only tune LangGraph internals are accepted
    out = await client.runs.wait(thread_id, "echo", input=1, config={"tags": ["x"]},
                                 durability="sync")
    assert out == {"echo": 1}
    assert [r["assistant_id"] for r in await client.runs.list(thread_id)] == ["echo"]


async def test_a_delayed_run_waits_pending_for_its_time_and_can_be_cancelled_meanwhile(
        client: LangGraphClient, http: httpx.AsyncClient) -> None:
    thread_id = await new_thread(client)
    later = await client.runs.create(thread_id, "echo", input=1, after_seconds=3600)
    assert later["status"] == "pending"
    created = datetime.fromisoformat(later["created_at"])
    assert (datetime.fromisoformat(later["not_before"]) - created).total_seconds() == \
        pytest.approx(3600, abs=1)
    cancelled = await http.post(f"/threads/{thread_id}/runs/{later['run_id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "interrupted"

    soon = await client.runs.create(None, "echo", input=2, after_seconds=0.5)
    assert (await http.get(f"/runs/{soon['run_id']}/join")).json() == {"echo": 2}
    ran = await http.get(f"/runs/{soon['run_id']}")
    started = datetime.fromisoformat(ran.json()["started_at"])
    assert started >= datetime.fromisoformat(soon["not_before"])
    assert_detail(await http.post("/runs", json={"assistant_id": "echo", "after_seconds": -1}),
                  422)


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
