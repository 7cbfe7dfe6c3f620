"""Changes committed through another store (two stores on one database are two connections,
as two processes would be) reach the waits of this one without waiting for the poll: a new
run reaches an idle worker, its events reach a stream, its end reaches a ``join``, and a
worker letting go of a cancelled run reaches the ``cancel(wait=True)`` that waits for it;
on SQLite by noticing the commit, on PostgreSQL by NOTIFY. And an idle SQLite worker runs
nothing but the change check until something commits.

Every waiting side polls once a minute (``SLOW_POLL``) and each test gives the signal far
less than that (``WITHIN``). (A cancel from a worker process: acceptance/test_change_signals.py.)"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import cli_app
from runplane import Runplane
from runplane.store import sqlite as sqlite_store

from support import eventually

SLOW_POLL = 60.0
WITHIN = 15.0


def slow_app(url: str, *, worker: bool) -> Runplane:
    return cli_app.build(url, worker=worker, poll_interval=SLOW_POLL, heartbeat_interval=50,
                         lease_ttl=120, reap_interval=3600, shutdown_grace=0)


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every statement the SQLite stores opened from now on run, in order."""
    traced: list[str] = []
    connect = sqlite_store._ConnectionThread._connect

    def traced_connect(self: sqlite_store._ConnectionThread) -> sqlite3.Connection:
        conn = connect(self)
        conn.set_trace_callback(traced.append)
        return conn

    monkeypatch.setattr(sqlite_store._ConnectionThread, "_connect", traced_connect)
    yield traced


async def test_a_new_run_reaches_an_idle_worker_and_its_end_reaches_join_and_stream(
    database_url: str, statements: list[str]
) -> None:
    async with slow_app(database_url, worker=False) as client, \
            slow_app(database_url, worker=True):
        if database_url.startswith("sqlite"):
            await eventually(lambda: _claims(statements) == 1)  # the next is a minute away
        run = await client.runs.create(None, "echo", input={"n": 1})

        async def streamed() -> list[str]:
            return [e.event async for e in client.runs.stream(run.run_id) if e is not None]

        joined, events = await asyncio.wait_for(
            asyncio.gather(client.runs.join(run.run_id), streamed()), WITHIN)
        assert joined == {"n": 1}
        assert events[0] == "run:created" and events[-1] == "run:complete"


async def test_a_running_runs_events_reach_a_stream_while_it_runs(
    database_url: str, tmp_path: Path
) -> None:
    """A stream hears the events another process logs while the run goes on (its first
    step done, its second waiting at a gate), not only when the run ends."""
    log, first, gate = (str(tmp_path / name) for name in ("log", "first", "gate"))
    async with slow_app(database_url, worker=False) as client, \
            slow_app(database_url, worker=True):
        run = await client.runs.create(None, "staged", input={
            "log": log, "first_gate": first, "gate": gate})
        following = asyncio.Event()

        async def second_step_started() -> None:
            async for event in client.runs.stream(run.run_id):
                following.set()
                if event is not None and event.event == "step:start" \
                        and event.data.get("name") == "two":
                    return

        follow = asyncio.create_task(second_step_started())
        await asyncio.wait_for(following.wait(), WITHIN)
        # the run waits in its first step until now: what it logs next, only a signal
        # brings to the stream before a minute
        await eventually(lambda: cli_app.executions(log) != [], timeout=WITHIN)
        cli_app.open_gate(first)
        await asyncio.wait_for(follow, WITHIN)
        cli_app.open_gate(gate)
        assert await asyncio.wait_for(client.runs.join(run.run_id), WITHIN) == list(
            cli_app.STAGES)


async def test_a_cancel_waiting_for_another_process_worker_hears_it_let_go(
    database_url: str, tmp_path: Path
) -> None:
    """``cancel(wait=True)`` answers once the run's task stopped: the worker that stops it
    is in another process, and its release of the lease is what the waiter must hear."""
    log, gate = str(tmp_path / "log"), str(tmp_path / "gate")
    async with slow_app(database_url, worker=False) as client, \
            slow_app(database_url, worker=True):
        run = await client.runs.create(None, "staged", input={"log": log, "gate": gate})
        await eventually(lambda: [name for name, _ in cli_app.executions(log)] == ["one", "two"],
                         timeout=WITHIN)
        result = await asyncio.wait_for(client.runs.cancel(run.run_id, wait=True), WITHIN)
        assert result.stopped and result.run.status == "interrupted"
        assert (await client.runs.get(run.run_id)).lease_owner is None


async def test_an_idle_worker_only_checks_for_changes_until_another_process_commits(
    tmp_path: Path, statements: list[str]
) -> None:
    """Not polling harder: while nothing changes, an idle worker runs nothing but the change
    check (no table read); one commit elsewhere brings one look for pending runs."""
    url = f"sqlite:///{tmp_path}/idle.db"
    async with Runplane(url, worker=False) as other:
        async with slow_app(url, worker=True):
            await eventually(lambda: _claims(statements) == 1)
            await eventually(lambda: _after_claims(statements).count("PRAGMA data_version")
                             >= 20)
            idle = _after_claims(statements)
            assert set(idle) == {"PRAGMA data_version"}, idle

            await other.threads.create()
            await eventually(lambda: _claims(statements) == 2, timeout=WITHIN)


def _claims(statements: list[str]) -> int:
    return sum(1 for s in statements if s.lstrip().startswith("SELECT r.run_id FROM runs r"))


def _after_claims(statements: list[str]) -> list[str]:
    """What ran after the transaction of the last claim committed."""
    last = max(k for k, s in enumerate(statements) if _claims([s]))
    commit = statements.index("COMMIT", last) if "COMMIT" in statements[last:] else None
    return [] if commit is None else statements[commit + 1:]
