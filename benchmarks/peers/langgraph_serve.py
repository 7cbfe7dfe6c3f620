"""One LangGraph project served by runplane and by ``langgraph dev``: runs/s, server CPU per
run, cancel latency and first-token latency, in one sitting.

    .venv/bin/python benchmarks/peers/langgraph_serve.py            # --runs 1000 --rounds 2

The LangGraph dev server (``langgraph-cli[inmem]``) is not a runplane dependency: it lives in
its own venv, ``benchmarks/peers/.venv-langgraph``, which this script creates on first use
(``python -m venv benchmarks/peers/.venv-langgraph && benchmarks/peers/.venv-langgraph/bin/pip
install 'langgraph-cli[inmem]'``). The runplane servers come from this interpreter's venv.

Every server serves ``benchmarks/peers/lg_project/langgraph.json`` (graphs ``three_nodes``,
``park``, ``chat``) on a free port, one server at a time, in turn, ``--rounds`` times:

- ``runplane/sqlite``: ``runplane serve --config ...`` on a fresh SQLite file (embedded worker);
- ``runplane/pg``: ``runplane serve --config ... --no-worker`` plus ``--pg-workers``
  ``runplane worker --config ...`` processes, on a fresh schema of ``--pg`` (dropped after);
- ``langgraph``: ``langgraph dev --config langgraph.json --no-browser --no-reload`` (its
  in-memory server, its default settings), started in the project folder.

Both log at warning level. For each: a warm-up, then ``--runs`` ``client.runs.wait(None,
"three_nodes", ...)`` calls with ``--in-flight`` outstanding (runs/s, p50/p99 latency) while the
server's processes' CPU time (user + system, from /proc) is summed over the batch, divided by
the runs: ms of server CPU per run (API and workers for ``runplane/pg``; PostgreSQL's own
backends are shown apart). Then, one at a time, ``--cancels`` runs of ``park`` on fresh threads:
each is started, awaited until it runs, and ``client.runs.cancel(thread, run, wait=True)`` is
timed. Last, ``--streams`` streams of ``chat`` (``stream_mode="messages-tuple"``): the time from
the request to its first ``messages`` event with a token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_app import CpuWindow, drop_schema, load_average, postgres_info, with_schema
from http_throughput import Measured, _free_port, drive

PEERS = Path(__file__).resolve().parent
PROJECT = PEERS / "lg_project"
CONFIG = PROJECT / "langgraph.json"
LG_VENV = PEERS / ".venv-langgraph"
STARTUP_TIMEOUT = 90.0
SERVERS = ("runplane/sqlite", "runplane/sqlite-workers", "runplane/pg", "langgraph")
#: Targets of the comparison: runplane's runs/s at least this many times the dev server's,
#: its server CPU per run at most this share of the dev server's, its cancel p99 at most this.
RATE_TARGET = 3.0
CPU_TARGET = 2 / 3
CANCEL_P99_TARGET_MS = 20.0


def ensure_langgraph_venv() -> Path:
    """The ``langgraph`` command of the benchmark-only venv, created on first use."""
    command = LG_VENV / "bin" / "langgraph"
    if not command.exists():
        print(f"creating {LG_VENV} with langgraph-cli[inmem] (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LG_VENV)], check=True)
        subprocess.run([str(LG_VENV / "bin" / "pip"), "install", "-q", "langgraph-cli[inmem]"],
                       check=True)
    return command


def _version(python: Path | str, package: str) -> str:
    out = subprocess.run(
        [str(python), "-c", f"from importlib.metadata import version; print(version({package!r}))"],
        capture_output=True, text=True)
    return out.stdout.strip() or "?"


def _children(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(x) for x in f.read().split()]
    return found


def process_tree(roots: list[int]) -> set[int]:
    """The pids of ``roots`` and all their descendants alive now."""
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo += _children(pid)
    return seen


class Process:
    """A server or worker process; its output goes to a file, shown on failure."""

    def __init__(self, argv: list[str], log_path: Path, *, cwd: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **(env or {})},
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-20_000:]

    def check_alive(self, what: str) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {self.proc.returncode}:\n{self.output()}")

    async def wait_for_line(self, marker: str, what: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while marker not in self.output():
            self.check_alive(what)
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start within {STARTUP_TIMEOUT}s:\n"
                                   f"{self.output()}")
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


async def wait_ready(api: Process, base_url: str, what: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as http:
        while True:
            api.check_alive(what)
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/ok")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not answer /ok within {STARTUP_TIMEOUT}s:\n"
                                   f"{api.output()}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def serving(name: str, args: argparse.Namespace, folder: Path,
                  langgraph: Path):
    """Start server ``name`` (and its workers), yield its base URL and its processes."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    tag = name.replace("/", "-")
    processes: list[Process] = []
    schema = None
    def runplane(role: str) -> list[str]:
        if args.profile is None:
            return [sys.executable, "-m", "runplane.cli"]
        out = args.profile / f"{tag}-{role}-{time.strftime('%H%M%S')}.prof"
        return [sys.executable, str(PEERS / "profiled.py"), str(out)]

    concurrency = [] if args.concurrency is None else ["--concurrency", str(args.concurrency)]
    try:
        if name == "langgraph":
            # it resolves the graphs' paths from its working directory, where it also keeps
            # its state (./.langgraph_api, reloaded at start): start each server afresh
            shutil.rmtree(PROJECT / ".langgraph_api", ignore_errors=True)
            processes.append(Process(
                [str(langgraph), "dev", "--config", str(CONFIG), "--no-browser", "--no-reload",
                 "--host", "127.0.0.1", "--port", str(port), "--server-log-level", "WARNING"],
                folder / f"{tag}.log", cwd=PROJECT,
                env={"LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false",
                     "LANGGRAPH_CLI_NO_ANALYTICS": "1"}))
            await wait_ready(processes[0], base_url, name)
        elif name == "runplane/sqlite":
            url = f"sqlite:///{folder / f'{tag}-{time.time_ns()}.db'}"
            processes.append(Process(
                [*runplane("api"), "serve", "--config", str(CONFIG), "--database", url,
                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                 *concurrency], folder / f"{tag}.log"))
            await wait_ready(processes[0], base_url, name)
        else:  # an API process and worker processes
            if name == "runplane/pg":
                schema = f"rp_lgbench_{time.strftime('%Y%m%d%H%M%S')}_{os.getpid()}"
                url, workers = with_schema(args.pg, schema), args.pg_workers
            else:
                url = f"sqlite:///{folder / f'{tag}-{time.time_ns()}.db'}"
                workers = args.sqlite_workers
            processes.append(Process(
                [*runplane("api"), "serve", "--config", str(CONFIG), "--database", url,
                 "--no-worker",
                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                folder / f"{tag}.log"))
            await wait_ready(processes[0], base_url, name)
            for k in range(workers):
                processes.append(Process(
                    [*runplane(f"worker{k}"), "worker", "--config", str(CONFIG), "--database", url,
                     "--log-level", "info", *concurrency], folder / f"{tag}-worker{k}.log"))
            for k, worker in enumerate(processes[1:]):
                await worker.wait_for_line(" started: ", f"{name} worker {k}")
        yield base_url, processes
    finally:
        for p in reversed(processes):
            code = p.stop()
            # uvicorn re-raises SIGTERM once it shut down gracefully: -SIGTERM is a clean exit
            if code not in (0, -signal.SIGTERM):
                print(f"warning: a {name} process exited with {code}:\n{p.output()[-3000:]}",
                      file=sys.stderr)
        if schema is not None:
            await drop_schema(with_schema(args.pg, schema), schema)


# --------------------------------------------------------------------------- #
# the measurements                                                            #
# --------------------------------------------------------------------------- #


@dataclass
class Result:
    server: str
    runs: Measured
    cpu_ms_per_run: float
    postgres_ms_per_run: float
    client_cores: float
    cancels: list[float] = field(default_factory=list)  # seconds
    cancel_statuses: set[str] = field(default_factory=set)
    first_tokens: list[float] = field(default_factory=list)  # seconds


def _ms(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1] * 1000


async def three_nodes(client: LangGraphClient, runs: int, in_flight: int) -> Measured:
    async def one(i: int) -> None:
        out = await client.runs.wait(None, "three_nodes", input={"i": i, "n": 0})
        if out != {"i": i, "n": 3}:
            raise RuntimeError(f"run {i} answered {out!r}")

    return await drive(runs, in_flight, one)


async def cancel_latencies(client: LangGraphClient, count: int) -> tuple[list[float], set[str]]:
    """Seconds of ``runs.cancel(wait=True)`` on a running ``park`` run, one at a time."""
    latencies: list[float] = []
    statuses: set[str] = set()
    for _ in range(count):
        thread = await client.threads.create()
        run = await client.runs.create(thread["thread_id"], "park", input={"i": 0, "n": 0})
        while True:
            got = await client.runs.get(thread["thread_id"], run["run_id"])
            if got["status"] == "running":
                break
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.02)  # from "running" to inside the node's await
        t0 = time.perf_counter()
        await client.runs.cancel(thread["thread_id"], run["run_id"], wait=True)
        latencies.append(time.perf_counter() - t0)
        statuses.add((await client.runs.get(thread["thread_id"], run["run_id"]))["status"])
    return latencies, statuses


