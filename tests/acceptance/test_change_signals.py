"""Changes committed by another process reach the waits of this one without waiting for the
poll: a cancel reaches the worker process holding the run. (A new run reaching an idle
worker, a run's end reaching a ``join`` or a stream: engine/test_change_signals.py.)

Every waiting side polls once a minute here (``SLOW_POLL``), and each test gives the signal
far less than that (``WITHIN``): what arrives in time was carried by a signal (NOTIFY on
PostgreSQL, the store's change check on SQLite), not found by the poll. No wall-clock bound
on the latency itself: benchmarks/cancel_latency.py measures that.
"""

from __future__ import annotations

import signal
from pathlib import Path

import cli_app
from acceptance.test_cli_worker import staged_input, worker_process
from runplane import RunStatus

from support import eventually
from support.processes import Processes

SLOW_POLL = 60.0
WITHIN = 15.0
#: A worker process that would notice a cancel only by its poll or heartbeat, a minute away.
SLOW_WORKER = ("--poll-interval", str(SLOW_POLL), "--heartbeat-interval", "50",
               "--lease-ttl", "120")


async def test_a_cancel_from_another_process_stops_the_parked_run_of_a_worker_process(
    database_url: str, tmp_path: Path, processes: Processes
) -> None:
    input = staged_input(tmp_path)
    async with cli_app.build(database_url, worker=False) as rp:
        run = await rp.runs.create(None, "staged", input=input)  # claimed at the worker's start
        with worker_process(processes, database_url, *SLOW_WORKER) as worker:
            await eventually(lambda: [n for n, _ in cli_app.executions(input["log"])]
                             == ["one", "two"], timeout=WITHIN)
            result = await rp.runs.cancel(run.run_id, reason="from another process")
            assert result.outcome == "cancelled"

            async def stopped() -> bool:  # logged once the workflow's task has ended
                return any(e.event == "step:cancel" for e in await rp.runs.events(run.run_id))

            await eventually(stopped, timeout=WITHIN)
            worker.send_signal(signal.SIGTERM)
            assert await worker.ended(5) == 0
        done = await rp.runs.get(run.run_id)
        assert done.status is RunStatus.INTERRUPTED and done.lease_owner is None
        assert [s.name for s in await rp.runs.steps(run.run_id)] == ["one"]
