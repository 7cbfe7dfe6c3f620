"""Contract line 9 across processes: a worker killed with SIGKILL at any point loses no
completed step and runs none twice; another worker resumes the run."""

from __future__ import annotations

import asyncio
import signal

import pytest

import crash_worker
from runplane.errors import RunCancelled
from runplane.models import RunStatus

from support import eventually
from support.processes import Processes

WORKER = "import crash_worker; crash_worker.main()"


@pytest.mark.parametrize(
    ("hang_at", "completed_before_kill"),
    [("one", []), ("two", ["one"]), ("three", ["one", "two"])],
)
async def test_sigkilled_worker_run_is_resumed_elsewhere_without_rerunning_steps(
    database_url: str, tmp_path, processes: Processes, hang_at: str,
    completed_before_kill: list[str],
):
    log = str(tmp_path / "executions.log")
    client = crash_worker.build(database_url, log, worker=False)
    async with client:
        run = await client.runs.create(None, "crashy", input={})
        proc = processes.python("worker", WORKER, database_url, log, hang_at)
        await eventually(lambda: f"{hang_at}:1" in crash_worker.executions(log), timeout=30)
        stored = [s.name for s in await client.runs.steps(run.run_id)]
        assert stored == completed_before_kill
        proc.send_signal(signal.SIGKILL)
        await proc.ended(10)
        assert (await client.runs.get(run.run_id)).status is RunStatus.RUNNING

        rescuer = crash_worker.build(database_url, log, lease_ttl=1.0, heartbeat_interval=0.2,
                                     reap_interval=0.1, poll_interval=0.01)
        async with rescuer:
            assert await rescuer.runs.join(run.run_id) == ["one", "two", "three"]
        runs = await client.runs.get(run.run_id)
        assert runs.status is RunStatus.SUCCESS and runs.attempt == 2

    executed = crash_worker.executions(log)
    for name in completed_before_kill:
        assert executed.count(f"{name}:1") == 1, executed
        assert f"{name}:2" not in executed, executed  # replayed, not executed again
    assert executed.count(f"{hang_at}:1") == 1 and executed.count(f"{hang_at}:2") == 1
    async with crash_worker.build(database_url, log, worker=False) as reader:
        events = [e.event for e in await reader.runs.events(run.run_id)]
    assert [e for e in events if e.startswith("run:")] == [
        "run:created", "run:start", "run:resume", "run:start", "run:complete"]
    assert events.count("step:complete") == 3


async def test_cancel_wait_on_a_run_whose_worker_died_returns_when_its_lease_expires(
    database_url: str, tmp_path, processes: Processes
):
    """Nobody releases a dead worker's lease: wait=True answers once the lease ran out."""
    log = str(tmp_path / "executions.log")
    client = crash_worker.build(database_url, log, worker=False, poll_interval=0.01)
    async with client:
        run = await client.runs.create(None, "crashy", input={})
        proc = processes.python("worker", WORKER, database_url, log, "two")
        await eventually(lambda: "two:1" in crash_worker.executions(log), timeout=30)
        proc.send_signal(signal.SIGKILL)
        await proc.ended(10)
        result = await asyncio.wait_for(client.runs.cancel(run.run_id, wait=True), 10)
        assert result.outcome == "cancelled" and result.stopped
        assert result.run.lease_owner is not None  # still named, but its lease has expired
        with pytest.raises(RunCancelled):
            await asyncio.wait_for(client.runs.join(run.run_id), 10)