async def first_tokens(client: LangGraphClient, count: int) -> list[float]:
    """Seconds from the request of a ``chat`` stream to its first token."""
    found: list[float] = []
    for _ in range(count):
        t0 = time.perf_counter()
        first = None
        async for part in client.runs.stream(
                None, "chat", input={"messages": [{"role": "user", "content": "hi"}]},
                stream_mode="messages-tuple"):
            if first is None and part.event == "messages" and part.data[0].get("content"):
                first = time.perf_counter() - t0
        if first is None:
            raise RuntimeError("a chat stream carried no token")
        found.append(first)
    return found


def signal_all(processes: list[Process], signum: int) -> None:
    for p in processes:
        p.proc.send_signal(signum)


async def measure(name: str, args: argparse.Namespace, folder: Path, langgraph: Path,
                  log: Callable[[str], None]) -> Result:
    async with serving(name, args, folder, langgraph) as (base_url, processes):
        async with get_client(url=base_url, api_key=None) as client:
            await three_nodes(client, args.warmup, args.in_flight)
            await cancel_latencies(client, 3)
            await first_tokens(client, 3)
            pids = process_tree([p.proc.pid for p in processes])
            profiled = name != "langgraph" and args.profile is not None
            window = CpuWindow()
            window.start()
            if profiled:
                signal_all(processes, signal.SIGUSR1)
            runs = await three_nodes(client, args.runs, args.in_flight)
            if profiled:
                signal_all(processes, signal.SIGUSR2)
            window.stop(pids)
            cancels, statuses = await cancel_latencies(client, args.cancels)
            tokens = await first_tokens(client, args.streams)
    shares = window.shares
    result = Result(name, runs, shares.get("workers", float("nan")) / args.runs * 1000,
                    shares.get("postgres", 0.0) / args.runs * 1000,
                    shares.get("this process", 0.0) / max(window.wall, 1e-9),
                    cancels, statuses, tokens)
    log(row(result))
    return result


