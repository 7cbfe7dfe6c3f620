"""The benchmarks' workflows, as an app a ``runplane worker`` process can import, plus helpers.

    python -m runplane.cli worker bench_app:app --database URL --concurrency C

(with ``benchmarks/`` on ``PYTHONPATH``). Workflows:

- ``three_steps``: three no-op async steps, returns ``{"ok": True}`` (throughput.py).
- ``park``: one step that parks on a long sleep. It writes ``RPBENCH parked <run_id> <t>``
  to stdout once parked and, when the task receives ``asyncio.CancelledError``,
  ``RPBENCH cancelled <run_id> <t>`` (``t`` = ``time.time()`` taken first thing in the
  ``except``) before re-raising (cancel_latency.py).

``build(url, worker=...)`` makes a fresh app with both workflows registered: the
benchmarks use it for their in-process worker or their pure client
(``worker=False``), so client and worker processes agree on the workflow names.
The rest are helpers shared by the benchmark scripts: worker processes, a fresh
PostgreSQL schema per benchmark run, and the raw commit rate of a server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from runplane import Context, Runplane

HERE = Path(__file__).resolve().parent
#: Marks the lines the ``park`` workflow writes on stdout.
REPORT_PREFIX = "RPBENCH"
PARK_SECONDS = 3600.0


async def _noop() -> None:
    return None


async def three_steps(ctx: Context, input: dict) -> dict:
    for name in ("a", "b", "c"):
        await ctx.step(name, _noop)
    return {"ok": True}


def _report(kind: str, run_id: str, t: float) -> None:
    # One short line, flushed at once: the benchmark reads it from a pipe as it comes.
    sys.stdout.write(f"{REPORT_PREFIX} {kind} {run_id} {t!r}\n")
    sys.stdout.flush()


async def _park(run_id: str) -> None:
    _report("parked", run_id, time.time())
    try:
        await asyncio.sleep(PARK_SECONDS)
    except asyncio.CancelledError:
        _report("cancelled", run_id, time.time())
        raise


async def park(ctx: Context, input: dict) -> dict:
    await ctx.step("park", _park, ctx.run_id)
    return {"parked": False}


def build(url: str | None = None, *, worker: bool = True, concurrency: int | None = None,
          **settings: float) -> Runplane:
    """A fresh app on ``url`` with the benchmark workflows registered."""
    rp = Runplane(url, worker=worker, concurrency=concurrency, **settings)
    rp.workflow("three_steps")(three_steps)
    rp.workflow("park")(park)
    return rp


#: What ``runplane worker bench_app:app`` runs (its --database and --concurrency apply).
app = build()


# --------------------------------------------------------------------------- #
# helpers for the benchmark scripts                                            #
# --------------------------------------------------------------------------- #


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql:", "postgres:"))


def with_schema(url: str, schema: str) -> str:
    """``url`` with its ``?schema=`` set to ``schema`` (replacing any given)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "schema"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("schema", schema)])))


def fresh_schema_name() -> str:
    return f"rp_bench_{time.strftime('%Y%m%d%H%M%S')}_{os.getpid()}"


def plain_dsn(url: str) -> str:
    """A PostgreSQL URL without runplane's ``?schema=`` (for asyncpg.connect)."""
    from runplane.store.postgres import postgres_dsn

    return postgres_dsn(url)[0]


async def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(plain_dsn(url))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def postgres_info(url: str) -> tuple[str, str]:
    """(server version, synchronous_commit) of the server behind ``url``."""
    import asyncpg

    conn = await asyncpg.connect(plain_dsn(url))
    try:
        return (await conn.fetchval("SHOW server_version"),
                await conn.fetchval("SHOW synchronous_commit"))
    finally:
        await conn.close()


async def postgres_commit_rate(url: str, schema: str, seconds: float = 1.0) -> float:
    """Commits/s of single-row INSERT transactions on one asyncpg connection.

    Each transaction is ``BEGIN; INSERT ...; COMMIT`` sent as one simple-query
    message (one round trip, one durable commit). The table is a plain table in
    ``schema``, not a temporary one: PostgreSQL does not flush the WAL at commit
    for a transaction that only touched temporary tables, which would overstate
    the ceiling.
    """
    import asyncpg

    conn = await asyncpg.connect(plain_dsn(url))
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        table = f'"{schema}".rp_bench_commit_ceiling'
        await conn.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, v text)")
        statement = f"BEGIN; INSERT INTO {table} (v) VALUES ('x'); COMMIT"
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            await conn.execute(statement)
            n += 1
        elapsed = time.perf_counter() - start
        await conn.execute(f"DROP TABLE {table}")
        return n / elapsed
    finally:
        await conn.close()


def _proc_cpu() -> dict[int, tuple[str, float]]:
    """pid -> (command name, user + system CPU seconds) of every process we can read."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(entry)] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return found


def _busy_seconds() -> tuple[float, float]:
    """CPU seconds the whole machine spent busy (all cores, not idle nor iowait), and the
    part of it in interrupts and softirqs (e.g. loopback TCP), which no process is billed."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - values[3] - values[4]) / tick, (values[5] + values[6]) / tick


