"""What a quiet SQLite deployment asks its database per second: statements traced on every
store connection (``sqlite3`` trace callback), counted by kind.

    python benchmarks/idle_queries.py [--seconds 5]

Two apps on one fresh file, each with its own store (its own connection, as two
processes would have): a worker (default settings) and a pure client. Three phases:

- ``idle``: no runs at all;
- ``parked``: the worker holds one parked run (``park``) and the client waits in
  ``join`` on it;
- ``busy``: the client writes one event per millisecond to another run's log
  (another process committing all the time), the worker still parked.

Counted per second: ``reads/writes`` (statements that touch a table: the real queries),
``transactions`` (``BEGIN``), ``change checks`` (``PRAGMA data_version``, no table read),
for the worker's connection and the client's apart.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections import Counter
from typing import Any

from bench_app import build
from runplane import RunStatus
from runplane.store import sqlite as sqlite_store

CONNECTIONS: list[Counter[str]] = []


def _kind(statement: str) -> str:
    head = statement.lstrip().split(None, 1)[0].upper()
    if head == "PRAGMA":
        return "change checks" if "data_version" in statement else "pragmas"
    if head in ("BEGIN",):
        return "transactions"
    if head in ("COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"):
        return "control"
    return "reads/writes"


def _traced_connect(connect: Any) -> Any:
    def traced(self: Any) -> sqlite3.Connection:
        conn = connect(self)
        counts: Counter[str] = Counter()
        CONNECTIONS.append(counts)
        conn.set_trace_callback(lambda statement: counts.update([_kind(statement)]))
        return conn

    return traced


async def _phase(name: str, seconds: float, who: dict[str, Counter[str]]) -> None:
    before = {k: Counter(v) for k, v in who.items()}
    await asyncio.sleep(seconds)
    for label, counts in who.items():
        delta = counts - before[label]
        shown = ", ".join(f"{kind} {delta[kind] / seconds:.1f}/s" for kind in
                          ("reads/writes", "transactions", "change checks"))
        print(f"{name:7} {label:7} {shown}")


async def main(seconds: float) -> None:
    sqlite_store._ConnectionThread._connect = _traced_connect(
        sqlite_store._ConnectionThread._connect)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/idle.db"
        async with build(url, worker=False) as client:
            client_counts = CONNECTIONS[-1]
            async with build(url, worker=True):
                who = {"worker": CONNECTIONS[-1], "client": client_counts}
                await asyncio.sleep(0.5)  # start-up claims and reads done
                await _phase("idle", seconds, who)

                parked = await client.runs.create(None, "park", input={})
                join = asyncio.create_task(client.runs.join(parked.run_id))
                await client.service.wait(parked.run_id, lambda run, _now:
                                          run.status is RunStatus.RUNNING)
                await asyncio.sleep(0.5)
                await _phase("parked", seconds, who)

                other = await client.runs.create(None, "park", input={})
                await client.runs.cancel(other.run_id)
                stop = time.monotonic() + seconds + 0.5

                async def write() -> None:
                    while time.monotonic() < stop:
                        await client.store.append_event(other.run_id, "note", {}, time.time(),
                                                        lease=None)
                        await asyncio.sleep(0.001)

                writer = asyncio.create_task(write())
                await asyncio.sleep(0.25)
                await _phase("busy", seconds, who)
                await writer
                await client.runs.cancel(parked.run_id)
                await asyncio.gather(join, return_exceptions=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    asyncio.run(main(parser.parse_args().seconds))
