"""The PostgreSQL scale-out, end to end: three ``runplane worker`` processes and two client
processes share one database while a cancel storm runs and one worker is killed.

The clients create 200 runs of a four-step workflow (``mp_app``), some thread-less, some
queued on threads. One worker is SIGKILLed while it holds running runs; then 50 runs are
each cancelled 20 times by each client, both clients at once. Afterwards every run has
ended, every cancel answer agrees with the run's fate, nothing was stored after a cancel,
no stored step ran again, and the killed worker's runs were resumed by the others.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import mp_app
from runplane import Event, Run, RunStatus
from runplane.store.postgres import postgres_dsn

from support import eventually
from support.databases import postgres_schema
from support.processes import Process, Processes, child_env

WORKERS = 3
CLIENTS = ("a", "b")
RUNS_PER_CLIENT = 100
STORM_SIZE = 50
WORKER_OPTIONS = (
    "--concurrency", "16", "--lease-ttl", "2", "--heartbeat-interval", "0.5",
    "--poll-interval", "0.05", "--grace", "1", "--reap-interval", "0.5",
)
TERMINAL = ("run:complete", "run:fail", "run:timeout", "run:cancel")


@pytest.fixture
async def mp_url(postgres_server: str) -> AsyncIterator[str]:
    async with postgres_schema(postgres_server, "rp_mp") as url:
        yield url


async def _read_json(client: Process, key: str, timeout: float) -> dict[str, Any]:
    """The client's next stdout line: a JSON object holding ``key``."""
    assert client.popen.stdout is not None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(client.popen.stdout.readline), timeout)
    except TimeoutError:
        raise AssertionError(client.describe(f"printed no {key!r} within {timeout}s")) from None
    if not line:
        await client.ended(10)
        raise AssertionError(client.describe(f"ended without printing {key!r}"))
    message = json.loads(line)
    assert key in message, message
    return message


def _send(client: Process, line: bytes) -> None:
    assert client.popen.stdin is not None
    client.popen.stdin.write(line)
    client.popen.stdin.flush()


async def _pick_victim(conn: asyncpg.Connection, workers: list[Process]) -> tuple[Process, str]:
    """The worker holding the most running runs, once one holds a run with a stored step
    (so that its resumption has a completed step to skip)."""
    by_pid = {w.pid: w for w in workers}

    async def candidate() -> tuple[Process, str] | None:
        rows = await conn.fetch(
            "SELECT lease_owner, count(*) AS held, "
            "       count(*) FILTER (WHERE step_index > 0) AS advanced "
            "  FROM runs WHERE status = 'running' AND lease_owner IS NOT NULL "
            " GROUP BY lease_owner")
        # worker ids are host:pid:random
        ok = [r for r in rows if r["advanced"] > 0 and int(r["lease_owner"].split(":")[-2])
              in by_pid]
        if not ok:
            return None
        best = max(ok, key=lambda r: r["held"])
        return by_pid[int(best["lease_owner"].split(":")[-2])], best["lease_owner"]

    return await eventually(candidate, timeout=20, interval=0.005)