@pytest.mark.parametrize(("hang_at", "completed_before_kill"), [("two", ["one"])])
async def test_sigkilled_worker_graph_run_goes_on_from_its_last_checkpoint(
    database_url: str, tmp_path, processes: Processes, hang_at: str,
    completed_before_kill: list[str],
):
    """A graph's super-steps are its checkpoints: the rescuer does not run a finished node
    again, and runs the node the dead worker was in once more."""
    log = str(tmp_path / "executions.log")
    client = crash_worker.build(database_url, log, worker=False)
    async with client:
        run = await client.runs.create(None, "crashy_graph", input={"done": []})
        proc = processes.python("worker", WORKER, database_url, log, hang_at)
        await eventually(lambda: f"{hang_at}:1" in crash_worker.executions(log), timeout=30)
        proc.send_signal(signal.SIGKILL)
        await proc.ended(10)

        rescuer = crash_worker.build(database_url, log, lease_ttl=1.0, heartbeat_interval=0.2,
                                     reap_interval=0.1, poll_interval=0.01)
        async with rescuer:
            assert await rescuer.runs.join(run.run_id) == {"done": ["one", "two", "three"]}
            history = await rescuer.threads.get_history(run.thread_id or "", limit=100)
        assert (await client.runs.get(run.run_id)).attempt == 2
    executed = crash_worker.executions(log)
    assert executed == [*(f"{n}:1" for n in completed_before_kill), f"{hang_at}:1",
                        f"{hang_at}:2", "three:2"], executed
    # one run wrote every checkpoint, across both attempts: input, one, two, three
    assert [len(s.values.get("done", [])) for s in history] == [3, 2, 1, 0, 0]
    assert {s.metadata["run_id"] for s in history} == {run.run_id}


async def test_a_cancel_from_another_process_stops_a_graph_in_a_worker_process(
    database_url: str, tmp_path, processes: Processes,
):
    """The worker hears of the cancel (PostgreSQL: NOTIFY; SQLite: another process's
    commit) and stops the graph in its node; ``wait`` answers once it stopped."""
    log = str(tmp_path / "executions.log")
    client = crash_worker.build(database_url, log, worker=False)
    async with client:
        run = await client.runs.create(None, "crashy_graph", input={"done": []})
        processes.python("worker", WORKER, database_url, log, "two")
        await eventually(lambda: "two:1" in crash_worker.executions(log), timeout=30)
        result = await client.runs.cancel(run.run_id, reason="stop it", wait=True)
        assert result.run.status is RunStatus.INTERRUPTED and result.stopped
        with pytest.raises(RunCancelled):
            await client.runs.join(run.run_id)
        state = await client.threads.get_state(run.thread_id or "")
        assert state.values == {"done": ["one"]} and state.next == ("two",)
    assert crash_worker.executions(log) == ["one:1", "two:1"]


async def test_a_paused_workflow_outlives_its_worker_and_goes_on_when_answered(
    database_url: str, tmp_path, processes: Processes,
):
    """Nothing holds a paused run: its worker is SIGKILLed while it waits, and the answer
    is taken up by another worker, which is killed in turn in the step after the pause; a
    third finishes. The step before the pause ran once, across all three."""
    log = str(tmp_path / "executions.log")
    client = crash_worker.build(database_url, log, worker=False)
    async with client:
        thread = await client.threads.create()
        paused = await client.runs.create(thread.thread_id, "approval", input={"item": "x"})
        first = processes.python("worker", WORKER, database_url, log, "")
        output = await asyncio.wait_for(client.runs.join(paused.run_id), 30)
        assert output["__interrupt__"][0]["value"] == {"approve": "x"}
        first.send_signal(signal.SIGKILL)
        await first.ended(10)
        assert (await client.threads.get(thread.thread_id)).status == "interrupted"

        answer = await client.runs.create(thread.thread_id, "approval",
                                          command={"resume": "approved"})
        second = processes.python("worker2", WORKER, database_url, log, "two")
        await eventually(lambda: "two:1" in crash_worker.executions(log), timeout=30)
        second.send_signal(signal.SIGKILL)
        await second.ended(10)

        rescuer = crash_worker.build(database_url, log, lease_ttl=1.0, heartbeat_interval=0.2,
                                     reap_interval=0.1, poll_interval=0.01)
        async with rescuer:
            assert await asyncio.wait_for(rescuer.runs.join(answer.run_id), 30) == [
                "one", "approved", "two"]
        assert (await client.runs.get(answer.run_id)).attempt == 2
        assert (await client.threads.get(thread.thread_id)).status == "idle"
    assert crash_worker.executions(log) == ["one:1", "two:1", "two:2"]
