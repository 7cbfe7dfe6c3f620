"""Webhooks: a run created with ``webhook`` has its end POSTed there, whichever way it
ends (the outbox row is written by the statement that ends it), retried with backoff,
given up after its attempts with the last error kept; a real local receiver, a manual
clock, and ``deliver_webhooks`` called by the test (the workers' own duty slowed down)."""

from __future__ import annotations

from typing import Any

import pytest

from runplane import Context, Runplane
from runplane.clock import ManualClock
from runplane.errors import InvalidInput

from support import AppFactory, Gate
from support.receiver import receiver


def _app(make_app: AppFactory, clock: ManualClock, **kwargs: Any) -> Runplane:
    app = make_app(clock=clock, webhook_interval=3600.0, **kwargs)

    @app.workflow("echo")
    async def echo(ctx: Context, input: Any) -> Any:
        return input

    @app.workflow("fails")
    async def fails(ctx: Context, input: Any) -> Any:
        raise ValueError("boom")

    return app


async def test_a_runs_end_is_posted_to_its_webhook(make_app: AppFactory):
    clock = ManualClock()
    with receiver() as hook:
        async with _app(make_app, clock) as app:
            run = await app.runs.create(None, "echo", {"x": 1}, webhook=hook.url)
            await app.runs.join(run.run_id)
            [pending] = await app.runs.webhooks(run.run_id)
            assert (pending.status, pending.attempts, pending.url) == ("pending", 0, hook.url)
            assert await app.service.deliver_webhooks() == 1
            [body] = hook.delivered()
            assert (body["run_id"], body["status"], body["values"]) == (
                run.run_id, "success", {"x": 1})
            [done] = await app.runs.webhooks(run.run_id)
            assert (done.status, done.attempts, done.last_error) == ("delivered", 1, None)
            assert await app.service.deliver_webhooks() == 0  # once


async def test_every_way_of_ending_is_posted(make_app: AppFactory):
    clock = ManualClock()
    with receiver() as hook:
        async with _app(make_app, clock) as app:
            failed = await app.runs.create(None, "fails", {}, webhook=hook.url, max_attempts=1)
            pending = await app.runs.create(None, "echo", {}, webhook=hook.url,
                                            after_seconds=3600)
            await app.runs.cancel(pending.run_id, reason="not needed")  # ends it at once
            await app.runs.settled(failed.run_id)
            assert await app.service.deliver_webhooks() == 2
            ends = {body["run_id"]: body["status"] for body in hook.delivered()}
            assert ends == {failed.run_id: "error", pending.run_id: "interrupted"}


async def test_a_failing_receiver_is_retried_with_backoff_then_given_up(make_app: AppFactory):
    clock = ManualClock()
    with receiver([500, 503, 200]) as flaky, receiver([500]) as broken:
        async with _app(make_app, clock, webhook_attempts=3) as app:
            ok = await app.runs.create(None, "echo", {}, webhook=flaky.url)
            bad = await app.runs.create(None, "echo", {}, webhook=broken.url)
            for run in (ok, bad):
                await app.runs.join(run.run_id)
            assert await app.service.deliver_webhooks() == 2
            [first] = await app.runs.webhooks(ok.run_id)
            assert (first.status, first.attempts, first.last_error) == (
                "pending", 1, "answered HTTP 500")
            assert await app.service.deliver_webhooks() == 0  # not before its time
            clock.advance(1)
            assert await app.service.deliver_webhooks() == 2
            clock.advance(1.9)
            assert await app.service.deliver_webhooks() == 0  # 2 s after the second
            clock.advance(0.1)
            assert await app.service.deliver_webhooks() == 2
            [delivered] = await app.runs.webhooks(ok.run_id)
            assert (delivered.status, delivered.attempts) == ("delivered", 3)
            [given_up] = await app.runs.webhooks(bad.run_id)
            assert (given_up.status, given_up.attempts, given_up.last_error) == (
                "failed", 3, "answered HTTP 500")
            clock.advance(3600)
            assert await app.service.deliver_webhooks() == 0  # not retried for ever
            assert len(broken.received) == 3


async def test_an_unreachable_receiver_is_an_error_kept_for_the_next_attempt(
    make_app: AppFactory
):
    clock = ManualClock()
    with receiver() as hook:
        gone = hook.url
    async with _app(make_app, clock) as app:
        run = await app.runs.create(None, "echo", {}, webhook=gone)
        await app.runs.join(run.run_id)
        await app.service.deliver_webhooks()
        [attempt] = await app.runs.webhooks(run.run_id)
        assert attempt.status == "pending" and "ConnectError" in (attempt.last_error or "")


async def test_a_resumed_run_posts_each_of_its_ends(make_app: AppFactory):
    clock = ManualClock()
    gate = Gate()
    with receiver() as hook:
        async with _app(make_app, clock) as app:

            @app.workflow("parks")
            async def parks(ctx: Context, input: Any) -> str:
                await ctx.step("wait", gate)
                return "done"

            run = await app.runs.create(None, "parks", {}, webhook=hook.url)
            await gate.wait_reached()
            assert await app.runs.webhooks(run.run_id) == []  # nothing before it ends
            await app.runs.cancel(run.run_id, wait=True)
            await app.runs.resume(run.run_id)
            gate.open()
            assert await app.runs.join(run.run_id) == "done"
            await app.service.deliver_webhooks()
            # delivered at once, in either order; each with the status of its end
            assert sorted(body["status"] for body in hook.delivered()) == [
                "interrupted", "success"]
            assert [d.run_status for d in await app.runs.webhooks(run.run_id)] == [
                "interrupted", "success"]


async def test_bad_webhooks_are_refused_and_create_no_run(make_app: AppFactory):
    clock = ManualClock()
    async with _app(make_app, clock, webhook_hosts=("hooks.example.com",)) as app:
        for url in ("ftp://hooks.example.com/x", "https://", "not a url",
                    "https://elsewhere.example.com/x", "x" * 3000):
            with pytest.raises(InvalidInput, match="webhook"):
                await app.runs.create(None, "echo", {}, webhook=url)
        with pytest.raises(InvalidInput, match="webhook"):
            await app.crons.create("echo", schedule="* * * * *", webhook="file:///etc/passwd")
        assert sum((await app.runs.count()).values()) == 0
        run = await app.runs.create(None, "echo", {}, webhook="https://HOOKS.example.com/x")
        assert run.kwargs["webhook"] == "https://HOOKS.example.com/x"
