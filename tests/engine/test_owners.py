"""Owners on both stores: every thread and run belongs to one owner, whose reads, lists,
counts and cancels see only its own (another owner's object is not found); admins and
callers without an identity (the Python API) see everything."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runplane import Context, Runplane, RunStatus
from runplane.errors import RunNotFound, ThreadExists, ThreadNotFound
from runplane.models import Caller
from runplane.service import RunService

from support import AppFactory, eventually

ALICE = Caller("alice")
BOB = Caller("bob")
ADMIN = Caller("ops", admin=True)


async def _park() -> None:
    await asyncio.Event().wait()


def owners_app(make_app: AppFactory) -> Runplane:
    app = make_app(concurrency=32)

    @app.workflow("echo")
    async def echo(ctx: Context, input: Any) -> Any:
        return await ctx.step("echo", asyncio.sleep, 0, input)

    @app.workflow("parks")
    async def parks(ctx: Context, input: Any) -> None:
        await ctx.step("park", _park)

    @app.workflow("family")
    async def family(ctx: Context, input: Any) -> Any:
        child = await ctx.spawn("parks", {})
        return await child

    return app


async def _running(service: RunService, run_id: str) -> bool:
    return (await service.get_run(run_id)).status is RunStatus.RUNNING


async def test_lists_counts_and_pages_hold_only_the_callers_own(make_app: AppFactory):
    app = owners_app(make_app)
    async with app:
        s = app.service
        mine = [await s.create_thread(metadata={"k": 1}, caller=ALICE) for _ in range(3)]
        theirs = [await s.create_thread(metadata={"k": 1}, caller=BOB) for _ in range(2)]
        alice_runs = [(await s.create_run(t.thread_id, "echo", i, caller=ALICE)).run_id
                      for i, t in enumerate(mine)]
        bob_runs = [(await s.create_run(None, "echo", i, caller=BOB)).run_id for i in range(2)]
        for run_id in alice_runs + bob_runs:
            await s.settled(run_id)

        page1 = await s.search_threads(metadata={"k": 1}, limit=2, caller=ALICE)
        page2 = await s.search_threads(metadata={"k": 1}, limit=2, offset=2, caller=ALICE)
        assert {t.thread_id for t in page1 + page2} == {t.thread_id for t in mine}
        assert len(page1) == 2 and len(page2) == 1
        assert await s.count_threads(metadata={"k": 1}, caller=ALICE) == 3
        assert await s.count_threads(caller=BOB) == 2
        assert await s.count_threads(caller=ADMIN) == await s.count_threads() == 5
        assert await s.search_threads(ids=[theirs[0].thread_id], caller=ALICE) == []
        assert {t.thread_id for t in await s.list_threads(caller=BOB)} == \
            {t.thread_id for t in theirs}

        runs1 = await s.list_runs(limit=2, caller=ALICE)
        runs2 = await s.list_runs(limit=2, offset=2, caller=ALICE)
        assert [r.run_id for r in runs1 + runs2] == alice_runs[::-1]
        assert [r.run_id for r in await s.list_runs(caller=BOB)] == bob_runs[::-1]
        assert len(await s.list_runs(caller=ADMIN)) == len(await s.list_runs()) == 5
        with pytest.raises(ThreadNotFound):
            await s.list_runs(mine[0].thread_id, caller=BOB)
        assert {r.owner for r in await s.list_runs()} == {"alice", "bob"}


async def test_another_owners_thread_or_run_is_not_found_and_stays_as_it_was(
    make_app: AppFactory,
):
    app = owners_app(make_app)
    async with app:
        s = app.service
        thread = await s.create_thread(metadata={"v": 1}, caller=ALICE)
        parked = await s.create_run(thread.thread_id, "parks", caller=ALICE)
        done = await s.create_run(None, "echo", "x", caller=ALICE)
        await s.settled(done.run_id)
        await eventually(lambda: _running(s, parked.run_id))
        t, r = thread.thread_id, parked.run_id

        attempts = [
            s.get_thread(t, caller=BOB),
            s.update_thread(t, metadata={"v": 2}, caller=BOB),
            s.delete_thread(t, caller=BOB),
            s.create_run(t, "echo", caller=BOB),
            s.create_run(t, "echo", if_not_exists="create", caller=BOB),
            s.create_run(t, "echo", multitask_strategy="interrupt", caller=BOB),
            s.cancel_many(thread_id=t, status="all", caller=BOB),
        ]
        for attempt in attempts:
            with pytest.raises(ThreadNotFound):
                await attempt
        runs = [
            s.get_run(r, caller=BOB),
            s.get_run(r, thread_id=t, caller=BOB),
            s.cancel(r, caller=BOB),
            s.cancel(r, scope="tree", caller=BOB),
            s.cancel(r, thread_id=t, caller=BOB),
            s.delete_run(done.run_id, caller=BOB),
            s.steps(done.run_id, caller=BOB),
            s.events(done.run_id, caller=BOB),
            s.tree(r, caller=BOB),
            s.join(done.run_id, caller=BOB),
            s.settled(done.run_id, caller=BOB),
            s.resume(done.run_id, caller=BOB),
            anext(s.stream(done.run_id, caller=BOB)),
        ]
        for attempt in runs:
            with pytest.raises(RunNotFound):
                await attempt
        assert await s.cancel_many(run_ids=[r], caller=BOB) == [(r, "not_found")]
        assert await s.cancel_many(status="all", caller=BOB) == []
        with pytest.raises(ThreadExists):  # the id is taken: not handed over
            await s.create_thread(thread_id=t, if_exists="do_nothing", caller=BOB)

        assert (await s.get_thread(t, caller=ALICE)).metadata == {"v": 1}
        assert (await s.get_run(r, caller=ALICE)).status is RunStatus.RUNNING
        assert (await s.get_run(done.run_id, caller=ALICE)).status is RunStatus.SUCCESS
        assert [x.run_id for x in await s.list_runs(t)] == [r]  # no run of bob's on it
        assert (await s.cancel(r, caller=ADMIN)).outcome == "cancelled"  # admins may


async def test_runs_belong_to_their_threads_owner_and_children_to_their_parents(
    make_app: AppFactory,
):
    app = owners_app(make_app)
    async with app:
        s = app.service
        thread = await s.create_thread(caller=ALICE)
        by_admin = await s.create_run(thread.thread_id, "echo", caller=ADMIN)
        by_app = await s.create_run(thread.thread_id, "echo")
        assert by_admin.owner == by_app.owner == "alice"
        created = await s.create_run("new-thread", "echo", if_not_exists="create",
                                     caller=BOB)
        assert created.owner == "bob"
        assert (await s.get_thread("new-thread", caller=BOB)).owner == "bob"

        root = await s.create_run(None, "family", caller=BOB)

        async def child_running() -> bool:
            tree = await s.tree(root.run_id, caller=BOB)
            return bool(tree.children) and tree.children[0].status is RunStatus.RUNNING

        await eventually(child_running)
        child = (await s.tree(root.run_id, caller=BOB)).children[0]
        assert child.run is not None and child.run.owner == "bob"
        with pytest.raises(RunNotFound):
            await s.tree(child.run_id, caller=ALICE)
        swept = await s.cancel(child.run_id, scope="tree", caller=BOB)
        assert swept.counts["cancelled"] == 2
