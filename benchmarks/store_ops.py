"""The store alone: CPU per run of the operations a 3-step run makes, without a worker.

    python benchmarks/store_ops.py --runs 3000
    python benchmarks/store_ops.py --database postgresql://postgres@127.0.0.1:5432/test

Creates runs in batches, claims them, writes each one's three step starts, three step
results and its finish, then reads it back, with ``--batch`` runs at a time (so the store
groups their writes, as under load). It prints runs/s and the CPU this process spent per
run (both its threads: the event loop and SQLite's connection thread): what a change to
the store's code costs, with no worker, notifier or HTTP around it. Compare two versions
by running it alternately in one sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time

from bench_app import drop_schema, fresh_schema_name, is_postgres, with_schema
from runplane.models import ClaimedRun, MultitaskStrategy, NewRun, RunStatus
from runplane.store import open_store


async def measure(url: str, runs: int, batch: int) -> tuple[float, float]:
    store = open_store(url)
    await store.open()
    try:
        async def create(i: int) -> None:
            await store.create_run(NewRun(
                run_id=f"r{i}", thread_id=None, assistant_id="wf", input={"i": i},
                metadata={}, multitask_strategy=MultitaskStrategy.ENQUEUE, max_attempts=3,
                timeout=None, root_run_id=f"r{i}"), time.time(), on_active="enqueue")

        async def work(claimed: ClaimedRun) -> None:
            lease = claimed.lease
            for k in range(3):
                await store.append_event(claimed.run.run_id, "step:start",
                                         {"name": "s", "index": k}, time.time(), lease=lease)
                await store.complete_step(lease, k, "s", {"k": k}, time.time())
            await store.finish_run(lease, RunStatus.SUCCESS, {"ok": 1}, None, time.time())
            await store.get_run(claimed.run.run_id)

        cpu, wall = time.process_time(), time.perf_counter()
        for start in range(0, runs, batch):
            await asyncio.gather(*(create(i) for i in range(start, min(runs, start + batch))))
            claimed = await store.claim_runs("bench", ["wf"], batch, 30.0, time.time())
            await asyncio.gather(*(work(c) for c in claimed))
        return runs / (time.perf_counter() - wall), (time.process_time() - cpu) / runs
    finally:
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--database", help="a postgresql:// URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    schema = None
    if args.database and is_postgres(args.database):
        schema = fresh_schema_name()
        url = with_schema(args.database, schema)
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='rp-store-')}/store.db"
    try:
        rate, cpu = await measure(url, args.runs, args.batch)
    finally:
        if schema is not None:
            await drop_schema(args.database, schema)
    print(f"store alone, {args.runs} runs, {args.batch} at a time: {rate:,.0f} runs/s, "
          f"{cpu * 1e6:,.0f} us of CPU per run")


if __name__ == "__main__":
    asyncio.run(main())
