"""Human in the loop for native workflows: ``await ctx.interrupt(value)`` pauses a run
durably and a run created with ``command={"resume": answer}`` takes it up, on both stores.

The paused run ends ``success`` with its pending interrupt as output, its thread
``interrupted``: nothing holds a worker while a person thinks. The answering run calls the
workflow again with the paused run's input; its steps are the paused run's, replayed from
their stored results (a side-effect counter proves none re-runs), and ``ctx.interrupt``
returns the answer. The answer is taken in the transaction that creates its run, so a
second answer to the same pause finds nothing to resume.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from runplane import (
    Context,
    InvalidInput,
    NothingToResume,
    PausedElsewhere,
    RunFailed,
    Runplane,
)
from runplane.models import ANSWER_STEP, RunStatus

from support import AppFactory


def _approval_app(make_app: AppFactory, executed: Counter[str], **kwargs: Any) -> Runplane:
    app = make_app(**kwargs)

    def effect(name: str) -> str:
        executed[name] += 1
        return name

    @app.workflow("approval")
    async def approval(ctx: Context, input: dict[str, Any]) -> dict[str, Any]:
        await ctx.step("draft", effect, "draft")
        await ctx.emit("values", {"drafted": input["item"]})
        first = await ctx.interrupt({"approve": input["item"]})
        await ctx.step("revise", effect, "revise")
        second = await ctx.interrupt({"confirm": first})
        await ctx.step("send", effect, "send")
        return {"first": first, "second": second}

    @app.workflow("other")
    async def other(ctx: Context, input: Any) -> Any:
        return input

    return app


async def _join(app: Runplane, run_id: str) -> Any:
    async with asyncio.timeout(20):
        return await app.runs.join(run_id)


async def test_a_paused_workflow_goes_on_with_each_answer_and_reruns_no_step(
    make_app: AppFactory,
) -> None:
    executed: Counter[str] = Counter()
    async with _approval_app(make_app, executed) as app:
        thread = await app.threads.create()
        paused = await app.runs.create(thread.thread_id, "approval", input={"item": "memo"})
        output = await _join(app, paused.run_id)
        [asked] = output["__interrupt__"]
        assert asked["value"] == {"approve": "memo"} and len(asked["id"]) == 32
        state = await app.threads.get(thread.thread_id)
        assert state.status == "interrupted"
        assert state.interrupts == {paused.run_id: [asked]}
        assert state.values == {"drafted": "memo"}  # the pause leaves the values as they were
        run = await app.runs.get(paused.run_id)
        assert run.status is RunStatus.SUCCESS and run.lease_owner is None

        answered = await app.runs.create(thread.thread_id, "approval",
                                         command={"resume": "yes"})
        output = await _join(app, answered.run_id)
        [again] = output["__interrupt__"]
        assert again["value"] == {"confirm": "yes"} and again["id"] != asked["id"]
        assert (await app.threads.get(thread.thread_id)).interrupts == {
            answered.run_id: [again]}

        # the {interrupt_id: value} form answers the pause it names
        last = await app.runs.create(thread.thread_id, "approval",
                                     command={"resume": {again["id"]: "sure"}})
        assert await _join(app, last.run_id) == {"first": "yes", "second": "sure"}
        steps = [(s.name, s.result) for s in await app.runs.steps(last.run_id)]
        assert steps == [("draft", "draft"), (ANSWER_STEP, "yes"), ("revise", "revise"),
                         (ANSWER_STEP, "sure"), ("send", "send")]
        assert (await app.runs.get(last.run_id)).input == {"item": "memo"}
        thread_now = await app.threads.get(thread.thread_id)
        assert thread_now.status == "idle" and thread_now.interrupts is None
        assert thread_now.values == {"first": "yes", "second": "sure"}
    assert executed == {"draft": 1, "revise": 1, "send": 1}


async def test_a_pause_is_answered_once(make_app: AppFactory) -> None:
    """The first answer takes the pause in its creating transaction: a second, while the
    first is still pending, is a 409 and creates no run."""
    executed: Counter[str] = Counter()
    async with _approval_app(make_app, executed) as app:
        thread = await app.threads.create()
        paused = await app.runs.create(thread.thread_id, "approval", input={"item": "a"})
        await _join(app, paused.run_id)
        first = await app.runs.create(thread.thread_id, "approval", command={"resume": 1},
                                      after_seconds=600)
        with pytest.raises(NothingToResume):
            await app.runs.create(thread.thread_id, "approval", command={"resume": 2})
        assert [r.run_id for r in await app.runs.list(thread.thread_id)] == [
            first.run_id, paused.run_id]
        assert (await app.threads.get(thread.thread_id)).interrupts is None


async def test_bad_answers_are_refused_and_create_nothing(make_app: AppFactory) -> None:
    executed: Counter[str] = Counter()
    async with _approval_app(make_app, executed) as app:
        idle = await app.threads.create()
        with pytest.raises(NothingToResume):
            await app.runs.create(idle.thread_id, "approval", command={"resume": "yes"})
        with pytest.raises(NothingToResume):
            await app.runs.create(None, "approval", command={"resume": "yes"})

        thread = await app.threads.create()
        paused = await app.runs.create(thread.thread_id, "approval", input={"item": "a"})
        await _join(app, paused.run_id)
        with pytest.raises(PausedElsewhere, match="paused in workflow 'approval'"):
            await app.runs.create(thread.thread_id, "other", command={"resume": "yes"})
        for bad, field in [({"command": {"update": {"a": 1}}}, "command"),
                           ({"command": {"resume": 1, "goto": "x"}}, "command"),
                           ({"command": "yes"}, "command"),
                           ({"command": {"resume": 1}, "input": {"item": "b"}}, "input"),
                           ({"interrupt_before": ["x"]}, "interrupt_before")]:
            with pytest.raises(InvalidInput) as caught:
                await app.runs.create(thread.thread_id, "approval", **bad)
            assert caught.value.field == field, bad
        assert [r.run_id for r in await app.runs.list(thread.thread_id)] == [paused.run_id]
        assert (await app.threads.get(thread.thread_id)).interrupts is not None


async def test_a_run_without_a_thread_cannot_pause(make_app: AppFactory) -> None:
    async with make_app() as app:
        @app.workflow("lonely")
        async def lonely(ctx: Context, input: Any) -> Any:
            return await ctx.interrupt("anyone?")

        run = await app.runs.create(None, "lonely")
        with pytest.raises(RunFailed, match="a run without a thread cannot pause"):
            await _join(app, run.run_id)


async def test_a_pause_swallowed_by_except_exception_still_pauses(make_app: AppFactory) -> None:
    """The pause is no ``Exception``: a workflow's broad handler cannot run on past it."""
    async with make_app() as app:
        went_on: list[str] = []

        @app.workflow("broad")
        async def broad(ctx: Context, input: Any) -> Any:
            try:
                await ctx.interrupt("stop here")
            except Exception:
                went_on.append("caught")
            went_on.append("after")
            return "done"

        thread = await app.threads.create()
        run = await app.runs.create(thread.thread_id, "broad")
        assert "__interrupt__" in await _join(app, run.run_id)
        assert went_on == []


