"""Runs/s of a 3-step no-op workflow on SQLite, in one process, against SQLite's raw commit rate.

    python benchmarks/throughput.py --runs 5000 --concurrency 128

The ceiling is the rate of single-row ``INSERT`` + ``COMMIT`` on a fresh file
with the same pragmas (WAL, synchronous=NORMAL): one durable write per
transaction, no Python engine around it. A run costs about nine store
operations (create, claim, 3x step start, 3x step result, finish), which the
store batches into group commits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time

from runplane import Context, Runplane


async def _noop() -> None:
    return None


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


async def runplane_rate(url: str, runs: int, concurrency: int) -> tuple[float, float]:
    app = Runplane(url, concurrency=concurrency)

    @app.workflow("three_steps")
    async def three_steps(ctx: Context, input: dict) -> dict:
        for name in ("a", "b", "c"):
            await ctx.step(name, _noop)
        return {"ok": True}

    async with app:
        start = time.perf_counter()
        created = await asyncio.gather(
            *(app.runs.create(None, "three_steps", input={"i": i}) for i in range(runs))
        )
        await asyncio.gather(*(app.runs.join(r.run_id) for r in created))
        elapsed = time.perf_counter() - start
        ok = await app.runs.list(status="success", limit=runs + 1)
        assert len(ok) == runs, f"only {len(ok)} of {runs} runs succeeded"
    return runs / elapsed, 3 * runs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=128)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ceiling = raw_commit_rate(os.path.join(tmp, "raw.db"))
        runs_s, steps_s = asyncio.run(
            runplane_rate(f"sqlite:///{tmp}/bench.db", args.runs, args.concurrency)
        )
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} cores, {args.runs} runs, concurrency {args.concurrency}")
    print(f"runplane: {runs_s:,.0f} runs/s, {steps_s:,.0f} steps/s")
    print(f"ceiling (raw SQLite commits/s, one row each): {ceiling:,.0f}")
    print(f"runs/s as a share of raw commits/s: {runs_s / ceiling:.3f}")
    print(f"target >= 1,000 runs/s: {'met' if runs_s >= 1000 else 'NOT met'}")


if __name__ == "__main__":
    main()