def _compose_storm(rows: list[asyncpg.Record], victim_id: str) -> list[str]:
    """50 runs in every state the store shows right after the kill, in the order the
    storm hits them: runs running on a live worker (least advanced first: they have the
    most work left), one the killed worker held (if it held several: at least one of them
    is left alone, to be resumed), pending ones (created last first: queued longest), then
    finished ones, whose cancels conflict. A state with too few runs leaves its places to
    the next ones."""
    held = [r for r in rows if r["status"] == "running" and r["lease_owner"] == victim_id]
    running = sorted((r for r in rows if r["status"] == "running" and r not in held),
                     key=lambda r: r["step_index"])
    pending = sorted((r for r in rows if r["status"] == "pending"), key=lambda r: -r["seq"])
    finished = [r for r in rows if r["status"] not in ("pending", "running")]
    picks = running[:25] + held[1:2] + pending[:15]
    picks += [r for r in running[25:] + pending[15:] + finished if r not in picks]
    storm = [r["run_id"] for r in picks[:STORM_SIZE]]
    assert len(set(storm)) == STORM_SIZE
    return storm


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_workers_and_clients_in_many_processes_keep_the_cancellation_contract(
    mp_url: str, tmp_path: Path, processes: Processes
) -> None:
    executions_dir = tmp_path / "executions"
    executions_dir.mkdir()
    env = child_env({mp_app.EXECUTIONS_DIR: str(executions_dir)})
    dsn, schema = postgres_dsn(mp_url)
    conn: asyncpg.Connection | None = None
    try:
        # Each worker's connections carry its name (application_name, which asyncpg takes
        # from the URL), so that the test can see when a killed worker's are gone.
        app_names = [f"{schema}_w{k}" for k in range(WORKERS)]
        workers = [
            processes.runplane(f"worker-{k}", "worker", "mp_app:app", "--database",
                               f"{mp_url}&application_name={app_names[k]}", *WORKER_OPTIONS,
                               env=env)
            for k in range(WORKERS)
        ]

        def all_started() -> bool:
            for w in workers:
                if w.returncode is not None:
                    raise AssertionError(w.describe("exited before it started"))
            return all(" started: " in w.output() for w in workers)

        await eventually(all_started, timeout=30, interval=0.05)

        clients = [
            processes.python(f"client-{name}", "import mp_app; mp_app.client_main()", mp_url,
                             name, str(RUNS_PER_CLIENT), env=env, pipe=True)
            for name in CLIENTS
        ]
        created = [(await _read_json(c, "created", timeout=30))["created"] for c in clients]
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        order = [item["run_id"] for runs in created for item in runs]
        assert len(set(order)) == len(CLIENTS) * RUNS_PER_CLIENT

        conn = await asyncpg.connect(dsn, server_settings={"search_path": schema})
        victim, victim_id = await _pick_victim(conn, workers)
        victim_app = app_names[workers.index(victim)]

        async def victim_sessions() -> int:
            return await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                victim_app)

        assert await victim_sessions() > 0  # its connections are recognisable
        victim.send_signal(signal.SIGKILL)
        killed_at = loop.time() - t0
        assert await victim.ended(10) == -signal.SIGKILL
        state = "SELECT run_id, seq, status, lease_owner, step_index FROM runs ORDER BY seq"
        at_death = await conn.fetch(state)

        async def victim_gone() -> bool:
            return await victim_sessions() == 0

        # A statement it sent before dying still runs to its end (and commits) in the
        # server; its sessions close right after. From then on it writes nothing more,
        # and its leases last 2 s more at most.
        await eventually(victim_gone, timeout=10, interval=0.005)
        at_kill = await conn.fetch(state)
        # (for the summary) writes of the killed worker that landed after its death
        landed_late = sum(1 for before, after in zip(at_death, at_kill, strict=True)
                          if before["lease_owner"] == victim_id and before != after)
        held_at_kill = {r["run_id"]: r["status"] for r in at_kill
                        if r["lease_owner"] == victim_id}
        held_running = [run_id for run_id, status in held_at_kill.items()
                        if status == "running"]
        assert held_running, f"{victim_id} held no running run when killed: {held_at_kill}"
        storm = _compose_storm(at_kill, victim_id)
        go = (json.dumps({"storm": storm}) + "\n").encode()
        # both clients start their storm at the same moment
        await asyncio.gather(*(asyncio.to_thread(_send, c, go) for c in clients))
        storm_at = loop.time() - t0
        stormed = [await _read_json(c, "answers", timeout=60) for c in clients]
        answers_by_client = [m["answers"] for m in stormed]
        storm_seconds = [max(a["answered_at"] for a in m["answers"]) - m["started"]
                         for m in stormed]
        for c in clients:
            assert await c.ended(30) == 0, c.output()

        async def all_ended() -> bool:
            return await conn.fetchval(
                "SELECT count(*) FROM runs WHERE status IN ('pending', 'running')") == 0

        await eventually(all_ended, timeout=60, interval=0.1)
        ended_at = loop.time() - t0
        survivors = [w for w in workers if w is not victim]
        for w in survivors:
            w.send_signal(signal.SIGTERM)
        for w in survivors:
            assert await w.ended(15) == 0, w.output()
        for p in [*survivors, *clients]:  # no internal error was logged along the way
            assert "Traceback" not in p.output(), p.output()
        event_counts = {r["run_id"]: r["last_event_seq"] for r in await conn.fetch(
            "SELECT run_id, last_event_seq FROM runs")}
    finally:
        if conn is not None:
            await conn.close()

    # --- what the store says ---------------------------------------------------------------
    assert sorted(event_counts) == sorted(order)  # nothing created beyond the 200 runs
    runs: dict[str, Run] = {}
    events: dict[str, list[Event]] = {}
    stored: dict[str, list[Any]] = {}
    async with mp_app.build(mp_url, worker=False) as reader:
        for run_id in order:
            runs[run_id] = await reader.runs.get(run_id)
            events[run_id] = await reader.runs.events(run_id)
            stored[run_id] = await reader.runs.steps(run_id)

    def named(run_id: str, *names: str) -> list[Event]:
        return [e for e in events[run_id] if e.event in names]

    # 1. Every run ended: success, or interrupted by the storm.
    statuses = Counter(run.status for run in runs.values())
    assert set(statuses) <= {RunStatus.SUCCESS, RunStatus.INTERRUPTED}, statuses
    for run_id in order:
        if run_id not in storm:
            assert runs[run_id].status is RunStatus.SUCCESS, (runs[run_id], events[run_id])

    # Each run's log is complete, in order, with one terminal event that matches its status.
    for run_id, run in runs.items():
        log = events[run_id]
        assert [e.seq for e in log] == list(range(1, event_counts[run_id] + 1)), log
        lifecycle = [e.event for e in log if e.event.startswith("run:")]
        assert lifecycle[0] == "run:created", log
        assert [e for e in lifecycle if e in TERMINAL] == [
            "run:complete" if run.status is RunStatus.SUCCESS else "run:cancel"], log
        assert lifecycle[-1] in TERMINAL, log  # nothing starts after the end
        assert len(stored[run_id]) == run.step_index, (run, stored[run_id])
        assert [s.name for s in stored[run_id]] == list(mp_app.STEPS[:run.step_index])
        if run.status is RunStatus.SUCCESS:
            assert run.step_index == len(mp_app.STEPS)
            assert run.output == [s.result for s in stored[run_id]]

    # 2. The storm: one winner per cancelled run, or conflicts naming success throughout.
    answers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for from_client in answers_by_client:
        for answer in from_client:
            answers[answer["run_id"]].append(answer)
    assert sorted(answers) == sorted(storm)
    cancelled_from = Counter()
    for run_id in storm:
        got = answers[run_id]
        run = runs[run_id]
        outcomes = Counter(a["outcome"] for a in got)
        assert len(got) == len(CLIENTS) * mp_app.CANCELS_PER_CLIENT
        if run.status is RunStatus.INTERRUPTED:
            assert outcomes == {"cancelled": 1, "already_interrupted": len(got) - 1}, (
                run_id, outcomes)
            assert {a["status"] for a in got} == {"interrupted"}
            # every answer carries the first request's reason and time
            assert {a["reason"] for a in got} == {run.cancel_reason}
            assert run.cancel_requested_at is not None
            assert {a["requested_at"] for a in got} == {run.cancel_requested_at.timestamp()}
            [cancel] = named(run_id, "run:cancel")
            cancelled_from[cancel.data["from_status"]] += 1
        else:
            assert outcomes == {"conflict": len(got)}, (run_id, outcomes, got)
            assert {a["status"] for a in got} == {"success"}
            assert named(run_id, "run:cancel") == []

    # 3. Nothing stored as completed after its run's cancel: a step in flight at the
    # cancel is logged as step:cancel and not stored.
    mid_step = 0
    for run_id, run in runs.items():
        if run.status is RunStatus.INTERRUPTED:
            [cancel] = named(run_id, "run:cancel")
            late = [e for e in named(run_id, "step:complete") if e.seq > cancel.seq]
            assert late == [], (run_id, events[run_id])
            dropped = named(run_id, "step:cancel")
            assert all(e.seq > cancel.seq and e.data["index"] >= run.step_index
                       for e in dropped), (run, events[run_id])
            mid_step += bool(dropped)

    # 4. No stored step executed again by a later attempt.
    executed: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for entry in mp_app.executions(executions_dir):
        executed[entry["run_id"], entry["idx"]].append(entry)
    for key, entries in executed.items():
        generations = [e["gen"] for e in entries]
        assert len(generations) == len(set(generations)), (key, entries)  # once per attempt
    re_executed = 0
    for run_id, steps in stored.items():
        for step in steps:
            entries = executed[run_id, step.index]
            storing = [e for e in entries if e["gen"] == step.result["gen"]]
            assert len(storing) == 1 and storing[0]["pid"] == step.result["pid"], (
                step, entries)
            later = [e for e in entries if e["gen"] > step.result["gen"]]
            assert later == [], (f"step {step.name} of run {run_id} was stored by generation "
                                 f"{step.result['gen']}, then executed again", entries,
                                 events[run_id])
            re_executed += len(entries) - 1  # earlier attempts whose result was discarded

    # 5. The killed worker's runs were resumed by the others.
    expired = {run_id for run_id in order for e in named(run_id, "run:resume")
               if e.data.get("reason") == "lease_expired" and e.data.get("worker") == victim_id}
    resumed = 0
    for run_id in set(held_at_kill) | expired:
        run = runs[run_id]
        if run.status is RunStatus.INTERRUPTED:
            continue
        assert run_id in expired, (run_id, held_at_kill.get(run_id), events[run_id])
        assert run.status is RunStatus.SUCCESS
        starts = named(run_id, "run:start")
        assert starts[-1].data["worker"] != victim_id
        resumed += 1
    assert resumed >= 1, (held_at_kill, expired)
    # The storm stopped runs, not only finished ones, and landed in the middle of steps.
    assert sum(cancelled_from.values()) >= 1 and mid_step >= 1, (cancelled_from, mid_step)

    # Threads ran their runs one at a time, in creation order.
    for from_client in created:
        on_thread: dict[str, list[str]] = defaultdict(list)
        for item in from_client:
            if item["thread_id"] is not None:
                on_thread[item["thread_id"]].append(item["run_id"])
        for run_ids in on_thread.values():
            starts = [runs[r].started_at for r in run_ids if runs[r].started_at is not None]
            assert starts == sorted(starts)

    print(f"at the kill: {dict(Counter(r['status'] for r in at_kill))}; {landed_late} run(s) "
          "changed by writes of the killed worker that landed after its death")
    print(f"after the runs were created: kill at {killed_at:.2f}s, storm at {storm_at:.2f}s "
          f"(lasting {', '.join(f'{x:.2f}s' for x in storm_seconds)}), all ended at "
          f"{ended_at:.2f}s")
    print(f"runs: {dict(statuses)}; storm: {sum(cancelled_from.values())} cancelled "
          f"(from {dict(cancelled_from)}), "
          f"{STORM_SIZE - sum(cancelled_from.values())} finished first; killed {victim_id} "
          f"holding {len(held_running)} running run(s), {resumed} resumed elsewhere; "
          f"{sum(len(v) for v in executed.values())} step executions, {re_executed} "
          f"re-executions of discarded steps; "
          f"{mid_step} runs cancelled mid-step (step:cancel), "
          f"{sum(len(named(r, 'lease:lost')) for r in order)} lease:lost events")
