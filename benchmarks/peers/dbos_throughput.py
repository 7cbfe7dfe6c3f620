"""Runs/s of a 3-step no-op workflow on DBOS Transact and on runplane, same PostgreSQL server.

Requires DBOS Transact, which is not a runplane dependency: install it first with

    .venv/bin/pip install dbos

then run

    .venv/bin/python benchmarks/peers/dbos_throughput.py --runs 1000 --concurrency 64

Both engines run in this one process, one after the other (runplane first, then
DBOS), against the same PostgreSQL server, with the same workload: N workflows
of three no-op steps, all started at once, timed from the first start until
every result is back. Every step is checkpointed by both engines.

- runplane: ``runplane_rate`` from ``benchmarks/throughput.py`` on
  ``<pg>/test?schema=rp_bench_<timestamp>`` (the schema is dropped afterwards);
  the worker runs ``--concurrency`` runs at a time.
- DBOS: an async ``@DBOS.workflow()`` awaiting three async ``@DBOS.step()`` calls,
  started with ``DBOS.start_workflow_async`` (or, with ``--dbos-mode threads``,
  sync functions started with ``DBOS.start_workflow`` from a thread pool), at most
  ``--dbos-concurrency`` in flight. Its system database is a dedicated database,
  ``dbos_bench``, dropped and recreated at each run and dropped at the end.
  Starting workflows directly is DBOS's fastest path here: a queue adds an
  enqueue, a polled dequeue and polled results.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

try:
    from dbos import DBOS
except ImportError:  # said after the arguments are parsed, so --help works without it
    DBOS = None

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from throughput import runplane_rate

DBOS_DATABASE = "dbos_bench"


def _define_dbos_workflows() -> tuple[Any, Any]:
    """Register the workload with DBOS (before launch): (async workflow, sync workflow)."""

    @DBOS.step()
    async def noop_async() -> None:
        return None

    @DBOS.workflow()
    async def three_steps_async(i: int) -> int:
        for _ in range(3):
            await noop_async()
        return i

    @DBOS.step()
    def noop_sync() -> None:
        return None

    @DBOS.workflow()
    def three_steps_sync(i: int) -> int:
        for _ in range(3):
            noop_sync()
        return i

    return three_steps_async, three_steps_sync


async def _admin(pg: str, database: str, *statements: str) -> None:
    conn = await asyncpg.connect(f"{pg}/{database}")
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


async def _fetch(pg: str, database: str, sql: str) -> Any:
    conn = await asyncpg.connect(f"{pg}/{database}")
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def _dbos_async_run(workflow: Any, runs: int, in_flight: int) -> float:
    gate = asyncio.Semaphore(in_flight) if in_flight > 0 else None

    async def one(i: int) -> int:
        if gate is None:
            handle = await DBOS.start_workflow_async(workflow, i)
            return await handle.get_result()
        async with gate:
            handle = await DBOS.start_workflow_async(workflow, i)
            return await handle.get_result()

    start = time.perf_counter()
    results = await asyncio.gather(*(one(i) for i in range(runs)))
    elapsed = time.perf_counter() - start
    assert results == list(range(runs)), "DBOS returned wrong results"
    return elapsed


def _dbos_threads_run(workflow: Any, runs: int, threads: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads or 64) as pool:
        results = list(pool.map(lambda i: DBOS.start_workflow(workflow, i).get_result(),
                                range(runs)))
    elapsed = time.perf_counter() - start
    assert results == list(range(runs)), "DBOS returned wrong results"
    return elapsed


def dbos_rate(pg: str, runs: int, mode: str, in_flight: int) -> tuple[float, float]:
    asyncio.run(_admin(pg, "postgres",
                       f"DROP DATABASE IF EXISTS {DBOS_DATABASE} WITH (FORCE)",
                       f"CREATE DATABASE {DBOS_DATABASE}"))
    wf_async, wf_sync = _define_dbos_workflows()
    DBOS(config={
        "name": "runplane-peer-bench",
        "system_database_url": f"{pg}/{DBOS_DATABASE}",
        "log_level": "WARNING",
        "application_version": "bench",
    })
    try:
        DBOS.launch()  # creates the system tables (schema "dbos"); not timed
        if mode == "async":
            elapsed = asyncio.run(_dbos_async_run(wf_async, runs, in_flight))
        else:
            elapsed = _dbos_threads_run(wf_sync, runs, in_flight)
    finally:
        DBOS.destroy(destroy_registry=True)
    ok = asyncio.run(_fetch(pg, DBOS_DATABASE,
                            "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'"))
    steps = asyncio.run(_fetch(pg, DBOS_DATABASE, "SELECT count(*) FROM dbos.operation_outputs"))
    assert ok == runs, f"only {ok} of {runs} DBOS workflows succeeded"
    assert steps == 3 * runs, f"DBOS recorded {steps} steps, expected {3 * runs}"
    asyncio.run(_admin(pg, "postgres", f"DROP DATABASE IF EXISTS {DBOS_DATABASE} WITH (FORCE)"))
    return runs / elapsed, 3 * runs / elapsed


def _runplane_on_postgres(pg: str, runs: int, concurrency: int) -> tuple[float, float]:
    schema = f"rp_bench_{time.strftime('%Y%m%d%H%M%S')}_{os.getpid()}"
    try:
        return asyncio.run(runplane_rate(f"{pg}/test?schema={schema}", runs, concurrency))
    finally:
        asyncio.run(_admin(pg, "test", f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000, help="workflows per engine")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="runplane worker concurrency (runs at a time)")
    parser.add_argument("--dbos-mode", choices=("async", "threads"), default="async",
                        help="async workflows on the event loop, or sync ones from threads")
    parser.add_argument("--dbos-concurrency", type=int, default=20,
                        help="DBOS workflows in flight (async: 0 = all at once; threads: pool "
                             "size, 0 = 64); default 20 = DBOS's default connection pool")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432",
                        help="PostgreSQL server URL without a database name")
    args = parser.parse_args()
    if DBOS is None:
        sys.exit("dbos is not installed: run `.venv/bin/pip install dbos` first "
                 "(it is deliberately not a runplane dependency)")

    server = asyncio.run(_fetch(args.pg, "test", "SHOW server_version"))
    sync_commit = asyncio.run(_fetch(args.pg, "test", "SHOW synchronous_commit"))
    print(f"python {sys.version.split()[0]}, PostgreSQL {server} "
          f"(synchronous_commit={sync_commit}), {os.cpu_count()} cores")
    print(f"runplane {_version('runplane')} (asyncpg {_version('asyncpg')}), "
          f"dbos {_version('dbos')} (sqlalchemy {_version('sqlalchemy')}, "
          f"psycopg {_version('psycopg')})")
    print(f"{args.runs} workflows x 3 no-op steps each; runplane concurrency "
          f"{args.concurrency}; DBOS {args.dbos_mode}, {args.dbos_concurrency or 'all'} in flight")

    rp_runs, rp_steps = _runplane_on_postgres(args.pg, args.runs, args.concurrency)
    print(f"runplane: {rp_runs:,.0f} runs/s, {rp_steps:,.0f} steps/s", flush=True)
    db_runs, db_steps = dbos_rate(args.pg, args.runs, args.dbos_mode, args.dbos_concurrency)
    print(f"DBOS:     {db_runs:,.0f} runs/s, {db_steps:,.0f} steps/s")
    print(f"runplane/DBOS: {rp_runs / db_runs:.2f}x")


if __name__ == "__main__":
    main()
