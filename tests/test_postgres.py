"""What only the PostgreSQL store has to prove: LISTEN/NOTIFY reaches workers in other
processes at once, the listener comes back by itself when its connection drops, and a
transaction the server aborts to break a deadlock is run again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from conftest import postgres_schema
from runplane import Context, Runplane
from runplane.models import CancelRequest, MultitaskStrategy, NewRun, RunStatus
from runplane.store.postgres import PostgresStore, postgres_dsn

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


def _thread_run(run_id: str) -> NewRun:
    return NewRun(run_id=run_id, thread_id="t", assistant_id="wf", input=None, metadata={},
                  multitask_strategy=MultitaskStrategy.INTERRUPT, max_attempts=3, timeout=None,
                  root_run_id=run_id)


async def test_a_creation_aborted_by_the_deadlock_detector_is_run_again(pg_url: str):
    """Multitask creation locks the thread, then its running run; a completion locks the
    run, then the thread. Crossed, PostgreSQL aborts one: the creation runs again."""
    store = PostgresStore(pg_url)
    await store.open()
    dsn, schema = postgres_dsn(pg_url)
    other = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        await store.create_thread("t", {}, 0.0, if_exists="raise")
        await store.create_run(_thread_run("r1"), 0.0, on_active="enqueue")
        [claimed] = await store.claim_runs("w", ["wf"], 1, 60.0, 0.0)
        # ``other`` stands for a completion: it detects deadlocks only after 10 s, so the
        # creation (1 s, the default) is the side the server aborts
        await other.execute("SET deadlock_timeout = '10s'")
        tx = other.transaction()
        await tx.start()
        await other.execute("UPDATE runs SET updated_at = 1 WHERE run_id = 'r1'")
        creating = asyncio.create_task(store.create_run(
            _thread_run("r2"), 1.0, on_active=CancelRequest(reason="interrupt")))
        await eventually(lambda: _waiting_on_a_lock(other))  # holds the thread, wants r1
        await other.execute("UPDATE threads SET updated_at = 1 WHERE thread_id = 't'")
        await tx.commit()
        created = await asyncio.wait_for(creating, 30)
        assert [r.run_id for r in created.cancelled] == ["r1"]
        assert (await store.get_run("r1")).cancelled_generation == claimed.lease.generation
        assert (await store.get_run("r2")).status is RunStatus.PENDING
    finally:
        await other.close()
        await store.close()


async def _waiting_on_a_lock(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND datname = current_database() AND pid <> pg_backend_pid() "
        "AND query LIKE '%FOR UPDATE%'"))
