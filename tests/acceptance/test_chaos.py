"""The database going away, end to end, on a PostgreSQL cluster of the test's own.

- While the database is down, the API answers 503 with ``Retry-After`` and a JSON
  ``detail``; it answers 2xx again once the database is back, with no restart; an open
  stream keeps its heartbeats meanwhile and goes on to the run's end.
- Chaos: 300 multi-step runs over two ``runplane worker`` processes while one worker is
  SIGKILLed (and replaced), every database session is terminated several times and the
  server is restarted once, with a cancel storm through the API throughout. Afterwards:
  every run terminal, no status flip, no step stored after a cancel, no completed step
  executed again, no run failed by the store, and every answer a 2xx, 4xx or 503.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from chaos_app import executions

from support import eventually, pg_cluster
from support.processes import Processes

ENDINGS = {"run:complete": "success", "run:fail": "error", "run:timeout": "timeout",
           "run:cancel": "interrupted"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[pg_cluster.Cluster]:
    why = pg_cluster.available()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    c = pg_cluster.Cluster()
    try:
        c.start()
        yield c
    finally:
        c.destroy()


async def serve(procs: Processes, database: str, *extra: str) -> str:
    served = await asyncio.to_thread(procs.serve, "server", "chaos_app:app", "--database",
                                     database, "--poll-interval", "0.05", *extra)
    return served.url


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/json"
    assert "database is unavailable" in response.json()["detail"]


async def test_database_down_answers_503_and_recovers_without_a_restart(
    cluster: pg_cluster.Cluster, tmp_path: Path
):
    database = f"{cluster.url}?schema=outage"
    log = tmp_path / "executions"
    log.mkdir()
    with Processes(tmp_path) as procs:
        url = await serve(procs, database, "--sse-heartbeat", "0.1")
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
            created = await http.post("/runs", json={"assistant_id": "chain", "input": {
                "log": str(log), "steps": 30, "pause": 0.05}})
            assert created.status_code == 200, created.text
            run_id = created.json()["run_id"]
            lines: list[str] = []
            stream = asyncio.create_task(_read_stream(http, run_id, lines))
            try:
                await _until(lambda: sum(x == "event: updates" for x in lines) >= 3)
                await asyncio.to_thread(cluster.stop)
                try:
                    assert_unavailable(await http.get(f"/runs/{run_id}"))
                    assert_unavailable(await http.post("/runs",
                                                       json={"assistant_id": "chain"}))
                    assert_unavailable(await http.post(f"/runs/{run_id}/cancel"))
                    during = len(lines)  # the stream stays open, heartbeating
                    await _until(lambda: lines[during:].count(": heartbeat") >= 3)
                    assert not stream.done()
                finally:
                    await asyncio.to_thread(cluster.start)
                # the same server, the same connection pool: it recovers by itself
                async with asyncio.timeout(60):
                    await stream
            finally:
                stream.cancel()
            assert lines[-3:-1] == ["event: end",
                                    f'data: {{"run_id":"{run_id}","status":"success"}}']
            run = await http.get(f"/runs/{run_id}")
            assert run.status_code == 200 and run.json()["status"] == "success"
            waited = await http.post("/runs/wait", json={
                "assistant_id": "chain", "input": {"log": str(log), "steps": 2}})
            assert waited.status_code == 200 and waited.json() == {"total": 1}
        assert procs["server"].returncode is None
    output = procs["server"].output()
    assert "Exception in ASGI application" not in output, output
    assert " 500 Internal Server Error" not in output, output
    # the run was handed back while the database was away, and resumed: nothing ran twice
    stored_twice = Counter((r, i) for r, _, i, _ in executions(str(log)) if r == run_id)
    assert max(stored_twice.values()) <= 2  # at most the step in flight when it went away
    assert sum(n == 2 for n in stored_twice.values()) <= 1


async def _read_stream(http: httpx.AsyncClient, run_id: str, lines: list[str]) -> None:
    params = {"stream_mode": "updates"}
    async with http.stream("GET", f"/runs/{run_id}/stream", params=params,
                           timeout=httpx.Timeout(10.0, read=30.0)) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line:
                lines.append(line)


async def _until(check: Any, timeout: float = 30.0) -> None:
    await eventually(check, timeout=timeout, interval=0.02)


# --------------------------------------------------------------------------- #
# chaos                                                                       #
# --------------------------------------------------------------------------- #

RUNS = 300
STEPS = 4
WORKER_ARGS = ("--concurrency", "12", "--poll-interval", "0.05", "--lease-ttl", "2",
               "--heartbeat-interval", "0.5", "--reap-interval", "0.5", "--grace", "0")


class Storm:
    """The clients: runs created, cancels sent, every answer's status code."""

    def __init__(self, url: str, log: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=30.0,
                                      limits=httpx.Limits(max_connections=20))
        self.log = log
        self.codes: Counter[int] = Counter()
        self.run_ids: list[str] = []
        #: every other run: the storm leaves the rest alone, to see them through the faults
        self.cancellable: list[str] = []
        self.cancels = 0
        self.created_all = asyncio.Event()

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.request(method, path, **kwargs)
        self.codes[response.status_code] += 1
        return response

    async def create(self, pace: float) -> None:
        async def one() -> None:
            body = {"assistant_id": "chain",
                    "input": {"log": self.log, "steps": STEPS, "pause": 0.05}}
            while True:  # a 503 is an invitation to try again
                response = await self.call("POST", "/runs", json=body)
                if response.status_code == 200:
                    self.run_ids.append(response.json()["run_id"])
                    if len(self.run_ids) % 2:
                        self.cancellable.append(self.run_ids[-1])
                    return
                assert response.status_code == 503, response.text
                await asyncio.sleep(float(response.headers["retry-after"]) / 10)

        tasks = []
        for _ in range(RUNS):
            tasks.append(asyncio.create_task(one()))
            await asyncio.sleep(pace)
        await asyncio.gather(*tasks)
        self.created_all.set()

    async def cancel(self, rng: random.Random, until: asyncio.Event) -> None:
        """Cancel runs at random among the latest created (mostly in flight), some again."""
        while not until.is_set():
            if self.cancellable:
                run_id = rng.choice(self.cancellable[-15:])
                self.cancels += 1
                response = await self.call("POST", f"/runs/{run_id}/cancel")
                assert response.status_code in (202, 409, 503), response.text
            await asyncio.sleep(0.03)


