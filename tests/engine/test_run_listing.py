"""Listing runs as an operator does (the console's list): by assistant, by the start of
the run id, by creation time, and counted per status, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from runplane import Context, InvalidInput
from runplane.clock import ManualClock

from support import AppFactory


async def test_runs_are_listed_and_counted_by_every_filter(make_app: AppFactory):
    clock = ManualClock(1_800_000_000.0)
    app = make_app(clock=clock, worker=False)

    @app.workflow("a")
    async def a(ctx: Context, input: Any) -> Any:
        return input

    @app.workflow("b")
    async def b(ctx: Context, input: Any) -> Any:
        return input

    async with app:
        thread = await app.threads.create()
        first = await app.runs.create(None, "a", run_id="aaaa-1")
        clock.advance(60)
        second = await app.runs.create(thread.thread_id, "b", run_id="aaab-2")
        third = await app.runs.create(None, "b", run_id="bbbb-3")
        await app.runs.cancel(third.run_id)

        async def ids(**filters: Any) -> list[str]:
            return [r.run_id for r in await app.runs.list(limit=100, **filters)]

        assert await ids() == ["bbbb-3", "aaab-2", "aaaa-1"]
        assert await ids(assistant_id="b") == ["bbbb-3", "aaab-2"]
        assert await ids(id_prefix="aaa") == ["aaab-2", "aaaa-1"]
        assert await ids(id_prefix="aaab-2") == ["aaab-2"]
        assert await ids(id_prefix="%") == []  # a prefix, not a pattern
        cut = datetime.fromtimestamp(1_800_000_030.0, UTC)
        assert await ids(created_after=cut) == ["bbbb-3", "aaab-2"]
        assert await ids(created_before=cut) == [first.run_id]
        assert await ids(thread_id=thread.thread_id, assistant_id="b") == [second.run_id]
        assert await ids(status="interrupted", assistant_id="b") == ["bbbb-3"]
        counts = await app.runs.count()
        assert counts == {"pending": 2, "running": 0, "success": 0, "error": 0,
                          "timeout": 0, "interrupted": 1}
        assert (await app.runs.count(assistant_id="a"))["pending"] == 1
        assert sum((await app.runs.count(id_prefix="zz")).values()) == 0
        with pytest.raises(InvalidInput):
            await app.runs.list(id_prefix="x" * 1000)
