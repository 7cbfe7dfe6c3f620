"""A workflow whose steps log every execution to a file, for tests that kill workers.

Run as a worker process: ``python -c "import crash_worker; crash_worker.main()" URL LOG HANG``
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from runplane import Context, Runplane

STEPS = ("one", "two", "three")


def build(url: str, log: str, hang_at: str = "", **kwargs) -> Runplane:
    app = Runplane(url, **kwargs)

    @app.workflow("crashy")
    async def crashy(ctx: Context, input: dict) -> list[str]:
        return [await ctx.step(name, _execute, log, name, ctx.attempt, hang_at)
                for name in STEPS]

    return app


async def _execute(log: str, name: str, attempt: int, hang_at: str) -> str:
    _append_line(log, f"{name}:{attempt}")
    if name == hang_at:
        await asyncio.sleep(3600)
    return name


def _append_line(log: str, line: str) -> None:
    with Path(log).open("a") as f:
        f.write(line + "\n")


def executions(log: str) -> list[str]:
    path = Path(log)
    return path.read_text().split() if path.exists() else []


def main() -> None:
    url, log, hang_at = sys.argv[1:4]

    async def serve() -> None:
        async with build(url, log, hang_at, lease_ttl=1.0, heartbeat_interval=0.2):
            await asyncio.Event().wait()

    asyncio.run(serve())