async def _held_runs(database_url: str, schema: str, pid: int) -> list[str]:
    """The runs the worker process ``pid`` holds (its id is host:pid:suffix)."""
    conn = await asyncpg.connect(database_url, timeout=2)
    try:
        return [r[0] for r in await conn.fetch(
            f"SELECT run_id FROM {schema}.runs WHERE status = 'running' "
            "AND lease_owner LIKE $1", f"%:{pid}:%")]
    finally:
        await conn.close()


async def _all_ended(database_url: str, schema: str) -> bool:
    """No run pending or running, read on a connection of our own."""
    try:
        conn = await asyncpg.connect(database_url, timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    try:
        return not await conn.fetchval(
            f"SELECT count(*) FROM {schema}.runs WHERE status IN ('pending', 'running')")
    finally:
        await conn.close()


@pytest.mark.slow
async def test_chaos_kills_terminations_restart_and_cancel_storm_break_no_rule(
    cluster: pg_cluster.Cluster, tmp_path: Path
):
    schema = "chaos"
    database = f"{cluster.url}?schema={schema}"
    log = tmp_path / "executions"
    log.mkdir()
    began = time.monotonic()
    figures: Counter[str] = Counter()
    with Processes(tmp_path) as procs:
        url = await serve(procs, database, "--no-worker")
        procs.runplane("worker-a", "worker", "chaos_app:app", "--database", database, *WORKER_ARGS)
        procs.runplane("worker-b", "worker", "chaos_app:app", "--database", database, *WORKER_ARGS)
        storm = Storm(url, str(log))
        storm_over = asyncio.Event()
        creating = asyncio.create_task(storm.create(pace=0.025))
        cancelling = [asyncio.create_task(storm.cancel(random.Random(k), storm_over))
                      for k in range(3)]

        async def terminate() -> None:
            figures["terminations"] += 1
            figures["sessions terminated"] += await cluster.terminate_all()

        # the faults, spread over the time the runs are created and worked; each starts
        # once the workers run (one that cannot reach the database at start-up exits, for
        # its supervisor to restart it)
        for name in ("worker-a", "worker-b"):
            pid = procs[name].pid
            await eventually(lambda pid=pid: _held_runs(cluster.url, schema, pid), timeout=20,
                             interval=0.05)
        await terminate()
        # the replacement starts first, the restart below is not far off
        spare = procs.runplane("worker-c", "worker", "chaos_app:app", "--database", database,
                            *WORKER_ARGS)
        await eventually(lambda: _held_runs(cluster.url, schema, spare.pid), timeout=20,
                         interval=0.05)
        victim = procs["worker-a"]

        async def victim_holds_a_run_left_alone() -> bool:
            held = await _held_runs(cluster.url, schema, victim.pid)
            return bool(set(held) - set(storm.cancellable))

        await eventually(victim_holds_a_run_left_alone, timeout=10, interval=0.05)
        victim.send_signal(signal.SIGKILL)
        figures["kills"] += 1
        orphans = await _held_runs(cluster.url, schema, victim.pid)
        await asyncio.sleep(1.0)
        await terminate()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(cluster.restart)
        figures["restarts"] += 1
        await asyncio.sleep(1.0)
        await terminate()
        await asyncio.sleep(1.0)
        await terminate()

        async with asyncio.timeout(30):
            await creating
        await eventually(lambda: _all_ended(cluster.url, schema), timeout=60, interval=0.2)
        storm_over.set()
        await asyncio.gather(*cancelling)
        await storm.http.aclose()
        for name in ("server", "worker-b", "worker-c"):
            assert procs[name].returncode is None, procs[name].output()
    duration = time.monotonic() - began

    conn = await asyncpg.connect(cluster.url, server_settings={"search_path": schema})
    try:
        runs = {r["run_id"]: r for r in await conn.fetch(
            "SELECT run_id, status, error, attempt, cancel_requested_at FROM runs")}
        events = await conn.fetch(
            "SELECT run_id, seq, event, data::text AS data FROM events ORDER BY run_id, seq")
        steps = await conn.fetch("SELECT run_id, idx, created_at FROM steps")
    finally:
        await conn.close()

    # every run accepted is there, and terminal
    assert set(storm.run_ids) <= set(runs) and len(storm.run_ids) == RUNS
    statuses = Counter(r["status"] for r in runs.values())
    assert set(statuses) <= {"success", "interrupted"}, statuses
    # no status flip: one ending event per run, the one of its final status
    endings: dict[str, list[str]] = {}
    for e in events:
        if e["event"] in ENDINGS:
            endings.setdefault(e["run_id"], []).append(ENDINGS[e["event"]])
    flips = {run_id: endings.get(run_id) for run_id, r in runs.items()
             if endings.get(run_id) != [r["status"]]}
    assert flips == {}
    # no step stored after its run was cancelled: in the run's log (one sequence, written
    # in the same transactions), no step:complete follows run:cancel. (Timestamps cannot
    # tell: each is taken before its transaction, so a step committed just before a
    # cancel may carry a later time than the cancel's request.)
    cancelled_at = {e["run_id"]: e["seq"] for e in events if e["event"] == "run:cancel"}
    late = [(e["run_id"], e["data"]) for e in events if e["event"] == "step:complete"
            and e["seq"] > cancelled_at.get(e["run_id"], e["seq"])]
    assert late == []
    # no completed step executed again: no execution began after that step was stored
    stored = {(s["run_id"], s["idx"]): s["created_at"] for s in steps}
    ran = executions(str(log))
    again = [(run_id, index, attempt) for run_id, attempt, index, at in ran
             if (run_id, index) in stored and at > stored[(run_id, index)]]
    assert again == []
    # no run failed by the store (nor by anything else: the workflow never fails)
    assert [r["error"] for r in runs.values() if r["status"] == "error"] == []
    # the killed worker's runs were taken over once its leases expired
    reaped = {e["run_id"] for e in events
              if e["event"] == "run:resume" and "lease_expired" in e["data"]}
    left_alone = set(orphans) - set(storm.cancellable)
    assert left_alone and left_alone <= reaped
    assert all(o in reaped or runs[o]["status"] == "interrupted" for o in orphans)
    # every answer a 2xx, 4xx or 503
    assert all(code < 500 or code == 503 for code in storm.codes), storm.codes

    resumes = Counter()
    for e in events:
        if e["event"] == "run:resume":
            resumes["lease_expired" if "lease_expired" in e["data"] else
                    "store_unavailable" if "store_unavailable" in e["data"] else "other"] += 1
    executed = Counter((run_id, index) for run_id, _, index, _ in ran)
    figures.update({
        "runs": len(runs), "cancels sent": storm.cancels,
        "runs of the killed worker": len(orphans),
        "success": statuses["success"], "interrupted": statuses["interrupted"],
        "handed back after a store fault": resumes["store_unavailable"],
        "re-queued by a reaper": resumes["lease_expired"],
        "step executions": len(ran),
        "steps executed twice (never stored before)": sum(n > 1 for n in executed.values()),
    })
    print(f"\nchaos: {duration:.1f}s; codes {dict(sorted(storm.codes.items()))}; "
          + "; ".join(f"{k} {v}" for k, v in figures.items()))

