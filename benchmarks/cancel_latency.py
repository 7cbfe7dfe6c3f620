"""Cross-process cancel latency: from ``cancel()`` returning here to the workflow task's
``CancelledError`` in a worker process.

    python benchmarks/cancel_latency.py                 # PostgreSQL, 200 cancels
    python benchmarks/cancel_latency.py --database sqlite:///./cancel.db

One ``runplane worker bench_app:app`` process runs the ``park`` workflow: a step
that awaits a long sleep. It writes ``RPBENCH parked <run_id> <t>`` on its stdout
once parked and, in ``except asyncio.CancelledError``,
``RPBENCH cancelled <run_id> <t>`` with ``t = time.time()`` taken first, before
re-raising. This process is a pure client (``worker=False``): for each cancel it
creates a run, waits for the worker's ``parked`` line (by then the run is
``running`` and its ``step:start`` event is written), calls
``await client.runs.cancel(run_id)``, takes ``time.time()`` as soon as it
returns, then waits for the worker's ``cancelled`` line. Latency = the worker's
time - the return time: both are wall-clock readings on the same machine. It
can be slightly negative when the worker hears of the cancel before the client
has processed the reply to its COMMIT; the sign is kept.

On PostgreSQL the cancel reaches the worker by ``NOTIFY`` (sent on commit), on
SQLite by the worker's store noticing another process's commit (``PRAGMA data_version``
checked every 5 ms), which makes it re-read its leases at once; the poll every
``poll_interval`` (50 ms unless ``--poll-interval``) is only the fallback. PostgreSQL runs
in a fresh schema ``rp_bench_<timestamp>_<pid>``, dropped at the end; SQLite in a fresh
temporary file unless ``--database`` names one. The targets: p99 < 50 ms on PostgreSQL,
p99 <= 20 ms on SQLite; the last line gives p99 / target.

``--in-flight P`` keeps P runs going at once (P lanes, each create -> park ->
cancel -> wait); every cancel is still timed on its own. The first ``--warmup``
cancels (default 5) open connections and are not counted. ``--jitter 0.05`` waits a
random 0-50 ms after ``parked``, so that cancels do not keep one phase against the
worker's periodic checks.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sys
import tempfile
import time
from collections import defaultdict

from bench_app import (
    REPORT_PREFIX,
    build,
    drop_schema,
    fresh_schema_name,
    is_postgres,
    load_average,
    postgres_info,
    start_workers,
    stop_workers,
    with_schema,
)
from runplane.store.sqlite import CHANGE_CHECK

DEFAULT_DATABASE = "postgresql://postgres@127.0.0.1:5432/test"
#: p99 targets: PostgreSQL (NOTIFY), SQLite (change check)
TARGET_P99 = {"postgres": 0.050, "sqlite": 0.020}
STEP_TIMEOUT = 30.0


class Reports:
    """The worker's ``RPBENCH <kind> <run_id> <t>`` lines, as futures keyed by kind and run."""

    def __init__(self) -> None:
        self._futures: dict[tuple[str, str], asyncio.Future[float]] = {}
        self.other: list[str] = []

    def future(self, kind: str, run_id: str) -> asyncio.Future[float]:
        key = (kind, run_id)
        if key not in self._futures:
            self._futures[key] = asyncio.get_running_loop().create_future()
        return self._futures[key]

    def on_line(self, line: str) -> None:
        parts = line.split()
        if len(parts) == 4 and parts[0] == REPORT_PREFIX:
            future = self.future(parts[1], parts[2])
            if not future.done():
                future.set_result(float(parts[3]))
        else:
            self.other.append(line)

    async def wait(self, kind: str, run_id: str) -> float:
        future = self.future(kind, run_id)
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                return await asyncio.shield(future)
        finally:
            if future.done():
                del self._futures[(kind, run_id)]


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


async def measure(url: str, cancels: int, warmup: int, in_flight: int,
                  poll_interval: float | None, jitter: float) -> dict[str, list[float]]:
    reports = Reports()
    extra = ("--poll-interval", str(poll_interval)) if poll_interval is not None else ()
    results: dict[str, list[float]] = defaultdict(list)
    total = warmup + cancels
    issued = 0

    async with build(url, worker=False) as client:  # migrates before the worker starts
        workers = await start_workers(url, 1, max(4, 2 * in_flight), extra=extra,
                                      on_line=reports.on_line)
        try:
            async def lane() -> None:
                nonlocal issued
                while issued < total:
                    counted = issued >= warmup
                    issued += 1
                    run = await client.runs.create(None, "park", input={})
                    await reports.wait("parked", run.run_id)
                    if jitter > 0:
                        await asyncio.sleep(random.uniform(0.0, jitter))
                    before = time.time()
                    result = await client.runs.cancel(run.run_id, reason="benchmark")
                    returned = time.time()
                    assert result.outcome == "cancelled", result.outcome
                    stopped = await reports.wait("cancelled", run.run_id)
                    if counted:
                        results["latency"].append(stopped - returned)
                        results["call"].append(returned - before)
                        results["from_call"].append(stopped - before)

            await asyncio.gather(*(lane() for _ in range(in_flight)))
            interrupted = 0  # a page at a time: a list answers at most 1,000 runs
            while page := await client.runs.list(status="interrupted", limit=1000,
                                                 offset=interrupted):
                interrupted += len(page)
            assert interrupted == total, f"{interrupted} of {total} runs interrupted"
        except BaseException:
            print("worker stderr:\n" + workers[0].describe(), file=sys.stderr)
            raise
        finally:
            await stop_workers(workers)
    return results


