"""The service's streams of a run's log, on both stores: nothing past the end of any log."""

from __future__ import annotations

from typing import Any

from runplane import Context

from support import AppFactory


async def test_the_service_streams_nothing_past_the_end_of_any_log(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow("one")
    async def one(ctx: Context, input: Any) -> int:
        await ctx.emit("values", {"v": 1})
        return 1

    async with app:
        run = await app.runs.create(None, "one")
        assert await app.runs.join(run.run_id) == 1
        for after in (2**63 - 1, 2**63, 2**80):
            assert [e async for e in app.runs.stream(run.run_id, after_seq=after)] == []
        assert [e.event async for e in app.runs.stream(run.run_id, after_seq=-4)][-1] == (
            "run:complete")