class CpuWindow:
    """Where the machine's CPU went between ``start()`` and ``stop()`` (Linux /proc only):
    this process, the given worker pids, PostgreSQL processes (same host), interrupts, and
    anything else. Processes that ended inside the window are only in the total, i.e. in
    "other processes" (on a shared machine: mostly other people's work)."""

    def __init__(self) -> None:
        self._before: dict[int, tuple[str, float]] = {}
        self._busy = (0.0, 0.0)
        self._t = 0.0
        self.shares: dict[str, float] = {}
        self.wall = 0.0

    def start(self) -> None:
        if not os.path.exists("/proc/stat"):
            return
        self._before, self._busy, self._t = _proc_cpu(), _busy_seconds(), time.perf_counter()

    def stop(self, worker_pids: set[int]) -> None:
        if not self._before:
            return
        after, busy = _proc_cpu(), _busy_seconds()
        self.wall = time.perf_counter() - self._t
        spent = {"this process": 0.0, "workers": 0.0, "postgres": 0.0}
        for pid, (name, cpu) in after.items():
            before = self._before.get(pid)
            delta = cpu - (before[1] if before is not None and before[0] == name else 0.0)
            if pid == os.getpid():
                spent["this process"] += delta
            elif pid in worker_pids:
                spent["workers"] += delta
            elif name == "postgres":
                spent["postgres"] += delta
        spent["irq+softirq"] = busy[1] - self._busy[1]
        spent["other processes"] = max(0.0, busy[0] - self._busy[0] - sum(spent.values()))
        self.shares = spent

    def describe(self) -> str:
        if not self.shares or self.wall <= 0:
            return "CPU: not measured (no /proc)"
        cores = os.cpu_count() or 1
        parts = ", ".join(f"{k} {v / self.wall:.2f}" for k, v in self.shares.items())
        total = sum(self.shares.values()) / self.wall
        return (f"CPU in the timed window, in cores busy ({cores} available): {parts}; "
                f"total {total:.2f}")


async def postgres_counters(url: str) -> dict[str, float]:
    """Server-wide counters: committed transactions in this database, WAL records and
    WAL flushes (fsyncs) of the whole server (PostgreSQL 14+)."""
    import asyncpg

    conn = await asyncpg.connect(plain_dsn(url))
    try:
        commits = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
        # pg_stat_database is refreshed when backends report (at most every ~0.5 s idle)
        wal = await conn.fetchrow("SELECT wal_records, wal_sync FROM pg_stat_wal")
        return {"commits": float(commits), "wal_records": float(wal["wal_records"]),
                "wal_syncs": float(wal["wal_sync"])}
    finally:
        await conn.close()


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


class WorkerProcess:
    """One ``runplane worker bench_app:app`` process; its stdout lines go to ``on_line``."""

    def __init__(self, url: str, concurrency: int, *, extra: tuple[str, ...] = (),
                 on_line: Callable[[str], None] | None = None) -> None:
        self.url = url
        self.concurrency = concurrency
        self.extra = extra
        self.on_line = on_line
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self.ready = asyncio.Event()
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(HERE), *filter(None, [env.get("PYTHONPATH")])])
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "runplane.cli", "worker", "bench_app:app",
            "--database", self.url, "--concurrency", str(self.concurrency), *self.extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL, env=env,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read_stderr(self.proc.stderr)),
            asyncio.create_task(self._read_stdout(self.proc.stdout)),
        ]

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            self.stderr_tail.append(line)
            if " started: " in line:
                self.ready.set()

    async def _read_stdout(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            if self.on_line is not None:
                self.on_line(raw.decode(errors="replace").rstrip())

    async def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc is not None
        exited = asyncio.create_task(self.proc.wait())
        ready = asyncio.create_task(self.ready.wait())
        try:
            await asyncio.wait({exited, ready}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            ready.cancel()
            exited.cancel()
        if not self.ready.is_set():
            await asyncio.sleep(0.1)  # let the stderr reader catch up
            raise RuntimeError("worker process did not start:\n" + self.describe())

    def describe(self) -> str:
        code = None if self.proc is None else self.proc.returncode
        return f"(exit code {code})\n" + "\n".join(self.stderr_tail)

    async def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM (a graceful stop), then SIGKILL if it is still there after ``timeout``."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await self.proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        for reader in self._readers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader, 5.0)
        return self.proc.returncode


async def start_workers(url: str, count: int, concurrency: int, *, extra: tuple[str, ...] = (),
                        on_line: Callable[[str], None] | None = None) -> list[WorkerProcess]:
    """Start ``count`` worker processes and wait until each one listens and claims."""
    workers = [WorkerProcess(url, concurrency, extra=extra, on_line=on_line)
               for _ in range(count)]
    try:
        for w in workers:
            await w.start()
        await asyncio.gather(*(w.wait_ready() for w in workers))
    except BaseException:
        await stop_workers(workers)
        raise
    return workers


async def stop_workers(workers: list[WorkerProcess]) -> list[int | None]:
    return list(await asyncio.gather(*(w.stop() for w in workers)))
