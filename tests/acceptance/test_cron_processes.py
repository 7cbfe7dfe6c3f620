"""Crons across processes on PostgreSQL: two API nodes and two ``runplane worker``
processes, a cron every two seconds; each scheduled time makes exactly one run (the run ids
are those of the cron's times: none missing in the span, none twice), and the workers
log no error."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from runplane.service import CRON_RUNS

from support.databases import postgres_schema
from support.processes import Processes, child_env

pytestmark = pytest.mark.slow


@pytest.fixture
async def pg_url(postgres_server: str) -> AsyncIterator[str]:
    async with postgres_schema(postgres_server, "rp_cron") as url:
        yield url


async def test_two_api_nodes_and_two_workers_fire_each_time_once(
    processes: Processes, tmp_path: Path, pg_url: str
):
    env = child_env({"RUNPLANE_CRON_INTERVAL": "0.1"})
    apis = [await asyncio.to_thread(processes.serve, f"api{k}", "http_app:app", "--no-worker",
                                    "--database", pg_url, env=env) for k in (1, 2)]
    for k in (1, 2):
        worker = processes.runplane(f"worker{k}", "worker", "http_app:app", "--database",
                                    pg_url, "--log-level", "info", env=env)
        await worker.printed("started")
    async with httpx.AsyncClient(timeout=30) as http:
        made = await http.post(f"{apis[0].url}/runs/crons",
                               json={"assistant_id": "echo", "schedule": "* * * * * */2",
                                     "input": {"tick": True}})
        assert made.status_code == 200, made.text
        cron = made.json()
        await asyncio.sleep(7)  # the schedule's own pace: three or four times
        deleted = await http.delete(f"{apis[1].url}/runs/crons/{cron['cron_id']}")
        assert deleted.status_code == 204
        listed = (await http.get(f"{apis[1].url}/runs", params={"limit": 1000})).json()
    runs = {r["run_id"] for r in listed if r["metadata"].get("cron_id") == cron["cron_id"]}
    assert len(runs) >= 3
    first = datetime.fromisoformat(cron["next_run_date"]).timestamp()
    times = [first + 2 * k for k in range(len(runs))]
    assert runs == {str(uuid.uuid5(CRON_RUNS, f"{cron['cron_id']}@{t!r}"))
                    for t in times}  # each time once, none skipped
    for k in (1, 2):
        log = processes[f"worker{k}"].output()
        assert "Traceback" not in log and "ERROR" not in log, log

