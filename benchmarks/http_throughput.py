"""Runs/s of a 3-step no-op workflow through the HTTP API, against the rate of ``GET /ok``.

    python benchmarks/http_throughput.py --runs 2000 --in-flight 32
    python benchmarks/http_throughput.py --database postgresql://postgres@127.0.0.1:5432/test

Starts ``runplane serve http_bench_app:app`` as a subprocess (a fresh SQLite file by
default; a ``postgresql://`` URL runs in a fresh schema ``rp_httpbench_<timestamp>_<pid>``,
dropped at the end), then drives N runs through the official client, each one a
``client.runs.wait(None, "three_steps", input=...)`` call (create a thread-less run, wait
for it, return its output), with ``--in-flight`` calls outstanding at any time. It prints
runs/s and the p50/p99 latency of one call.

The ceiling is the rate of ``GET /ok`` calls made with the same client and the same number
in flight: what the HTTP stack (client, loopback, uvicorn, FastAPI) costs without any
runplane work. The ratio says which share of that rate runs reach. Both use the client as
``get_client`` makes it (httpx's default pool: up to 100 connections, 20 kept alive).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from bench_app import HERE, drop_schema, is_postgres, load_average, postgres_info, with_schema

WORKFLOW = "three_steps"
STARTUP_TIMEOUT = 60.0


@dataclass(frozen=True)
class Measured:
    calls: int
    elapsed: float
    latencies: list[float]  # seconds, one per call

    @property
    def rate(self) -> float:
        return self.calls / self.elapsed

    def percentile(self, p: int) -> float:
        """The ``p``-th percentile latency in milliseconds."""
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1] * 1000


async def drive(calls: int, in_flight: int, call: Callable[[int], Awaitable[None]]) -> Measured:
    """Make ``calls`` calls with ``in_flight`` of them outstanding at any time."""
    latencies: list[float] = []
    next_index = 0

    async def lane() -> None:
        nonlocal next_index
        while next_index < calls:
            i = next_index
            next_index += 1
            t0 = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(in_flight, calls))))
    return Measured(calls, time.perf_counter() - start, latencies)


async def measure_runs(client: LangGraphClient, runs: int, in_flight: int) -> Measured:
    async def one(i: int) -> None:
        out = await client.runs.wait(None, WORKFLOW, input={"i": i})
        if out != {"ok": True}:
            raise RuntimeError(f"run {i} answered {out!r}")

    return await drive(runs, in_flight, one)


async def measure_ok(client: LangGraphClient, calls: int, in_flight: int) -> Measured:
    async def one(i: int) -> None:
        body = await client.http.get("/ok")
        if body != {"ok": True}:
            raise RuntimeError(f"GET /ok answered {body!r}")

    return await drive(calls, in_flight, one)


# --------------------------------------------------------------------------- #
# the server process                                                          #
# --------------------------------------------------------------------------- #


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``runplane serve http_bench_app:app``; its output goes to a file, shown on failure."""

    def __init__(self, url: str, concurrency: int, log_path: Path) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        env = {**os.environ, "PYTHONPATH": str(HERE)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runplane.cli", "serve", "http_bench_app:app",
             "--database", url, "--host", "127.0.0.1", "--port", str(self.port),
             "--concurrency", str(concurrency), "--log-level", "warning"],
            env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-20_000:]

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"runplane serve exited with {self.proc.returncode}:\n"
                                       f"{self.output()}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/ok")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"runplane serve did not answer /ok within "
                                       f"{STARTUP_TIMEOUT}s:\n{self.output()}")
                await asyncio.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


async def benchmark(url: str, args: argparse.Namespace, folder: Path) -> tuple[Measured, Measured]:
    server = ServerProcess(url, args.concurrency, folder / "server.log")
    try:
        await server.wait_ready()
        # the client as users get it: httpx's default pool (100 connections, 20 kept alive)
        async with get_client(url=server.base_url, api_key=None) as client:
            # warm up: connections, the server's first requests, the store's caches
            await measure_runs(client, min(args.in_flight, args.runs), args.in_flight)
            await measure_ok(client, args.in_flight * 4, args.in_flight)
            runs = await measure_runs(client, args.runs, args.in_flight)
            ok = await measure_ok(client, args.ok_calls or args.runs, args.in_flight)
        return runs, ok
    finally:
        code = server.stop()
        # uvicorn re-raises SIGTERM once it shut down gracefully: -SIGTERM is a clean exit
        if code not in (0, -signal.SIGTERM):
            print(f"warning: runplane serve exited with {code}:\n{server.output()}",
                  file=sys.stderr)


async def _main(args: argparse.Namespace) -> tuple[Measured, Measured, str]:
    with tempfile.TemporaryDirectory(prefix="rp-httpbench-") as tmp:
        folder = Path(tmp)
        if args.database is None or not is_postgres(args.database):
            url = args.database or f"sqlite:///{folder / 'http_bench.db'}"
            runs, ok = await benchmark(url, args, folder)
            return runs, ok, f"SQLite {sqlite3.sqlite_version}"
        schema = f"rp_httpbench_{time.strftime('%Y%m%d%H%M%S')}_{os.getpid()}"
        url = with_schema(args.database, schema)
        server, sync_commit = await postgres_info(url)
        try:
            runs, ok = await benchmark(url, args, folder)
        finally:
            await drop_schema(url, schema)
        return runs, ok, f"PostgreSQL {server} (synchronous_commit={sync_commit})"


def _describe(m: Measured, unit: str) -> str:
    return (f"{m.rate:,.0f} {unit}/s, latency p50 {m.percentile(50):.1f} ms, "
            f"p99 {m.percentile(99):.1f} ms ({m.calls} calls in {m.elapsed:.2f}s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=32,
                        help="client calls outstanding at any time")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="runs the server's embedded worker executes at once")
    parser.add_argument("--ok-calls", type=int, default=0,
                        help="GET /ok calls for the ceiling (default: as many as --runs)")
    parser.add_argument("--database", default=None,
                        help="database URL (default: a fresh SQLite file); a postgresql:// URL "
                             "runs in a fresh schema, dropped at the end")
    args = parser.parse_args()
    if args.runs < 2 or args.ok_calls == 1 or args.ok_calls < 0:
        parser.error("--runs and --ok-calls must be >= 2 (percentiles need two calls)")
    if args.in_flight < 1 or args.concurrency < 1:
        parser.error("--in-flight and --concurrency must be >= 1")
    if args.database and ":memory:" in args.database:
        parser.error("the server is another process: an in-memory SQLite database would be "
                     "its own, not shared; give a file")
    load_before = load_average()
    runs, ok, store = asyncio.run(_main(args))
    print(f"python {sys.version.split()[0]}, {store}, {os.cpu_count()} cores, load average "
          f"{load_before} before, {load_average()} after")
    print(f"{args.runs} runs of {WORKFLOW} via client.runs.wait(None, ...), {args.in_flight} in "
          f"flight; server: runplane serve, embedded worker, concurrency {args.concurrency}")
    print(f"runplane over HTTP: {_describe(runs, 'runs')}")
    print(f"ceiling (GET /ok, same client, {args.in_flight} in flight): "
          f"{_describe(ok, 'calls')}")
    print(f"runs/s as a share of GET /ok calls/s: {runs.rate / ok.rate:.3f}")


if __name__ == "__main__":
    main()
