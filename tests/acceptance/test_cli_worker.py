"""``runplane worker MODULE:APP`` and ``runplane migrate`` as real processes.

A worker process imports ``cli_app:app`` from its working directory (tests/apps), runs
what the test process creates through a ``worker=False`` client, and on SIGTERM/SIGINT
stops gracefully: runs still going after ``--grace`` go back to the queue, to be resumed
after their last completed step by the next worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path

import asyncpg
import pytest

import cli_app
from runplane import Runplane, RunStatus
from runplane.cli import redact_url
from runplane.store.postgres import postgres_dsn
from runplane.store.sqlite import sqlite_path

from support import APPS, eventually
from support.processes import CLI, Process, Processes, child_env

#: Fast polling for the worker processes; everything else keeps its default.
FAST = ("--poll-interval", "0.01")


@contextlib.contextmanager
def worker_process(processes: Processes, url: str, *options: str,
                   env: dict[str, str] | None = None) -> Iterator[Process]:
    """A ``runplane worker cli_app:app`` process, killed when the block ends. Without the apps
    folder on PYTHONPATH: it must find ``cli_app`` through its working directory, as uvicorn
    finds an app."""
    worker = processes.runplane(
        f"worker-{len(processes.started)}", "worker", "cli_app:app", "--database", url, *FAST,
        *options, env=child_env(env, apps_on_path=False))
    try:
        yield worker
    finally:
        worker.kill()


def run_cli(*args: str, cwd: Path = APPS, command: Sequence[str] = CLI,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*command, *args], cwd=cwd,
                          env={**child_env(apps_on_path=False), **(env or {})},
                          capture_output=True, text=True, timeout=30, check=False)


def client(url: str) -> Runplane:
    return cli_app.build(url, worker=False, poll_interval=0.01)


def staged_input(tmp_path: Path) -> dict[str, str]:
    return {"log": str(tmp_path / "steps.log"), "gate": str(tmp_path / "gate")}


# --- worker ------------------------------------------------------------------------------


async def test_worker_process_runs_runs_created_by_another_process(
    database_url: str, processes: Processes
) -> None:
    worker_id = f"cli-test-{uuid.uuid4().hex[:8]}"
    async with client(database_url) as rp:
        before = [await rp.runs.create(None, "echo", input={"n": n}) for n in range(3)]
        with worker_process(processes, database_url, "--concurrency", "2",
                                  env={"RUNPLANE_WORKER_ID": worker_id}) as worker:
            started = await worker.printed("started")
            after = [await rp.runs.create(None, "echo", input={"n": n}) for n in range(3, 6)]
            outputs = [await asyncio.wait_for(rp.runs.join(run.run_id), 10)
                       for run in before + after]
            assert outputs == [{"n": n} for n in range(6)]
            worker.send_signal(signal.SIGINT)
            assert await worker.ended(5) == 0
        assert f"worker {worker_id} started" in started
        assert f"database {database_url}," in started  # no password to hide here
        assert "assistants echo, staged" in started
        assert "concurrency 2" in started
        assert f"worker {worker_id} stopped" in worker.output()
        for run in before + after:
            done = await rp.runs.get(run.run_id)
            assert done.status is RunStatus.SUCCESS and done.attempt == 1
            assert done.lease_owner is None


async def test_sigterm_hands_an_unfinished_run_back_and_the_next_worker_resumes_it(
    database_url: str, tmp_path: Path, processes: Processes
) -> None:
    input = staged_input(tmp_path)
    async with client(database_url) as rp:
        run = await rp.runs.create(None, "staged", input=input)
        with worker_process(processes, database_url, "--grace", "0") as first:
            await eventually(lambda: [n for n, _ in cli_app.executions(input["log"])]
                             == ["one", "two"])
            assert [s.name for s in await rp.runs.steps(run.run_id)] == ["one"]
            assert (await rp.runs.get(run.run_id)).status is RunStatus.RUNNING
            loop = asyncio.get_running_loop()
            signalled = loop.time()
            first.send_signal(signal.SIGTERM)
            assert await first.ended(5) == 0
            assert loop.time() - signalled < 5
            assert "1 run(s) in flight" in await first.printed("SIGTERM received")

        handed_back = await rp.runs.get(run.run_id)
        assert handed_back.status is RunStatus.PENDING
        assert handed_back.lease_owner is None and handed_back.step_index == 1
        events = await rp.runs.events(run.run_id)
        resumes = [e for e in events if e.event == "run:resume"]
        assert [e.data["reason"] for e in resumes] == ["worker_shutdown"]
        [dropped] = [e for e in events if e.event == "step:cancel"]
        assert dropped.data == {"index": 1, "name": "two", "reason": "worker_shutdown"}

        cli_app.open_gate(input["gate"])
        with worker_process(processes, database_url) as second:
            assert await asyncio.wait_for(rp.runs.join(run.run_id), 10) == list(cli_app.STAGES)
            second.send_signal(signal.SIGTERM)
            assert await second.ended(5) == 0

        assert cli_app.executions(input["log"]) == [
            ("one", first.pid), ("two", first.pid), ("two", second.pid), ("three", second.pid)]
        done = await rp.runs.get(run.run_id)
        assert done.status is RunStatus.SUCCESS
        assert done.attempt == 1  # a graceful hand-back does not count as an attempt
        assert [s.name for s in await rp.runs.steps(run.run_id)] == list(cli_app.STAGES)
        events = await rp.runs.events(run.run_id)
        assert [e.event for e in events if e.event.startswith("run:")] == [
            "run:created", "run:start", "run:resume", "run:start", "run:complete"]
        assert [e.data["name"] for e in events if e.event == "step:complete"] == list(
            cli_app.STAGES)


async def test_sigterm_lets_a_run_finish_within_the_grace_period(
    database_url: str, tmp_path: Path, processes: Processes
) -> None:
    input = staged_input(tmp_path)
    async with client(database_url) as rp:
        run = await rp.runs.create(None, "staged", input=input)
        with worker_process(processes, database_url, "--grace", "10") as worker:
            await eventually(lambda: [n for n, _ in cli_app.executions(input["log"])]
                             == ["one", "two"])
            worker.send_signal(signal.SIGTERM)
            # Logged as the worker stops claiming: from here on the run is in its grace period.
            await worker.printed("SIGTERM received")
            late = await rp.runs.create(None, "echo", input={})
            cli_app.open_gate(input["gate"])
            assert await worker.ended(8) == 0

        done = await rp.runs.get(run.run_id)
        assert done.status is RunStatus.SUCCESS and done.output == list(cli_app.STAGES)
        assert cli_app.executions(input["log"]) == [(n, worker.pid) for n in cli_app.STAGES]
        events = [e.event for e in await rp.runs.events(run.run_id)]
        assert "run:resume" not in events and "step:cancel" not in events
        # A run created once the worker stopped claiming waits for the next worker. (A claim
        # already in flight when the stop began may still take it: it is handed straight back.)
        waiting = await rp.runs.get(late.run_id)
        assert waiting.status is RunStatus.PENDING and waiting.attempt == 0
        late_events = await rp.runs.events(late.run_id)
        assert [e.event for e in late_events] in (
            ["run:created"], ["run:created", "run:start", "run:resume"])
        assert all(e.data["reason"] == "worker_shutdown"
                   for e in late_events if e.event == "run:resume")


# --- migrate ------------------------------------------------------------------------------


async def _applied_migrations(url: str) -> list[tuple[str, str]]:
    if url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(sqlite_path(url))) as conn:
            rows = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
        return sorted((str(v), str(at)) for v, at in rows)
    dsn, schema = postgres_dsn(url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema or "public"})
    try:
        rows = await conn.fetch("SELECT version, applied_at FROM schema_migrations")
    finally:
        await conn.close()
    return sorted((r["version"], str(r["applied_at"])) for r in rows)


async def test_migrate_applies_the_migrations_once(database_url: str) -> None:
    # Two processes migrating a fresh database at the same moment both succeed.
    together = await asyncio.gather(*(
        asyncio.to_thread(run_cli, "migrate", "--database", database_url) for _ in range(2)))
    for result in together:
        assert result.returncode == 0, result.stderr
    said = sorted(result.stdout for result in together)  # one applied them, one found none
    assert said[0].startswith(f"migrations applied to {redact_url(database_url)}: "
                              "0001_initial.sql, 0002_run_traceback.sql")
    assert said[1] == f"{redact_url(database_url)} is up to date: no migration to apply\n"
    applied = await _applied_migrations(database_url)
    backend = "sqlite" if database_url.startswith("sqlite:") else "postgres"
    shipped = resources.files("runplane.store") / "migrations" / backend
    assert [version for version, _ in applied] == sorted(
        f.name for f in shipped.iterdir() if f.name.endswith(".sql"))
    assert [version for version, _ in applied][:2] == ["0001_initial.sql",
                                                       "0002_run_traceback.sql"]

    again = await asyncio.to_thread(run_cli, "migrate", env={
        "RUNPLANE_DATABASE_URL": database_url})  # the variable serve and worker read too
    assert again.returncode == 0, again.stderr
    assert again.stdout.endswith("is up to date: no migration to apply\n")
    assert await _applied_migrations(database_url) == applied  # nothing re-applied

    async with client(database_url) as rp:  # the migrated database is ready to use
        assert await rp.runs.list() == []


@pytest.mark.parametrize("command", ["migrate", "worker"])
def test_an_unsupported_database_url_exits_2_without_showing_the_password(command: str) -> None:
    target = ["cli_app:app"] if command == "worker" else []
    result = run_cli(command, *target, "--database", "mysql://me:s3cret@db.example/x")
    assert result.returncode == 2, result.stderr
    assert "unsupported database URL scheme 'mysql'" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout


# --- importing the app ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module:app", "could not import module 'no_such_module'"),
        ("cli_app:no_such_app", "module 'cli_app' has no attribute 'no_such_app'"),
        ("cli_app:build", "cli_app:build is a function, not a runplane.Runplane app"),
        ("cli_app", "expected MODULE:APP"),
    ],
)
def test_a_bad_app_path_exits_2_with_a_message(tmp_path: Path, target: str, message: str) -> None:
    result = run_cli("worker", target, "--database", f"sqlite:///{tmp_path}/never.db")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "never.db").exists()


def test_the_console_script_imports_apps_from_the_working_directory(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "runplane"
    if not script.exists():
        pytest.skip(f"no console script at {script}")
    # Found cli_app in its working directory (only then can it miss the attribute).
    result = run_cli("worker", "cli_app:no_such_app", "--database",
                     f"sqlite:///{tmp_path}/never.db", command=[str(script)])
    assert result.returncode == 2, result.stderr
    assert "module 'cli_app' has no attribute 'no_such_app'" in result.stderr
    elsewhere = run_cli("worker", "cli_app:app", cwd=tmp_path, command=[str(script)])
    assert elsewhere.returncode == 2
    assert "could not import module 'cli_app'" in elsewhere.stderr


async def test_worker_serves_the_contract_metrics(
    database_url: str, unused_tcp_port: int, processes: Processes
) -> None:
    """Contract line 12 on a worker host: cancel outcomes on ``/metrics``."""
    import httpx

    async with client(database_url) as rp:
        with worker_process(processes, database_url,
                            "--metrics-port", str(unused_tcp_port)) as worker:
            await worker.printed("started")
            run = await rp.runs.create(None, "echo", input={"n": 1})
            await asyncio.wait_for(rp.runs.join(run.run_id), 10)
            async with httpx.AsyncClient() as http:
                body = (await http.get(f"http://127.0.0.1:{unused_tcp_port}/metrics")).text
            assert worker.returncode is None
        for name in ("runplane_cancel_requests_total", "runplane_refused_writes_total",
                     "runplane_lease_lost_total", "runplane_cancel_latency_seconds_bucket",
                     'runplane_runs_finished_total{status="success"} 1.0'):
            assert name in body
