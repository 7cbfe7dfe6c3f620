"""Runs/s of a 3-step no-op workflow, against the raw commit rate of the same database.

    python benchmarks/throughput.py --runs 5000 --concurrency 128
    python benchmarks/throughput.py --database postgresql://postgres@127.0.0.1:5432/test \\
        --workers 2 --concurrency 64

Default: SQLite, one process (an in-process worker). The ceiling is the rate of
single-row ``INSERT`` + ``COMMIT`` on a fresh file with the same pragmas (WAL,
synchronous=NORMAL): one durable write per transaction, no Python engine around
it. A run costs about nine store operations (create, claim, 3x step start, 3x
step result, finish), which the store batches into group commits.

``--database postgresql://...`` runs in a fresh schema ``rp_bench_<timestamp>_<pid>``
(dropped at the end); the ceiling is the server's rate of single-row ``INSERT``
transactions, one commit each, on one asyncpg connection for about a second.
With ``--workers K`` (K > 0) the runs execute in K ``runplane worker bench_app:app``
processes of ``--concurrency`` runs each (stopped with SIGTERM afterwards) and
this process is a pure client (``worker=False``) that creates the N runs and
joins them all; with ``--workers 0`` (the default) it runs its own worker.
On PostgreSQL it also prints where the machine's CPU went while the runs ran
(this process, the worker processes, PostgreSQL's processes, interrupts, and
other processes: on a shared machine, other people's work) and, from
``pg_stat_database`` / ``pg_stat_wal``, the server's commits, WAL records and WAL
flushes per run (server-wide, so other clients of the server count too).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass

from bench_app import (
    CpuWindow,
    build,
    drop_schema,
    fresh_schema_name,
    is_postgres,
    load_average,
    postgres_commit_rate,
    postgres_counters,
    postgres_info,
    start_workers,
    stop_workers,
    with_schema,
)
from runplane import Runplane

TARGET = 1000.0


def raw_commit_rate(path: str, seconds: float = 1.0) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES ('x')")
        conn.execute("COMMIT")
        n += 1
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


@dataclass(frozen=True)
class Measured:
    runs: int
    elapsed: float  # first create .. last join
    created: float  # first create .. last create returned
    cpu: str = ""  # where the CPU went meanwhile (CpuWindow.describe)

    @property
    def runs_s(self) -> float:
        return self.runs / self.elapsed

    @property
    def steps_s(self) -> float:
        return 3 * self.runs / self.elapsed


async def _create_and_join(app: Runplane, runs: int,
                           worker_pids: frozenset[int] = frozenset()) -> Measured:
    cpu = CpuWindow()
    cpu.start()
    start = time.perf_counter()
    created = await asyncio.gather(
        *(app.runs.create(None, "three_steps", input={"i": i}) for i in range(runs))
    )
    created_at = time.perf_counter()
    await asyncio.gather(*(app.runs.join(r.run_id) for r in created))
    elapsed = time.perf_counter() - start
    cpu.stop(set(worker_pids))
    ok = 0  # counted a page at a time: a list answers at most 1,000 runs
    while page := await app.runs.list(status="success", limit=1000, offset=ok):
        ok += len(page)
    assert ok == runs, f"only {ok} of {runs} runs succeeded"
    return Measured(runs, elapsed, created_at - start, cpu.describe())


async def measure_in_process(url: str, runs: int, concurrency: int) -> Measured:
    """N runs created and joined by an app that runs its own worker."""
    async with build(url, concurrency=concurrency) as app:
        return await _create_and_join(app, runs)


async def runplane_rate(url: str, runs: int, concurrency: int) -> tuple[float, float]:
    """(runs/s, steps/s) with the in-process worker (also used by benchmarks/peers/)."""
    measured = await measure_in_process(url, runs, concurrency)
    return measured.runs_s, measured.steps_s


async def measure_with_workers(url: str, runs: int, workers: int, concurrency: int) -> Measured:
    """N runs created and joined by a pure client, executed by ``workers`` worker processes."""
    async with build(url, worker=False) as client:  # migrates before the workers start
        procs = await start_workers(url, workers, concurrency)
        try:
            pids = frozenset(p.proc.pid for p in procs if p.proc is not None)
            return await _create_and_join(client, runs, pids)
        finally:
            codes = await stop_workers(procs)
            for proc, code in zip(procs, codes, strict=True):
                if code != 0:
                    print(f"warning: a worker exited with code {code}:\n{proc.describe()}",
                          file=sys.stderr)


def _sqlite_main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ceiling = raw_commit_rate(os.path.join(tmp, "raw.db"))
        url = args.database or f"sqlite:///{tmp}/bench.db"
        if args.workers:
            measured = asyncio.run(
                measure_with_workers(url, args.runs, args.workers, args.concurrency))
        else:
            measured = asyncio.run(measure_in_process(url, args.runs, args.concurrency))
    runs_s, steps_s = measured.runs_s, measured.steps_s
    workers = f", {args.workers} worker processes" if args.workers else ""
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} cores, {args.runs} runs, concurrency {args.concurrency}{workers}")
    print(f"runplane: {runs_s:,.0f} runs/s, {steps_s:,.0f} steps/s")
    print(f"ceiling (raw SQLite commits/s, one row each): {ceiling:,.0f}")
    print(f"runs/s as a share of raw commits/s: {runs_s / ceiling:.3f}")
    print(f"target >= 1,000 runs/s: {'met' if runs_s >= TARGET else 'NOT met'}")


async def _postgres(args: argparse.Namespace) -> tuple[Measured, float, str, str, str]:
    schema = fresh_schema_name()
    url = with_schema(args.database, schema)
    server, sync_commit = await postgres_info(url)
    try:
        ceiling = await postgres_commit_rate(url, schema)
        before = await postgres_counters(url)
        if args.workers:
            measured = await measure_with_workers(url, args.runs, args.workers, args.concurrency)
        else:
            measured = await measure_in_process(url, args.runs, args.concurrency)
        # after every connection of the benchmark closed, so that their statistics are flushed
        after = await postgres_counters(url)
    finally:
        await drop_schema(url, schema)
    per_run = {k: (after[k] - before[k]) / args.runs for k in before}
    counters = (f"per run, server-wide (includes start-up, shutdown and other clients): "
                f"{per_run['commits']:.1f} commits, {per_run['wal_records']:.1f} WAL records, "
                f"{per_run['wal_syncs']:.2f} WAL flushes")
    return measured, ceiling, server, sync_commit, counters


def _postgres_main(args: argparse.Namespace) -> None:
    load_before = load_average()
    measured, ceiling, server, sync_commit, counters = asyncio.run(_postgres(args))
    runs_s, steps_s = measured.runs_s, measured.steps_s
    cores = os.cpu_count()
    print(f"python {sys.version.split()[0]}, PostgreSQL {server} "
          f"(synchronous_commit={sync_commit}), {cores} cores, load average "
          f"{load_before} before, {load_average()} after")
    where = (f"{args.workers} worker process(es) x concurrency {args.concurrency}, "
             "this process a pure client" if args.workers
             else f"in-process worker, concurrency {args.concurrency}")
    print(f"{args.runs} runs, {where}")
    print(f"runplane: {runs_s:,.0f} runs/s, {steps_s:,.0f} steps/s "
          f"(all {args.runs} created after {measured.created:.2f}s, "
          f"all joined after {measured.elapsed:.2f}s)")
    print(f"ceiling (raw PostgreSQL commits/s, single-row INSERT per transaction, "
          f"one connection): {ceiling:,.0f}")
    print(f"runs/s as a share of raw commits/s: {runs_s / ceiling:.3f}")
    print(measured.cpu)
    print(counters)
    print(f"target >= 1,000 runs/s on a 2-core machine ({cores} cores here): "
          f"{'met' if runs_s >= TARGET else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=128,
                        help="runs at a time per worker (in-process or each worker process)")
    parser.add_argument("--database", default=None,
                        help="database URL (default: a fresh SQLite file); a postgresql:// URL "
                             "runs in a fresh schema, dropped at the end")
    parser.add_argument("--workers", type=int, default=0,
                        help="worker processes (0: this process runs the worker itself)")
    args = parser.parse_args()
    if args.workers < 0:
        parser.error("--workers must be >= 0")
    if args.database is not None and is_postgres(args.database):
        _postgres_main(args)
    else:
        if args.workers and args.database and ":memory:" in args.database:
            parser.error("an in-memory SQLite database cannot be shared with worker processes")
        _sqlite_main(args)


if __name__ == "__main__":
    main()