async def test_an_answering_run_cancelled_and_resumed_goes_on_with_its_answer(
    make_app: AppFactory,
) -> None:
    """The answer is the answering run's own stored step: a cancel and a resume of that
    run keep it, and the steps before the pause still run once."""
    executed: Counter[str] = Counter()
    started, gate = asyncio.Event(), asyncio.Event()

    async def wait_for_gate() -> None:
        started.set()
        await gate.wait()

    async with _approval_app(make_app, executed) as app:
        @app.workflow("gated")
        async def gated(ctx: Context, input: Any) -> Any:
            await ctx.step("before", lambda: executed.update(["before"]))
            answer = await ctx.interrupt("go?")
            await ctx.step("wait", wait_for_gate)
            return answer

        thread = await app.threads.create()
        paused = await app.runs.create(thread.thread_id, "gated")
        await _join(app, paused.run_id)
        answered = await app.runs.create(thread.thread_id, "gated", command={"resume": "go"})
        await asyncio.wait_for(started.wait(), 20)
        result = await app.runs.cancel(answered.run_id, wait=True)
        assert result.run.status is RunStatus.INTERRUPTED
        gate.set()
        await app.runs.resume(answered.run_id)
        assert await _join(app, answered.run_id) == "go"
    assert executed["before"] == 1