async def _run(args: argparse.Namespace) -> tuple[dict[str, list[float]], str]:
    if is_postgres(args.database):
        schema = fresh_schema_name()
        url = with_schema(args.database, schema)
        server, sync_commit = await postgres_info(url)
        backend = f"PostgreSQL {server} (synchronous_commit={sync_commit}), cancel via NOTIFY"
        try:
            results = await measure(url, args.cancels, args.warmup, args.in_flight,
                                    args.poll_interval, args.jitter)
        finally:
            await drop_schema(url, schema)
        return results, backend
    poll = args.poll_interval if args.poll_interval is not None else 0.05
    backend = (f"SQLite, cancel noticed by the worker's change check every "
               f"{CHANGE_CHECK * 1000:g} ms (poll every {poll * 1000:.0f} ms as fallback)")
    if args.database != "sqlite":
        return await measure(args.database, args.cancels, args.warmup, args.in_flight,
                             args.poll_interval, args.jitter), backend
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/cancel.db"
        return await measure(url, args.cancels, args.warmup, args.in_flight,
                             args.poll_interval, args.jitter), backend


def _ms(value: float) -> str:
    return f"{value * 1000:+.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default=DEFAULT_DATABASE,
                        help=f"database URL (default {DEFAULT_DATABASE}, in a fresh schema); "
                             "'sqlite' for a fresh SQLite file")
    parser.add_argument("--cancels", type=int, default=200, help="cancels measured")
    parser.add_argument("--warmup", type=int, default=5, help="cancels first, not counted")
    parser.add_argument("--in-flight", type=int, default=1,
                        help="runs created, parked and cancelled at once (each timed alone)")
    parser.add_argument("--jitter", type=float, default=0.0,
                        help="wait a random 0..JITTER seconds between 'parked' and cancel() "
                             "(de-phases the cancel from the worker's poll ticks)")
    parser.add_argument("--poll-interval", type=float, default=None,
                        help="the worker's poll interval in seconds (default: runplane's)")
    args = parser.parse_args()
    if args.cancels < 1 or args.in_flight < 1 or args.warmup < 0:
        parser.error("--cancels and --in-flight must be >= 1, --warmup >= 0")
    if args.database.startswith("sqlite:") and ":memory:" in args.database:
        parser.error("an in-memory SQLite database cannot be shared with a worker process")

    load_before = load_average()
    start = time.perf_counter()
    results, backend = asyncio.run(_run(args))
    elapsed = time.perf_counter() - start
    latency = sorted(results["latency"])
    calls = sorted(results["call"])
    negative = sum(1 for x in latency if x < 0)
    print(f"python {sys.version.split()[0]}, {backend}, {os.cpu_count()} cores, "
          f"load average {load_before} before, {load_average()} after")
    jitter = f", random 0-{args.jitter * 1000:.0f} ms wait before each cancel" \
        if args.jitter > 0 else ""
    print(f"{len(latency)} cancels (+{args.warmup} warm-up), {args.in_flight} in flight"
          f"{jitter}, {elapsed:.1f}s in all")
    print("cancel() returned -> CancelledError in the worker process: "
          f"p50 {_ms(percentile(latency, 50))}, p90 {_ms(percentile(latency, 90))}, "
          f"p99 {_ms(percentile(latency, 99))}, max {_ms(latency[-1])} "
          f"(min {_ms(latency[0])}, {negative} negative)")
    from_call = sorted(results["from_call"])
    print(f"cancel() call itself: p50 {_ms(percentile(calls, 50))}, "
          f"p99 {_ms(percentile(calls, 99))}; cancel() called -> CancelledError: "
          f"p50 {_ms(percentile(from_call, 50))}, p99 {_ms(percentile(from_call, 99))}")
    p99 = percentile(latency, 99)
    if is_postgres(args.database):
        target, met, rule = TARGET_P99["postgres"], p99 < TARGET_P99["postgres"], "<"
    else:
        target, met, rule = TARGET_P99["sqlite"], p99 <= TARGET_P99["sqlite"], "<="
    print(f"target p99 {rule} {target * 1000:.0f} ms: {'met' if met else 'NOT met'} "
          f"(p99 / target = {p99 / target:.2f})")


if __name__ == "__main__":
    main()
