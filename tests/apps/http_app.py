"""The app the HTTP end-to-end tests serve (tests/acceptance/http/).

    PYTHONPATH=tests/apps python -m runplane.cli serve http_app:app --database URL ...

``app`` gets its database from ``--database``. Workflows (assistant ids):

- ``echo``: one step; returns ``{"echo": input}`` and emits it as ``values``. With
  ``input["log"]`` (a file path) the step appends ``input["tag"]`` to that file, so a
  test can see in which order runs executed.
- ``steps``: ``input["n"]`` steps ``step_0`` .. ``step_{n-1}``, each returning the running
  total; after each one it emits ``custom`` ``{"progress": i, "of": n}`` and ``values``
  ``{"total": t, "done": i}``. The output equals the last ``values``.
- ``parks``: emits ``input["values"]`` as ``values`` if given, then runs one step that
  waits forever, i.e. until the run is cancelled. The step writes ``parked`` to the file
  ``input["marker"]`` once it waits and, in its ``finally``, ``cleanup-start``, then
  (after ``input["cleanup_seconds"]``, default 0, even if cancelled again meanwhile)
  ``cleanup-done``. The cleanup emits nothing: it must simply run.
- ``ticks``: emits ``values`` ``{"tick": i}`` every 10 ms until the file ``input["gate"]``
  exists, then returns ``{"ticks": i}``. Writes ``started`` to ``input["marker"]`` first
  and ``cleanup-done`` in its ``finally``.
- ``fails``: one step, then raises ``ValueError("boom")``.
- ``family``: spawns one attached ``parks`` child per marker in ``input["markers"]`` and
  awaits them all; a cancelled child is counted, not fatal: it returns
  ``{"cancelled": n}`` once every child ended.
- ``unstorable``: emits ``values`` ``{"before": True}``, then hands a value no store keeps
  and no client could send (``UNSTORABLE[input["value"]]``: ``nan``, ``deep``, ``nul``) to
  what ``input["to"]`` names: ``output`` returns it, ``step`` returns it from a step,
  ``values`` emits it.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from runplane import ChildCancelled, Context, Runplane

WORKFLOWS = ("echo", "steps", "parks", "ticks", "fails", "family", "unstorable", "asks",
             "stepper")


def mark(path: str | None, line: str) -> None:
    """Append one line to ``path`` (a no-op without a path)."""
    if path is None:
        return
    with Path(path).open("a") as f:
        f.write(line + "\n")


def gate_is_open(path: str) -> bool:
    return Path(path).exists()


def marks(path: str | Path) -> list[str]:
    """The lines ``mark`` appended to ``path`` so far."""
    p = Path(path)
    return p.read_text().split() if p.exists() else []


async def _echo(input: Any) -> dict[str, Any]:
    if isinstance(input, dict) and input.get("log"):
        mark(input["log"], str(input.get("tag")))
    return {"echo": input}


async def _add(total: int, n: int) -> int:
    return total + n


async def _cleanup(marker: str | None, seconds: float) -> None:
    mark(marker, "cleanup-start")
    if seconds:
        await asyncio.sleep(seconds)
    mark(marker, "cleanup-done")


async def _park(marker: str | None, cleanup_seconds: float) -> None:
    try:
        mark(marker, "parked")
        await asyncio.Event().wait()  # nobody sets it: only a cancel ends this
    finally:
        # Finish the cleanup even if the task is cancelled again while it runs.
        cleanup = asyncio.ensure_future(_cleanup(marker, cleanup_seconds))
        while not cleanup.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(cleanup)


def _deep(levels: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(levels):
        value = [value]
    return value


UNSTORABLE: dict[str, Any] = {
    "nan": {"score": float("nan")},
    "deep": {"tree": _deep(300)},
    "nul": {"text": "a\x00b"},
}


app = Runplane()


@app.workflow("echo")
async def echo(ctx: Context, input: Any) -> dict[str, Any]:
    out = await ctx.step("echo", _echo, input)
    await ctx.emit("values", out)
    return out


@app.workflow("steps")
async def steps(ctx: Context, input: Any) -> dict[str, int]:
    n = int((input or {}).get("n", 3))
    total = 0
    state = {"total": 0, "done": 0}
    for i in range(n):
        total = await ctx.step(f"step_{i}", _add, total, i + 1)
        await ctx.emit("custom", {"progress": i + 1, "of": n})
        state = {"total": total, "done": i + 1}
        await ctx.emit("values", state)
    return state


@app.workflow("parks")
async def parks(ctx: Context, input: Any) -> dict[str, Any]:
    input = input or {}
    if input.get("values") is not None:
        await ctx.emit("values", input["values"])
    await ctx.step("park", _park, input.get("marker"), float(input.get("cleanup_seconds", 0)))
    return {"parked": False}  # never reached: the step only ends by a cancel


@app.workflow("ticks")
async def ticks(ctx: Context, input: Any) -> dict[str, int]:
    gate = input["gate"]
    marker = input.get("marker")
    mark(marker, "started")
    i = 0
    try:
        while not gate_is_open(gate):
            i += 1
            await ctx.emit("values", {"tick": i})
            await asyncio.sleep(0.01)
        return {"ticks": i}
    finally:
        mark(marker, "cleanup-done")


@app.workflow("fails")
async def fails(ctx: Context, input: Any) -> None:
    await ctx.step("before", _add, 0, 1)
    raise ValueError("boom")


@app.workflow("family")
async def family(ctx: Context, input: Any) -> dict[str, int]:
    children = [await ctx.spawn("parks", {"marker": m}) for m in input["markers"]]
    cancelled = 0
    for child in children:
        try:
            await child
        except ChildCancelled:
            cancelled += 1
    return {"cancelled": cancelled}


@app.workflow("unstorable")
async def unstorable(ctx: Context, input: Any) -> Any:
    await ctx.emit("values", {"before": True})
    value = UNSTORABLE[input["value"]]
    if input["to"] == "step":
        return await ctx.step("produce", lambda: value)
    if input["to"] == "values":
        await ctx.emit("values", value)
    return value


@app.workflow("asks")
async def asks(ctx: Context, input: Any) -> dict[str, Any]:
    """A step (logged to ``input["log"]``), a pause for a person's answer, a step."""
    drafted = await ctx.step("draft", _echo, {"log": input.get("log"), "tag": "draft"})
    await ctx.emit("values", {"draft": input["to"]})
    answer = await ctx.interrupt({"send to": input["to"]})
    sent = await ctx.step("send", _echo, {"log": input.get("log"), "tag": f"send:{answer}"})
    return {"answer": answer, "steps": [drafted["echo"]["tag"], sent["echo"]["tag"]]}


async def _open_gate(gate: str, i: int) -> int:
    """Wait until the file ``gate`` exists: the test opens each step when it wants."""
    while not gate_is_open(gate):  # noqa: ASYNC110 (a file the test process creates)
        await asyncio.sleep(0.01)
    return i


@app.workflow("stepper")
async def stepper(ctx: Context, input: Any) -> dict[str, int]:
    """``n`` steps, step ``i`` running until the file ``<dir>/open-<i>`` exists."""
    done = 0
    for i in range(int(input["n"])):
        done = await ctx.step(f"step_{i}", _open_gate, f"{input['dir']}/open-{i}", i + 1)
    return {"done": done}
