"""Cancels over HTTP (``runplane.server.runs``): of one run and of many, concurrent ones,
``wait``, and what a cancel leaves of the thread's values."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from acceptance.http.helpers import (
    assert_detail,
    cancel_path,
    new_thread,
    start_parked,
    wait_mark,
)
from http_app import marks


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
