"""Crons through ``langgraph_sdk`` (``client.crons``) on a served LangGraph project: a
cron's runs appear on its schedule (a real one, every second), on its thread or each on a
thread of its own; search, count, update, delete; and what the API refuses."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import NotFoundError

from acceptance.http.helpers import Server

from support import eventually


@pytest.fixture(scope="module")
def server(graph_server: Server) -> Server:
    """The graph project, shared with the other modules that serve it as it is."""
    return graph_server


async def _runs_of(client: LangGraphClient, cron_id: str) -> list[dict[str, Any]]:
    listed = await client.http.get("/runs", params={"limit": 1000})
    return [r for r in listed if r["metadata"].get("cron_id") == cron_id]


async def test_a_cron_makes_runs_on_its_schedule_until_deleted(client: LangGraphClient):
    tag = {"test": uuid.uuid4().hex}
    cron = await client.crons.create("counter", schedule="* * * * * *", input={"x": 1},
                                     metadata=tag)
    assert (cron["schedule"], cron["enabled"], cron["metadata"]) == (
        "* * * * * *", True, tag)
    assert cron["payload"] == {"input": {"x": 1}}
    runs = await eventually(lambda: _at_least(client, cron["cron_id"], 2), timeout=10)
    assert len({r["thread_id"] for r in runs}) == len(runs)  # a thread of its own each
    assert await client.runs.join(runs[0]["thread_id"], runs[0]["run_id"]) == {
        "x": 2, "by": "nobody"}
    [found] = await client.crons.search(metadata=tag)
    assert found["cron_id"] == cron["cron_id"]
    assert await client.crons.count(metadata=tag) == 1
    await client.crons.delete(cron["cron_id"])
    assert await client.crons.count(metadata=tag) == 0
    with pytest.raises(NotFoundError):
        await client.crons.delete(cron["cron_id"])


async def _at_least(client: LangGraphClient, cron_id: str, n: int) -> list[dict[str, Any]]:
    runs = await _runs_of(client, cron_id)
    return runs if len(runs) >= n else []


async def test_a_thread_cron_runs_on_its_thread_and_can_be_paused(client: LangGraphClient):
    thread = (await client.threads.create())["thread_id"]
    cron = await client.crons.create_for_thread(thread, "counter", schedule="* * * * * *",
                                                input={"x": 1}, multitask_strategy="enqueue")
    assert cron["thread_id"] == thread
    await eventually(lambda: _at_least(client, cron["cron_id"], 1), timeout=10)
    paused = await client.crons.update(cron["cron_id"], enabled=False,
                                       end_time=datetime.now(UTC) + timedelta(days=1))
    assert paused["enabled"] is False and paused["end_time"] is not None
    assert [c["cron_id"] for c in await client.crons.search(thread_id=thread)] == [
        cron["cron_id"]]
    assert [c["cron_id"] for c in await client.crons.search(
        thread_id=thread, select=["cron_id"])] == [cron["cron_id"]]
    assert all(r["thread_id"] == thread for r in await _runs_of(client, cron["cron_id"]))
    await client.crons.delete(cron["cron_id"])


async def test_bad_crons_are_refused(client: LangGraphClient, http: httpx.AsyncClient):
    for body in ({"assistant_id": "counter", "schedule": "every minute"},
                 {"assistant_id": "counter", "schedule": "* * * * *", "timezone": "Nowhere"},
                 {"assistant_id": "counter", "schedule": "* * * * *",
                  "webhook": "ftp://example.com/hook"},
                 {"assistant_id": "counter", "schedule": "* * * * *",
                  "stream_mode": ["nonsense"]}):
        answer = await http.post("/runs/crons", json=body)
        assert answer.status_code == 422 and "detail" in answer.json(), (body, answer.text)
    unknown = await http.post("/runs/crons", json={"assistant_id": "nothing",
                                                   "schedule": "* * * * *"})
    assert unknown.status_code == 404
    missing = await http.post("/threads/no-such-thread/runs/crons",
                              json={"assistant_id": "counter", "schedule": "* * * * *"})
    assert missing.status_code == 404
    assert (await http.patch("/runs/crons/no-such-cron", json={"enabled": False})
            ).status_code == 404
