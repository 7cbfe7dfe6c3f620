"""What only the PostgreSQL store has to prove: LISTEN/NOTIFY reaches workers in other
processes at once, the listener comes back by itself when its connection drops, and a
transaction the server aborts to break a deadlock is run again."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runplane import Context, Runplane
from runplane.errors import AssistantBusy, AssistantNotFound, ThreadActive
from runplane.models import (
    AssistantRecord,
    CancelRequest,
    CheckpointWrite,
    MultitaskStrategy,
    NewRun,
    RunStatus,
    StoredCheckpoint,
    contains,
    to_datetime,
)
from runplane.store.postgres import PostgresStore, postgres_dsn

from support import AppFactory, Gate, eventually
from support.databases import postgres_schema

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


@contextlib.asynccontextmanager
async def store_and_session(
    pg_url: str, tag: str
) -> AsyncIterator[tuple[PostgresStore, asyncpg.Connection, str]]:
    """An open store whose sessions are named apart (``_lock_waits`` finds them), and
    another session on its schema that plays the other side of a race."""
    name = f"{tag}_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(f"{pg_url}&application_name={name}")
    await store.open()
    dsn, schema = postgres_dsn(pg_url)
    other = await asyncpg.connect(dsn, server_settings={"search_path": schema})
    try:
        yield store, other, name
    finally:
        await other.close()
        await store.close()


def _thread_run(run_id: str) -> NewRun:
    return NewRun(run_id=run_id, thread_id="t", assistant_id="wf", input=None, metadata={},
                  multitask_strategy=MultitaskStrategy.INTERRUPT, max_attempts=3, timeout=None,
                  root_run_id=run_id)


async def test_a_creation_aborted_by_the_deadlock_detector_is_run_again(pg_url: str):
    """Multitask creation locks the thread, then its running run; a completion locks the
    run, then the thread. Crossed, PostgreSQL aborts one: the creation runs again."""
    async with store_and_session(pg_url, "rp_deadlock") as (store, other, name):
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
        await eventually(lambda: _lock_waits(other, name))  # holds the thread, wants r1
        await other.execute("UPDATE threads SET updated_at = 1 WHERE thread_id = 't'")
        await tx.commit()
        created = await asyncio.wait_for(creating, 30)
        assert [r.run_id for r in created.cancelled] == ["r1"]
        assert (await store.get_run("r1")).cancelled_generation == claimed.lease.generation
        assert (await store.get_run("r2")).status is RunStatus.PENDING


async def _lock_waits(conn: asyncpg.Connection, application_name: str) -> int:
    """How many sessions of the store named ``application_name`` wait for a lock."""
    return await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND application_name = $1", application_name)


def _tree_run(run_id: str, root: str, parent: str | None = None) -> NewRun:
    return NewRun(run_id=run_id, thread_id=None, assistant_id="wf", input=None, metadata={},
                  multitask_strategy=MultitaskStrategy.ENQUEUE, max_attempts=3, timeout=None,
                  root_run_id=root, parent_run_id=parent)


async def test_no_grandchild_escapes_a_tree_sweep(pg_url: str, monkeypatch):
    """C is spawned while the sweep waits for the tree; a worker claims C and spawns G while
    the sweep is still busy. The sweep must still catch G: it is created cancelled (or
    swept), never left pending under a cancelled parent."""
    from runplane.store import transactions

    gates: dict[str, tuple[asyncio.Event, asyncio.Event]] = {}
    insert = transactions.insert_run

    async def gated_insert(conn, new, now):
        run = await insert(conn, new, now)
        if new.run_id in gates:
            reached, release = gates[new.run_id]
            reached.set()
            await release.wait()
        return run

    monkeypatch.setattr(transactions, "insert_run", gated_insert)
    name = f"rp_escape_{uuid.uuid4().hex[:8]}"  # tells this test's sessions from others'
    store = PostgresStore(f"{pg_url}&application_name={name}")
    await store.open()
    dsn, schema = postgres_dsn(pg_url)
    admin = await asyncpg.connect(dsn)
    other = await asyncpg.connect(dsn, server_settings={"search_path": schema})

    def lock_waits() -> Awaitable[int]:
        return _lock_waits(admin, name)

    try:
        await store.create_run(_tree_run("R", "R"), 0.0, on_active="enqueue")
        [root] = await store.claim_runs("w1", ["wf"], 1, 600.0, 0.0)
        await store.spawn_run(root.lease, _tree_run("B", "R", "R"), 0.0)
        gates["C"] = (asyncio.Event(), asyncio.Event())
        spawn_c = asyncio.create_task(store.spawn_run(root.lease, _tree_run("C", "R", "R"), 0.0))
        await gates["C"][0].wait()  # C inserted, its spawn not committed
        tx = other.transaction()  # a worker write holding B's row
        await tx.start()
        await other.execute("SELECT 1 FROM runs WHERE run_id = 'B' FOR UPDATE")
        sweep = asyncio.create_task(store.cancel_runs(
            "R", CancelRequest(reason="tree"), 1.0, whole_tree=True))
        await eventually(lambda: lock_waits())  # the sweep waits for C's spawn
        gates["C"][1].set()
        await spawn_c
        await eventually(lambda: lock_waits())  # ... then for B's row
        [c] = await store.claim_runs("w2", ["wf"], 10, 600.0, 2.0)
        assert c.run.run_id == "C"
        gates["G"] = (asyncio.Event(), asyncio.Event())
        spawn_g = asyncio.create_task(store.spawn_run(c.lease, _tree_run("G", "R", "C"), 2.0))
        # G's spawn either waits for the sweep, or got in first and holds C
        await eventually(lambda: gates["G"][0].is_set() or lock_waits())
        await tx.rollback()  # the sweep goes on
        while not spawn_g.done():
            if gates["G"][0].is_set() and (sweep.done() or await lock_waits()):
                gates["G"][1].set()
            await asyncio.sleep(0.01)
        swept = await sweep
        g = await spawn_g
        assert g is None or g.status is RunStatus.INTERRUPTED
        assert await store.claim_runs("w3", ["wf"], 10, 600.0, 3.0) == []
        assert {r.run_id: r.status for r in await store.get_tree("R")} == {
            rid: RunStatus.INTERRUPTED for rid in ("R", "B", "C", "G")}
        assert swept.remaining_active == 0
    finally:
        await other.close()
        await admin.close()
        await store.close()


@pytest.mark.timeout(120)
async def test_tree_cancels_racing_busy_workers_meet_no_deadlock(pg_url: str, postgres_server):
    """Worker write batches and heartbeats lock runs in creation order, as sweeps do. (In
    any order, 40 tree cancels of 41 runs emitting events met 11 deadlocks, each a second
    of waiting for the detector.)"""
    app = Runplane(pg_url, concurrency=64, poll_interval=0.01, heartbeat_interval=0.05,
                   lease_ttl=30.0)

    @app.workflow("leaf")
    async def leaf(ctx: Context, input: int) -> None:
        while True:
            await ctx.emit("custom", {"leaf": input})

    @app.workflow("root")
    async def root(ctx: Context, input: None) -> None:
        await asyncio.gather(*[await ctx.spawn("leaf", k) for k in range(20)])

    admin = await asyncpg.connect(postgres_server)
    deadlocks = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    try:
        before = await admin.fetchval(deadlocks)
        async with app:
            for _ in range(20):
                run = await app.runs.create(None, "root")

                async def busy(run_id: str = run.run_id) -> bool:
                    children = (await app.runs.tree(run_id)).children
                    return len(children) == 20 and all(
                        c.status is RunStatus.RUNNING for c in children)

                await eventually(busy)
                result = await app.runs.cancel(run.run_id, scope="tree", wait=True)
                assert result.counts["cancelled"] == 21
        await asyncio.sleep(0.2)  # the statistics collector reports every few hundred ms
        assert await admin.fetchval(deadlocks) - before == 0
    finally:
        await admin.close()


@pytest.mark.parametrize("write", ["checkpoint", "writes"])
async def test_a_checkpoint_write_waiting_on_a_cancel_is_refused_when_it_commits(
    pg_url: str, write: str
):
    """A checkpoint write is one statement that shares the run's row: a cancel holding the
    row (uncommitted) makes the write wait, and once the cancel commits the write sees it
    and stores nothing."""
    async with store_and_session(pg_url, "rp_ckpt") as (store, other, name):
        await store.create_thread("t", {}, 0.0, if_exists="raise")
        await store.create_run(_thread_run("r1"), 0.0, on_active="enqueue")
        [claimed] = await store.claim_runs("w", ["wf"], 1, 60.0, 0.0)
        tx = other.transaction()
        await tx.start()  # a cancel, written and not yet committed
        await other.execute("UPDATE runs SET status = 'interrupted', "
                            "lease_generation = lease_generation + 1 WHERE run_id = 'r1'")
        if write == "checkpoint":
            writing = asyncio.create_task(store.put_checkpoint(StoredCheckpoint(
                thread_id="t", checkpoint_ns="", checkpoint_id="c1", parent_checkpoint_id=None,
                run_id="r1", type="json", checkpoint=b"{}", metadata="{}"), 1.0,
                lease=claimed.lease))
        else:
            writing = asyncio.create_task(store.put_checkpoint_writes(
                "t", "", "c1", [CheckpointWrite("task", 0, "a", "json", b"1")], 1.0,
                run_id="r1", lease=claimed.lease))
        await eventually(lambda: _lock_waits(other, name))  # the write waits on the row
        await tx.commit()
        assert await asyncio.wait_for(writing, 10) is False
        assert await other.fetchval("SELECT count(*) FROM lg_checkpoints") == 0
        assert await other.fetchval("SELECT count(*) FROM lg_writes") == 0


async def test_a_state_edit_waiting_on_a_run_creation_is_refused_when_it_commits(pg_url: str):
    """The edit and a run creation take the thread's row lock: an edit that waits for a
    creation (here, uncommitted in another session) sees its run once it commits, and
    writes nothing."""
    async with store_and_session(pg_url, "rp_edit") as (store, other, name):
        await store.create_thread("t", {}, 0.0, if_exists="raise")
        tx = other.transaction()
        await tx.start()  # a run creation: the thread locked, its run inserted, uncommitted
        await other.execute("SELECT 1 FROM threads WHERE thread_id = 't' FOR UPDATE")
        await other.execute(
            "INSERT INTO runs (run_id, thread_id, assistant_id, status, input, metadata, "
            "multitask_strategy, created_at, updated_at, max_attempts, root_run_id) VALUES "
            "('r1', 't', 'wf', 'pending', 'null', '{}', 'enqueue', 0, 0, 3, 'r1')")
        edit = StoredCheckpoint(thread_id="t", checkpoint_ns="", checkpoint_id="c1",
                                parent_checkpoint_id=None, run_id=None, type="json",
                                checkpoint=b"{}", metadata="{}")
        editing = asyncio.create_task(store.put_thread_state("t", [edit], {}, {"x": 1}, None, 1.0))
        await eventually(lambda: _lock_waits(other, name))  # the edit waits on the thread
        await tx.commit()
        with pytest.raises(ThreadActive):
            await asyncio.wait_for(editing, 10)
        assert await other.fetchval("SELECT count(*) FROM lg_checkpoints") == 0
        assert (await store.get_thread("t")).values is None


def _assistant(assistant_id: str) -> AssistantRecord:
    at = to_datetime(0.0)
    return AssistantRecord(assistant_id, "wf", "a", None, {}, {}, {}, 1, at, at)


async def test_an_assistant_deletion_waiting_on_a_run_creation_is_refused_when_it_commits(
    pg_url: str
):
    """A run's creation holds its assistant (shared) until it commits: a deletion that waits
    for it then sees the run, refuses, and deletes nothing."""
    async with store_and_session(pg_url, "rp_adel") as (store, other, name):
        await store.create_assistant(_assistant("a1"), 0.0)
        tx = other.transaction()
        await tx.start()  # a run creation: the assistant held, its run inserted, uncommitted
        await other.execute("SELECT 1 FROM assistants WHERE assistant_id = 'a1' FOR SHARE")
        await other.execute(
            "INSERT INTO runs (run_id, thread_id, assistant_id, status, input, metadata, "
            "multitask_strategy, created_at, updated_at, max_attempts, root_run_id, workflow) "
            "VALUES ('r1', NULL, 'a1', 'pending', 'null', '{}', 'enqueue', 0, 0, 3, 'r1', "
            "'wf')")
        deleting = asyncio.create_task(store.delete_assistant("a1", None, delete_threads=False))
        await eventually(lambda: _lock_waits(other, name))  # the deletion waits on the row
        await tx.commit()
        with pytest.raises(AssistantBusy, match="r1"):
            await asyncio.wait_for(deleting, 10)
        assert (await store.get_assistant("a1")) is not None


async def test_a_run_creation_waiting_on_an_assistant_deletion_is_refused_when_it_commits(
    pg_url: str
):
    """A deletion holds the assistant until it commits: a run's creation that waits for it
    then finds no assistant and inserts nothing."""
    async with store_and_session(pg_url, "rp_acre") as (store, other, name):
        await store.create_assistant(_assistant("a1"), 0.0)
        tx = other.transaction()
        await tx.start()  # a deletion, uncommitted
        await other.execute("SELECT 1 FROM assistants WHERE assistant_id = 'a1' FOR UPDATE")
        await other.execute("DELETE FROM assistant_versions WHERE assistant_id = 'a1'")
        await other.execute("DELETE FROM assistants WHERE assistant_id = 'a1'")
        new = dataclasses.replace(_tree_run("r1", "r1"), assistant_id="a1", workflow="wf")
        creating = asyncio.create_task(store.create_run(new, 1.0, on_active="enqueue"))
        await eventually(lambda: _lock_waits(other, name))  # the creation waits on the row
        await tx.commit()
        with pytest.raises(AssistantNotFound):
            await asyncio.wait_for(creating, 10)
        assert await store.get_run("r1") is None


#: Small JSON values, from a small vocabulary so that one often contains another.
_JSON = st.recursive(
    st.none() | st.booleans() | st.sampled_from([0, 1, 2, 1.0, 2.5, -1]) | st.sampled_from(
        ["", "a", "b", "é"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["a", "b", "c"]), inner, max_size=3),
    max_leaves=8)
_DOCUMENTS = st.dictionaries(st.sampled_from(["a", "b", "c"]), _JSON, max_size=3)


@settings(max_examples=25, deadline=None)
@given(pairs=st.lists(st.tuples(_DOCUMENTS, _DOCUMENTS), min_size=40, max_size=40))
def test_containment_in_python_is_postgresqls(postgres_server: str, pairs: list[Any]):
    """``models.contains`` (an auth filter's test of one object, and SQLite's
    ``json_contains_any``) answers as PostgreSQL's jsonb ``@>`` (its searches)."""
    async def postgres() -> list[bool]:
        conn = await asyncpg.connect(postgres_server)
        try:
            rows = await conn.fetch(
                "SELECT w::jsonb @> p::jsonb AS held FROM unnest($1::text[], $2::text[]) "
                "WITH ORDINALITY AS x(w, p, n) ORDER BY n",
                [json.dumps(w) for w, _ in pairs], [json.dumps(p) for _, p in pairs])
        finally:
            await conn.close()
        return [r["held"] for r in rows]

    assert [contains(w, p) for w, p in pairs] == asyncio.run(postgres())
