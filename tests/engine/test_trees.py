"""Run trees on both stores: spawning, awaiting children, cascades, tree cancels, warnings."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from runplane import (
    ChildCancelled,
    ChildFailed,
    Context,
    Runplane,
    RunStatus,
)
from runplane.clock import ManualClock
from runplane.errors import RunConflict
from runplane.hooks import Hooks
from runplane.models import Lease
from runplane.server.wire import cancel_body

from support import AppFactory, Gate, eventually

T0 = 1_800_000_000.0


async def _park() -> None:
    await asyncio.Event().wait()


def tree_app(make_app: AppFactory, *, fanout: tuple[int, int] = (2, 2), **kwargs) -> Runplane:
    """``root`` spawns ``fanout[0]`` ``mid`` runs, each spawns ``fanout[1]`` parked leaves."""
    app = make_app(concurrency=32, **kwargs)

    @app.workflow("leaf")
    async def leaf(ctx: Context, input: dict) -> str:
        await ctx.step("park", _park)
        return "never"

    @app.workflow("mid")
    async def mid(ctx: Context, input: dict) -> list:
        children = [await ctx.spawn("leaf", {"n": k}) for k in range(input["leaves"])]
        return await asyncio.gather(*children)

    @app.workflow("root")
    async def root(ctx: Context, input: dict) -> list:
        children = [await ctx.spawn("mid", {"leaves": input["leaves"]})
                    for _ in range(input["mids"])]
        return await asyncio.gather(*children)

    app.fanout = fanout
    return app


async def start_tree(app: Runplane) -> tuple[str, int]:
    mids, leaves = app.fanout
    root = await app.runs.create(None, "root", {"mids": mids, "leaves": leaves})
    size = 1 + mids + mids * leaves

    async def all_running() -> bool:
        tree = await app.runs.tree(root.run_id)
        nodes = list(_walk(tree))
        return len(nodes) == size and all(n.status is RunStatus.RUNNING for n in nodes)

    await eventually(all_running)
    return root.run_id, size


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


async def test_a_spawned_child_returns_its_output_and_links_to_its_parent(
    make_app: AppFactory,
):
    app = make_app()

    @app.workflow("double")
    async def double(ctx: Context, input: int) -> int:
        return await ctx.step("x2", lambda: input * 2)

    @app.workflow("parent")
    async def parent(ctx: Context, input: list) -> list:
        handles = [await ctx.spawn("double", n) for n in input]
        return list(await asyncio.gather(*handles))

    async with app:
        run = await app.runs.create(None, "parent", [1, 2, 3])
        assert await app.runs.join(run.run_id) == [2, 4, 6]
        tree = await app.runs.tree(run.run_id)
        assert tree.run_id == run.run_id and tree.parent_run_id is None
        assert [c.assistant_id for c in tree.children] == ["double"] * 3
        for child in tree.children:
            assert child.parent_run_id == run.run_id and child.status is RunStatus.SUCCESS
            assert child.run.root_run_id == run.run_id and child.run.thread_id is None
        steps = await app.runs.steps(run.run_id)
        assert [s.name for s in steps] == ["spawn:double"] * 3
        assert [s.result["run_id"] for s in steps] == [c.run_id for c in tree.children]


async def test_a_parent_handles_a_cancelled_child_and_finishes_success(make_app: AppFactory):
    app = make_app()
    spawned = asyncio.Event()

    @app.workflow("leaf")
    async def leaf(ctx: Context, input: None) -> None:
        await ctx.step("park", _park)

    @app.workflow("parent")
    async def parent(ctx: Context, input: None) -> dict:
        child = await ctx.spawn("leaf")
        spawned.set()
        try:
            await child
        except ChildCancelled as exc:
            return {"child": exc.run_id, "status": exc.status}
        return {"child": "finished"}

    async with app:
        run = await app.runs.create(None, "parent")
        await spawned.wait()
        [child] = (await app.runs.tree(run.run_id)).children
        await eventually(lambda: _status_is(app, child.run_id, RunStatus.RUNNING))
        result = await app.runs.cancel(child.run_id)
        # the parent stays active: the cancel says so and points at the tree cancel
        assert result.outcome == "cancelled" and result.scope == "run"
        assert result.root_run_id == run.run_id
        assert result.remaining_active_in_tree == 1
        body = cancel_body(result)  # the HTTP answer words it
        assert body["suggested_endpoint"] == f"/runs/{run.run_id}/cancel?scope=tree"
        assert "scope=tree" in body["warning"]
        assert await app.runs.join(run.run_id) == {"child": child.run_id,
                                                   "status": "interrupted"}


async def test_a_failed_child_raises_child_failed_in_its_parent(make_app: AppFactory):
    app = make_app()

    @app.workflow("boom")
    async def boom(ctx: Context, input: None) -> None:
        raise ValueError("no luck")

    @app.workflow("parent")
    async def parent(ctx: Context, input: None) -> dict:
        child = await ctx.spawn("boom")
        try:
            await child
        except ChildFailed as exc:
            return {"run_id": exc.run_id, "status": exc.status, "error": exc.error}

    async with app:
        run = await app.runs.create(None, "parent")
        out = await app.runs.join(run.run_id)
        assert out["status"] == "error" and "no luck" in out["error"]
        assert out["run_id"] == (await app.runs.tree(run.run_id)).children[0].run_id


async def test_cancelling_a_parent_cancels_its_attached_children_not_detached_ones(
    make_app: AppFactory,
):
    app = make_app()

    @app.workflow("leaf")
    async def leaf(ctx: Context, input: None) -> None:
        await ctx.step("park", _park)

    @app.workflow("parent")
    async def parent(ctx: Context, input: None) -> None:
        await ctx.spawn("leaf")
        detached = await ctx.spawn("leaf", detached=True)
        await ctx.emit("custom", {"detached": detached.run_id})
        await ctx.step("park", _park)

    async with app:
        run = await app.runs.create(None, "parent")

        async def detached_id() -> str | None:
            events = [e for e in await app.runs.events(run.run_id) if e.event == "custom"]
            return events[0].data["detached"] if events else None

        detached = await eventually(detached_id)
        [attached] = (await app.runs.tree(run.run_id)).children
        await eventually(lambda: _status_is(app, attached.run_id, RunStatus.RUNNING))
        await eventually(lambda: _status_is(app, detached, RunStatus.RUNNING))
        result = await app.runs.cancel(run.run_id, wait=True)
        assert result.outcome == "cancelled" and result.remaining_active_in_tree is None
        assert cancel_body(result)["warning"] is None
        assert result.counts == {"cancelled": 2, "already_interrupted": 0,
                                 "already_finished": 0}
        assert (await app.runs.get(attached.run_id)).status is RunStatus.INTERRUPTED
        detached_run = await app.runs.get(detached)
        assert detached_run.status is RunStatus.RUNNING
        assert detached_run.root_run_id == detached and detached_run.parent_run_id == run.run_id
        await app.runs.cancel(detached)


async def test_a_tree_cancel_stops_every_run_leaves_first_exactly_once(make_app: AppFactory):
    app = tree_app(make_app, fanout=(2, 3))
    async with app:
        root, size = await start_tree(app)
        leaf = next(n for n in _walk(await app.runs.tree(root)) if n.assistant_id == "leaf")
        result = await app.runs.cancel(leaf.run_id, scope="tree", wait=True)
        assert result.scope == "tree" and result.outcome == "cancelled"
        assert result.counts == {"cancelled": size, "already_interrupted": 0,
                                 "already_finished": 0}
        assert result.remaining_active_in_tree is None and result.root_run_id == root
        assert cancel_body(result)["warning"] is None
        nodes = list(_walk(await app.runs.tree(root)))
        assert all(n.status is RunStatus.INTERRUPTED for n in nodes)
        # children before their parents in the log
        cancelled_at = {n.run_id: n.run.cancel_requested_at for n in nodes}
        for node in nodes:
            for child in node.children:
                assert cancelled_at[child.run_id] < cancelled_at[node.run_id]
        again = await app.runs.cancel(root, scope="tree")
        assert again.outcome == "already_interrupted"
        assert again.counts == {"cancelled": 0, "already_interrupted": size,
                                "already_finished": 0}
        for node in nodes:
            events = [e.event for e in await app.runs.events(node.run_id)]
            assert events.count("run:cancel") == 1


async def test_concurrent_tree_and_run_cancels_converge(make_app: AppFactory):
    app = tree_app(make_app, fanout=(2, 2))
    async with app:
        root, size = await start_tree(app)
        nodes = list(_walk(await app.runs.tree(root)))
        calls = [app.runs.cancel(root, scope="tree") for _ in range(3)]
        calls += [app.runs.cancel(n.run_id) for n in nodes]
        calls += [app.runs.cancel(nodes[-1].run_id, scope="tree") for _ in range(3)]
        results = await asyncio.gather(*calls)
        assert all(r.outcome in ("cancelled", "already_interrupted") for r in results)
        cancel_events = Counter()
        for node in nodes:
            for event in await app.runs.events(node.run_id):
                cancel_events[node.run_id] += event.event == "run:cancel"
        assert set(cancel_events.values()) == {1} and len(cancel_events) == size
        assert sum(r.counts["cancelled"] for r in results) == size


async def test_a_tree_whose_runs_all_ended_conflicts(make_app: AppFactory):
    app = make_app()

    @app.workflow("quick")
    async def quick(ctx: Context, input: None) -> int:
        return 1

    @app.workflow("parent")
    async def parent(ctx: Context, input: None) -> int:
        return await (await ctx.spawn("quick"))

    async with app:
        run = await app.runs.create(None, "parent")
        await app.runs.join(run.run_id)
        with pytest.raises(RunConflict):
            await app.runs.cancel(run.run_id, scope="tree")
        with pytest.raises(ValueError, match="scope"):
            await app.runs.cancel(run.run_id, scope="forest")


async def test_a_resumed_parent_re_attaches_to_its_child(make_app: AppFactory):
    """The parent's worker dies after creating the child but before recording the spawn;
    another worker replays the spawn and re-attaches to that child instead of starting a
    second one."""
    clock = ManualClock()
    gate = Gate()
    slow = dict(lease_ttl=100.0, heartbeat_interval=50.0, clock=clock)

    def build(**kwargs) -> Runplane:
        app = make_app(**slow, **kwargs)

        @app.workflow("child")
        async def child(ctx: Context, input: None) -> str:
            return "child done"

        @app.workflow("parent")
        async def parent(ctx: Context, input: None) -> str:
            return await (await ctx.spawn("child"))

        return app

    def pause_spawn(run_id: str, index: int, name: str):
        return gate() if name == "spawn:child" else _noop()

    first = build(hooks=Hooks(after_step_fn=pause_spawn))
    async with first:
        run = await first.runs.create(None, "parent")
        await gate.wait_reached()  # the child exists; the spawn step is not stored yet
        assert len((await first.runs.tree(run.run_id)).children) == 1
        clock.advance(1000)  # the first worker is now "dead": its lease long expired
        second = build()
        async with second:
            await second.worker.reap()
            assert await second.runs.join(run.run_id) == "child done"
            tree = await second.runs.tree(run.run_id)
            assert len(tree.children) == 1
            assert [s.name for s in await second.runs.steps(run.run_id)] == ["spawn:child"]
            gate.open()  # the old worker's spawn record meets the fence


async def _noop() -> None:
    return None




async def _status_is(app: Runplane, run_id: str, status: RunStatus) -> bool:
    return (await app.runs.get(run_id)).status is status


async def test_children_a_parent_leaves_running_end_with_it_unless_detached(
    make_app: AppFactory,
):
    app = make_app()

    @app.workflow("leaf")
    async def leaf(ctx: Context, input: None) -> None:
        await ctx.step("park", _park)

    @app.workflow("parent")
    async def parent(ctx: Context, input: None) -> dict:
        attached = await ctx.spawn("leaf")
        detached = await ctx.spawn("leaf", detached=True)
        return {"attached": attached.run_id, "detached": detached.run_id}

    async with app:
        run = await app.runs.create(None, "parent")
        out = await app.runs.join(run.run_id)
        attached = await eventually(
            lambda: _status_is(app, out["attached"], RunStatus.INTERRUPTED))
        assert attached
        child = await app.runs.get(out["attached"])
        assert child.cancel_reason == f"parent run {run.run_id} ended success"
        assert child.cancel_requested_by == "cascade"
        assert (await app.runs.get(out["detached"])).status in (RunStatus.PENDING,
                                                                RunStatus.RUNNING)
        await app.runs.cancel(out["detached"])


async def test_a_parent_rolled_back_while_pending_starts_a_new_child_on_resume(
    make_app: AppFactory,
):
    """Rollback discards the parent's spawn steps: on resume it spawns afresh, it does not
    re-attach to the child the rollback cancelled (whose id the replay would recompute)."""
    park = {"children": True}

    def build(**kwargs) -> Runplane:
        app = make_app(**kwargs)

        @app.workflow("child")
        async def child(ctx: Context, input: None) -> str:
            if park["children"]:
                await ctx.step("park", _park)
            return "child done"

        @app.workflow("parent")
        async def parent(ctx: Context, input: None) -> dict:
            handle = await ctx.spawn("child")
            return {"child": handle.run_id, "out": await handle}

        return app

    first = build()
    async with first:
        run = await first.runs.create(None, "parent")

        async def child_running() -> str | None:
            children = (await first.runs.tree(run.run_id)).children
            return children[0].run_id if children and children[0].status is \
                RunStatus.RUNNING else None

        old_child = await eventually(child_running)
    # the worker shut down: the parent went back to the queue, still pending
    client = build(worker=False)
    async with client:
        assert (await client.runs.get(run.run_id)).status is RunStatus.PENDING
        result = await client.runs.cancel(run.run_id, action="rollback")
        assert result.counts["cancelled"] == 2  # the parent and its child
    park["children"] = False
    second = build()
    async with second:
        await second.runs.resume(run.run_id)
        out = await second.runs.join(run.run_id)
        assert out["out"] == "child done" and out["child"] != old_child
        assert (await second.runs.get(old_child)).status is RunStatus.INTERRUPTED


async def test_the_reaper_ends_children_whose_parent_ended_without_them(make_app: AppFactory):
    """A parent's worker may die between finishing the parent and ending its children, or
    the reaper may end the parent: the next reap cancels such orphans."""
    app = make_app()

    @app.workflow("leaf")
    async def leaf(ctx: Context, input: None) -> None:
        await ctx.step("park", _park)

    @app.workflow("parent")
    async def parent(ctx: Context, input: None) -> None:
        await ctx.spawn("leaf")
        await ctx.step("park", _park)

    async with app:
        run = await app.runs.create(None, "parent")

        async def child_running() -> str | None:
            children = (await app.runs.tree(run.run_id)).children
            return children[0].run_id if children and children[0].status is \
                RunStatus.RUNNING else None

        child = await eventually(child_running)
        # the parent ends without its worker ending the child (as if it died right after)
        lease = Lease(run.run_id, (await app.runs.get(run.run_id)).lease_generation)
        assert await app.store.finish_run(lease, RunStatus.ERROR, None, "lost", T0)
        assert [r.run_id for r in await app.store.orphaned_runs()] == [child]
        await app.worker.reap()
        orphan = await app.runs.get(child)
        assert orphan.status is RunStatus.INTERRUPTED
        assert orphan.cancel_reason == f"parent run {run.run_id} ended error"
        assert await app.store.orphaned_runs() == []
