"""What only the PostgreSQL store has to prove: LISTEN/NOTIFY reaches workers in other
processes at once, and the listener comes back by itself when its connection drops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from conftest import postgres_schema
from runplane import Context, Runplane
from runplane.models import RunStatus
from runplane.store.postgres import postgres_dsn

from support import AppFactory, Gate, eventually

NO_POLLING = dict(poll_interval=3600.0, heartbeat_interval=3600.0, lease_ttl=7200.0)


@pytest.fixture
async def pg_url(postgres_server: str) -> AsyncIterator[str]:
    async with postgres_schema(postgres_server, "rp_notify") as url:
        yield url


@pytest.fixture
async def pg_apps(pg_url: str) -> AsyncIterator[AppFactory]:
    apps: list[Runplane] = []

    def factory(**kwargs) -> Runplane:
        kwargs.setdefault("shutdown_grace", 0.0)
        app = Runplane(pg_url, **kwargs)
        apps.append(app)
        return app

    yield factory
    for app in reversed(apps):
        await app.close()


def parking_app(factory: AppFactory, gate: Gate, stopped: asyncio.Event, **kwargs) -> Runplane:
    app = factory(**kwargs)

    @app.workflow("parks")
    async def parks(ctx: Context, input: dict) -> str:
        try:
            await ctx.step("park", gate)
            return "done"
        finally:
            if ctx.cancelled:
                stopped.set()

    return app


async def test_a_cancel_from_another_node_reaches_the_worker_by_notification(
    pg_apps: AppFactory,
):
    gate, stopped = Gate(), asyncio.Event()
    worker = parking_app(pg_apps, gate, stopped, **NO_POLLING)
    client = parking_app(pg_apps, Gate(), asyncio.Event(), worker=False)
    async with worker, client:
        run = await client.runs.create(None, "parks")  # the idle worker is woken by NOTIFY
        await asyncio.wait_for(gate.wait_reached(), 10)
        await client.runs.cancel(run.run_id)  # no poll, no heartbeat: only NOTIFY can tell
        await asyncio.wait_for(stopped.wait(), 10)
        await eventually(lambda: _released(client, run.run_id))


async def _released(app: Runplane, run_id: str) -> bool:
    run = await app.runs.get(run_id)
    return run.status is RunStatus.INTERRUPTED and run.lease_owner is None


async def test_the_listener_reconnects_after_its_connection_is_killed(
    pg_apps: AppFactory, pg_url: str
):
    gate, stopped = Gate(), asyncio.Event()
    worker = parking_app(pg_apps, gate, stopped, **NO_POLLING)
    client = parking_app(pg_apps, Gate(), asyncio.Event(), worker=False)
    async with worker, client:
        dsn, schema = postgres_dsn(pg_url)
        admin = await asyncpg.connect(dsn)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1", f"runplane-listen:{schema}")
            assert killed == 2  # the worker's listener and the client's

            async def listening_again() -> bool:
                return await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    f"runplane-listen:{schema}") == 2

            await eventually(listening_again, timeout=15)
        finally:
            await admin.close()
        run = await client.runs.create(None, "parks")
        await asyncio.wait_for(gate.wait_reached(), 10)
        await client.runs.cancel(run.run_id)
        await asyncio.wait_for(stopped.wait(), 10)
