"""The app of the multi-process tree tests: ``root`` -> ``mid`` runs -> parked ``leaf`` runs.

``root`` spawns one ``mid`` per entry of ``input["leaves"]``; each ``mid`` spawns that many
``leaf`` runs, whose only step parks until the run is cancelled. Every run is attached, so
the tree of ``{"leaves": [6, 5, 5]}`` has 1 + 3 + 16 = 20 runs.
"""

from __future__ import annotations

import asyncio

from runplane import Context, Runplane

app = Runplane()


async def _park() -> None:
    await asyncio.Event().wait()


@app.workflow("leaf")
async def leaf(ctx: Context, input: dict) -> None:
    await ctx.step("park", _park)


@app.workflow("mid")
async def mid(ctx: Context, input: dict) -> list:
    children = [await ctx.spawn("leaf", {"n": k}) for k in range(input["leaves"])]
    return list(await asyncio.gather(*children))


@app.workflow("root")
async def root(ctx: Context, input: dict) -> list:
    children = [await ctx.spawn("mid", {"leaves": n}) for n in input["leaves"]]
    return list(await asyncio.gather(*children))
