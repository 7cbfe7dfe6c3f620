"""A failed run keeps where it failed: the formatted traceback, bounded, stored with the run
on both stores, and one warning line per failed run in the log."""

from __future__ import annotations

import asyncio
import logging

import pytest

from runplane import Context, RunFailed
from runplane.models import RunStatus
from runplane.worker import TRACEBACK_LIMIT

from support import AppFactory


def _raise_deep(depth: int) -> None:
    if depth:
        _raise_deep(depth - 1)
    raise KeyError("missing-key")


async def test_a_failed_run_keeps_the_workflows_traceback(
        make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()

    @app.workflow("broken")
    async def broken(ctx: Context, input: dict) -> None:
        await ctx.step("ok", lambda: 1)
        try:
            _raise_deep(2)
        except KeyError as exc:
            raise RuntimeError("tool call failed") from exc

    caplog.set_level(logging.WARNING, logger="runplane.worker")
    async with app:
        run = await app.runs.create(None, "broken", metadata={})
        with pytest.raises(RunFailed):
            await app.runs.join(run.run_id)
        failed = await app.runs.get(run.run_id)
    assert failed.status is RunStatus.ERROR
    assert failed.error == "RuntimeError: tool call failed"
    trace = failed.traceback
    assert trace is not None and trace.startswith("Traceback (most recent call last):")
    # the workflow's own frames, the cause it chained, and the final exception last
    assert "in broken" in trace and trace.count("in _raise_deep") == 3
    assert "KeyError: 'missing-key'" in trace
    assert "direct cause of the following exception" in trace
    assert trace.rstrip().endswith("RuntimeError: tool call failed")
    # one line in the log, naming the run; the traceback stays with the run
    lines = [r.getMessage() for r in caplog.records if run.run_id in r.getMessage()]
    assert len(lines) == 1, lines
    assert lines[0] == (f"run {run.run_id} (broken, attempt 1) ended error: "
                        "RuntimeError: tool call failed")
    assert "\n" not in lines[0] and caplog.records[-1].levelno == logging.WARNING


async def test_a_huge_traceback_is_cut_and_keeps_its_end(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow("deep")
    async def deep(ctx: Context, input: dict) -> None:
        raise ValueError("x" * (3 * TRACEBACK_LIMIT) + "\nthe last line")

    async with app:
        run = await app.runs.create(None, "deep")
        with pytest.raises(RunFailed):
            await app.runs.join(run.run_id)
        trace = (await app.runs.get(run.run_id)).traceback
    assert trace is not None
    head, _, kept = trace.partition("\n")
    assert head.startswith("[traceback cut: its first ") and "not kept" in head
    assert len(kept) <= TRACEBACK_LIMIT
    assert kept.endswith("the last line\n")


async def test_a_timed_out_run_keeps_its_reason_and_where_it_was_stopped(
        make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()

    async def wait_for_tool() -> None:
        await asyncio.Event().wait()

    @app.workflow("slow")
    async def slow(ctx: Context, input: dict) -> None:
        await wait_for_tool()

    caplog.set_level(logging.WARNING, logger="runplane.worker")
    async with app:
        run = await app.runs.create(None, "slow", timeout=0.05)
        with pytest.raises(RunFailed):
            await app.runs.join(run.run_id)
        ended = await app.runs.get(run.run_id)
    assert ended.status is RunStatus.TIMEOUT
    assert ended.traceback is not None
    assert ended.traceback.startswith("run exceeded its timeout of 0.05s")
    assert "in slow" in ended.traceback and "in wait_for_tool" in ended.traceback
    assert [r.getMessage() for r in caplog.records if run.run_id in r.getMessage()] == [
        f"run {run.run_id} (slow, attempt 1) ended timeout: run exceeded its timeout of 0.05s"]


async def test_a_successful_run_has_no_traceback_and_logs_nothing(
        make_app: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()

    @app.workflow("fine")
    async def fine(ctx: Context, input: dict) -> int:
        return 1

    caplog.set_level(logging.WARNING, logger="runplane.worker")
    async with app:
        run = await app.runs.create(None, "fine")
        assert await app.runs.join(run.run_id) == 1
        assert (await app.runs.get(run.run_id)).traceback is None
    assert not [r for r in caplog.records if run.run_id in r.getMessage()]