def header() -> str:
    return (f"{'server':<16} {'runs/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/run':>10} "
            f"{'(pg ms/run)':>11} {'client cores':>12} {'cancel p50':>10} {'cancel p99':>10} "
            f"{'1st token p50':>13} {'p99':>6}")


def row(r: Result) -> str:
    return (f"{r.server:<16} {r.runs.rate:>7,.0f} {r.runs.percentile(50):>7.1f} "
            f"{r.runs.percentile(99):>7.1f} {r.cpu_ms_per_run:>10.2f} "
            f"{r.postgres_ms_per_run:>11.2f} {r.client_cores:>12.2f} "
            f"{_ms(r.cancels, 50):>10.1f} {_ms(r.cancels, 99):>10.1f} "
            f"{_ms(r.first_tokens, 50):>13.1f} {_ms(r.first_tokens, 99):>6.1f}")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def graph_alone(args: argparse.Namespace) -> dict[str, float]:
    """LangGraph's own loop over ``three_nodes`` with no server (graph_alone.py), run now."""
    out = subprocess.run(
        [sys.executable, str(PEERS / "graph_alone.py"), "--runs", str(args.runs),
         "--in-flight", str(args.in_flight), "--warmup", str(args.warmup)],
        capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def compare(results: list[Result], alone: dict[str, float] | None) -> list[str]:
    """The ratios of each runplane server to the dev server of the same round, and what
    the rate target asks of a server's CPU per run next to LangGraph's own loop."""
    lg = next(r for r in results if r.server == "langgraph")
    lines = []
    if alone is not None:
        needed = lg.cpu_ms_per_run / RATE_TARGET
        lines.append(
            f"LangGraph alone (no server, in-memory checkpoints): {alone['runs_per_s']:,.0f} "
            f"runs/s, {alone['cpu_ms_per_run']:.2f} ms CPU per run; {RATE_TARGET:.0f}x the dev "
            f"server's runs/s on one core needs <= {needed:.2f} ms of server CPU per run "
            f"({needed / alone['cpu_ms_per_run']:.2f}x LangGraph alone)")
    for r in results:
        if r is lg:
            continue
        rate = r.runs.rate / lg.runs.rate
        cpu = r.cpu_ms_per_run / lg.cpu_ms_per_run
        cancel = _ms(r.cancels, 99)
        lines.append(
            f"{r.server}/langgraph: runs/s {rate:.2f}x (target >= {RATE_TARGET:.0f}x: "
            f"{verdict(rate >= RATE_TARGET)}), server CPU per run {cpu:.2f} (target <= "
            f"{CPU_TARGET:.2f}: {verdict(cpu <= CPU_TARGET)}), cancel p99 {cancel:.1f} ms "
            f"(target <= {CANCEL_P99_TARGET_MS:.0f} ms: {verdict(cancel <= CANCEL_P99_TARGET_MS)})")
    return lines


async def _main(args: argparse.Namespace, langgraph: Path) -> None:
    pg_server, sync_commit = await postgres_info(args.pg)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average "
          f"{load_average()} at start; PostgreSQL {pg_server} (synchronous_commit={sync_commit})")
    print(f"runplane {_version(sys.executable, 'runplane')} (langgraph "
          f"{_version(sys.executable, 'langgraph')}); langgraph dev: langgraph-cli "
          f"{_version(LG_VENV / 'bin' / 'python', 'langgraph-cli')}, langgraph-api "
          f"{_version(LG_VENV / 'bin' / 'python', 'langgraph-api')}, langgraph "
          f"{_version(LG_VENV / 'bin' / 'python', 'langgraph')}")
    print(f"{args.runs} x runs.wait(None, 'three_nodes'), {args.in_flight} in flight; "
          f"{args.cancels} cancels (wait=True) one at a time; {args.streams} chat streams; "
          f"runplane/pg = API + {args.pg_workers} worker(s), runplane/sqlite-workers = API + "
          f"{args.sqlite_workers} worker(s); concurrency "
          f"{args.concurrency or 'default'}; {args.rounds} round(s), servers in turn")
    order = [s for s in SERVERS if s in args.servers]
    with tempfile.TemporaryDirectory(prefix="rp-lgbench-") as tmp:
        for k in range(args.rounds):
            print(f"\nround {k + 1}, load average {load_average()}")
            print(header(), flush=True)
            results = []
            # alternate the order between rounds, so that no server always goes first
            for name in order if k % 2 == 0 else order[::-1]:
                results.append(await measure(name, args, Path(tmp), langgraph,
                                             lambda line: print(line, flush=True)))
            if any(r.server == "langgraph" for r in results):
                for line in compare(results, None if args.no_floor else graph_alone(args)):
                    print(line)
            statuses = {r.server: sorted(r.cancel_statuses) for r in results}
            print(f"status after cancel: {statuses}", flush=True)
    print(f"\nload average {load_average()} at the end")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--cancels", type=int, default=100)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pg-workers", type=int, default=1,
                        help="runplane worker processes beside the API on PostgreSQL (default "
                             "1: on two cores a second one adds no core, only contention)")
    parser.add_argument("--sqlite-workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="runplane worker concurrency (default: runplane's)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="PostgreSQL database for runplane/pg (a fresh schema, dropped after)")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="run the runplane processes under cProfile (benchmarks/peers/"
                             "profiled.py) over the timed batch; one .prof file each in DIR")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--no-floor", action="store_true",
                        help="skip LangGraph alone (graph_alone.py) after each round")
    args = parser.parse_args()
    if min(args.runs, args.cancels, args.streams) < 2:
        parser.error("--runs, --cancels and --streams must be >= 2 (percentiles)")
    if not os.path.exists("/proc/stat"):
        parser.error("server CPU is read from /proc: Linux only")
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    langgraph = ensure_langgraph_venv()
    asyncio.run(_main(args, langgraph))


if __name__ == "__main__":
    main()
