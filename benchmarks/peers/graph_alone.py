"""The floor under any server of ``three_nodes``: LangGraph's own loop, in this process, with
no server, no HTTP and in-memory checkpoints (``InMemorySaver``, ``durability="sync"``).

    .venv/bin/python benchmarks/peers/graph_alone.py --runs 1000     # --in-flight 32

It runs the graph of ``lg_project/graphs.py`` as ``langgraph_serve.py``'s servers do
(``astream`` with ``stream_mode=["values"]``, a fresh thread per run, ``--in-flight`` at
once) and prints one JSON line: ``runs_per_s`` and ``cpu_ms_per_run`` (this process's user
+ system time over the batch, divided by the runs). ``langgraph_serve.py`` runs it in each
round: a server's CPU per run can come down to this, not below it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver

sys.path.insert(0, str(Path(__file__).resolve().parent / "lg_project"))
from graphs import three_nodes


async def batch(runs: int, in_flight: int) -> None:
    graph = three_nodes.copy(update={"checkpointer": InMemorySaver()})
    gate = asyncio.Semaphore(in_flight)

    async def one(i: int) -> None:
        async with gate:
            config = {"configurable": {"thread_id": str(uuid.uuid4())}}
            last = None
            async for chunk in graph.astream({"i": i, "n": 0}, config, stream_mode=["values"],
                                             durability="sync"):
                last = chunk
            if last != ("values", {"i": i, "n": 3}):
                raise RuntimeError(f"run {i} ended with {last!r}")

    await asyncio.gather(*(one(i) for i in range(runs)))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(batch(args.warmup, args.in_flight))
    cpu, wall = os.times(), time.perf_counter()
    asyncio.run(batch(args.runs, args.in_flight))
    after, wall = os.times(), time.perf_counter() - wall
    used = (after.user - cpu.user) + (after.system - cpu.system)
    print(json.dumps({"runs_per_s": args.runs / wall, "cpu_ms_per_run": used / args.runs * 1000}))


if __name__ == "__main__":
    main()
