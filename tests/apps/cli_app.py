"""An app for ``runplane worker cli_app:app`` in the CLI tests (acceptance/test_cli_worker.py).

``app`` is what the worker process imports (its database comes from ``--database``);
the tests build clients with the same workflows through ``build(url, worker=False)``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from runplane import Context, Runplane

STAGES = ("one", "two", "three")


def build(database: str | None = None, **kwargs: Any) -> Runplane:
    rp = Runplane(database, **kwargs)

    @rp.workflow("echo")
    async def echo(ctx: Context, input: dict) -> dict:
        return await ctx.step("echo", _identity, input)

    @rp.workflow("staged")
    async def staged(ctx: Context, input: dict) -> list[str]:
        """Three steps logged to ``input["log"]``; step two waits for ``input["gate"]``
        (and step one for ``input["first_gate"]``, if given)."""
        done = []
        for name in STAGES:
            gate = {"one": input.get("first_gate"), "two": input["gate"]}.get(name)
            done.append(await ctx.step(name, _stage, input["log"], name, gate))
        return done

    return rp


async def _identity(value: Any) -> Any:
    return value


async def _stage(log: str, name: str, gate: str | None) -> str:
    record(log, f"{name}:{os.getpid()}")
    if gate is not None:
        await _wait_for_gate(gate)
    return name


async def _wait_for_gate(gate: str) -> None:
    while True:  # another process opens it: a file is the simplest cross-process signal
        if gate_is_open(gate):
            return
        await asyncio.sleep(0.01)


def gate_is_open(gate: str) -> bool:
    return Path(gate).exists()


def open_gate(gate: str) -> None:
    Path(gate).touch()


def record(log: str, line: str) -> None:
    with Path(log).open("a") as f:
        f.write(line + "\n")


def executions(log: str) -> list[tuple[str, int]]:
    """``(step name, pid of the process that executed it)``, in execution order."""
    path = Path(log)
    if not path.exists():
        return []
    return [(name, int(pid)) for name, pid in
            (line.split(":") for line in path.read_text().split())]


app = build()
