"""The app the fault tests serve and work (tests/acceptance/test_chaos.py).

    PYTHONPATH=tests/apps runplane worker chaos_app:app --database URL
    PYTHONPATH=tests/apps runplane serve chaos_app:app --no-worker --database URL

``chain``: ``input["steps"]`` steps (default 4), each sleeping ``input["pause"]`` seconds
(default 0.02). Every execution of a step function appends ``run_id attempt index time`` to
``input["log"]/<pid>.log`` before it sleeps, so a test counts executions across processes
and attempts, however they were killed.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from runplane import Context, Runplane

app = Runplane()


@app.workflow("chain")
async def chain(ctx: Context, input: dict[str, Any]) -> dict[str, int]:
    total = 0
    for index in range(input.get("steps", 4)):
        total += await ctx.step(f"step_{index}", _execute, input["log"], ctx.run_id,
                                ctx.attempt, index, input.get("pause", 0.02))
    return {"total": total}


async def _execute(log: str, run_id: str, attempt: int, index: int, pause: float) -> int:
    line = f"{run_id} {attempt} {index} {time.time():.6f}\n"
    fd = os.open(Path(log) / f"{os.getpid()}.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())  # one small O_APPEND write: whole, even if killed after
    finally:
        os.close(fd)
    await asyncio.sleep(pause)
    return index


def executions(log: str) -> list[tuple[str, int, int, float]]:
    """Every step execution logged in ``log``: (run_id, attempt, index, started at)."""
    found = []
    for path in Path(log).glob("*.log"):
        for line in path.read_text().splitlines():
            run_id, attempt, index, at = line.split()
            found.append((run_id, int(attempt), int(index), float(at)))
    return found
