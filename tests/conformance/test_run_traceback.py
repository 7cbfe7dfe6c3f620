"""Each finished run keeps its own traceback in the store, and a refused write keeps none."""

from __future__ import annotations

import asyncio

from runplane.models import MultitaskStrategy, NewRun, RunStatus
from runplane.store import Store

T0 = 1_800_000_000.0


def _new_run(run_id: str) -> NewRun:
    return NewRun(run_id=run_id, thread_id=None, assistant_id="wf", input=None, metadata={},
                  multitask_strategy=MultitaskStrategy.ENQUEUE, max_attempts=3, timeout=None,
                  root_run_id=run_id)


async def test_the_store_keeps_the_traceback_of_each_finished_run(store: Store) -> None:
    """Several finishes at once share one statement on PostgreSQL: each keeps its own."""
    ids = [f"r{k}" for k in range(6)]
    for run_id in ids:
        await store.create_run(_new_run(run_id), T0, on_active="enqueue")
    claimed = await store.claim_runs("w1", ["wf"], len(ids), 10.0, T0)
    leases = {c.run.run_id: c.lease for c in claimed}
    traces = {run_id: f"Traceback ...\n  in {run_id}\nValueError: {run_id} é\n" for run_id in ids}
    done = await asyncio.gather(*(
        store.finish_run(leases[r], RunStatus.ERROR if k % 2 else RunStatus.TIMEOUT, None,
                         f"failed {r}", T0 + 1, traces[r])
        for k, r in enumerate(ids)))
    assert done == [True] * len(ids)
    for run_id in ids:
        run = await store.get_run(run_id)
        assert run is not None and run.traceback == traces[run_id]
        assert run.error == f"failed {run_id}"
    # a refused write keeps nothing
    await store.create_run(_new_run("late"), T0, on_active="enqueue")
    (late,) = await store.claim_runs("w1", ["wf"], 1, 10.0, T0)
    assert await store.finish_run(late.lease, RunStatus.SUCCESS, 1, None, T0 + 1)
    assert not await store.finish_run(late.lease, RunStatus.ERROR, None, "x", T0 + 2, "tb")
    assert (await store.get_run("late")).traceback is None
