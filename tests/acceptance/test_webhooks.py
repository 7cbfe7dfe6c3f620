"""Webhooks end to end: a real ``runplane serve`` and a real receiver. The server is
SIGKILLed right after a run with a webhook ended (its delivery not yet attempted: the
first server's webhook duty is slowed down); a new server on the same database delivers
it, once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

from support import eventually
from support.databases import STORES, database_for_processes
from support.processes import Processes, child_env
from support.receiver import receiver

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("store", STORES)
async def test_a_webhook_is_delivered_after_the_server_died_right_after_the_run_ended(
    request: pytest.FixtureRequest, processes: Processes, tmp_path: Path, store: str
):
    with (receiver() as hook,
          database_for_processes(request, store, tmp_path, "hooks") as database):
        first = await asyncio.to_thread(
            processes.serve, "first", "http_app:app", "--database", database,
            env=child_env({"RUNPLANE_WEBHOOK_INTERVAL": "3600"}))
        client = get_client(url=first.url)
        run = await client.runs.create(None, "echo", input={"x": 1}, webhook=hook.url)
        async with httpx.AsyncClient(base_url=first.url, timeout=30) as http:
            assert (await http.get(f"/runs/{run['run_id']}/join")).status_code == 200
            [pending] = (await http.get(f"/runs/{run['run_id']}/webhooks")).json()
        assert (pending["status"], pending["attempts"], pending["run_status"]) == (
            "pending", 0, "success")
        first.process.kill()
        assert hook.received == []

        second = await asyncio.to_thread(processes.serve, "second", "http_app:app",
                                         "--database", database)
        [body] = await eventually(hook.delivered, timeout=15)
        assert (body["run_id"], body["status"], body["values"]) == (
            run["run_id"], "success", {"echo": {"x": 1}})
        async with httpx.AsyncClient(base_url=second.url) as http:
            [done] = (await http.get(f"/runs/{run['run_id']}/webhooks")).json()
            assert (done["status"], done["attempts"]) == ("delivered", 1)
            bad = await http.post("/runs", json={"assistant_id": "echo",
                                                 "webhook": "ftp://example.com/x"})
            assert bad.status_code == 422 and "webhook" in bad.json()["detail"]
        assert len(hook.received) == 1  # delivered: no worker takes it again
