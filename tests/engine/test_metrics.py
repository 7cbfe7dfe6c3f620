"""Contract line 12: cancel outcomes, refused writes, lease losses and cancel latency are
counted (served on ``/metrics`` by the HTTP API)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from runplane import Context, Hooks, RunConflict, RunNotFound

from support import AppFactory, Gate


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels or None) or 0.0


async def test_cancel_outcomes_refusals_and_latency_are_counted(make_app: AppFactory):
    gate = Gate()
    app = make_app(hooks=Hooks(after_step_fn=lambda *a: gate()))

    @app.workflow("w")
    async def w(ctx: Context, input: dict) -> int:
        return await ctx.step("s", lambda: 1)

    before = {
        outcome: sample("runplane_cancel_requests_total", outcome=outcome)
        for outcome in ("cancelled", "already_interrupted", "conflict", "not_found")
    }
    refused = sample("runplane_refused_writes_total", kind="step")
    latency = sample("runplane_cancel_latency_seconds_count")
    async with app:
        run = await app.runs.create(None, "w")
        await gate.wait_reached()
        await app.runs.cancel(run.run_id)
        gate.open()
        await app.runs.cancel(run.run_id, wait=True)
        with pytest.raises(RunNotFound):
            await app.runs.cancel("missing")
        gate2 = Gate()
        gate2.open()
        app.hooks.after_step_fn = gate2
        done = await app.runs.create(None, "w")
        await app.runs.join(done.run_id)
        with pytest.raises(RunConflict):
            await app.runs.cancel(done.run_id)
    delta = {
        outcome: sample("runplane_cancel_requests_total", outcome=outcome) - before[outcome]
        for outcome in before
    }
    assert delta == {"cancelled": 1, "already_interrupted": 1, "conflict": 1, "not_found": 1}
    assert sample("runplane_refused_writes_total", kind="step") == refused + 1
    assert sample("runplane_cancel_latency_seconds_count") == latency + 1
