"""The Python API is the service's API: ``app.runs``, ``app.threads``, ``app.assistants``,
``app.memory`` and ``app.crons`` offer every operation HTTP offers, with the service's own
signatures."""

from __future__ import annotations

import inspect

import pytest

from runplane import RunNotFound, Runplane
from runplane.app import Assistants, Crons, Memory, Operations, Runs, Threads
from runplane.models import CancelOutcome, RunStatus
from runplane.service import RunService

from support import AppFactory


async def _noop(ctx, input):
    return input


def client(make_app: AppFactory) -> Runplane:
    """An app without a worker: runs stay pending until cancelled."""
    app = make_app(worker=False)
    app.workflow("noop")(_noop)
    return app


async def test_runs_create_takes_the_run_id(make_app: AppFactory):
    async with client(make_app) as app:
        run = await app.runs.create(None, "noop", input={}, run_id="my-run-1")
        assert run.run_id == "my-run-1"
        assert (await app.runs.get("my-run-1")).status is RunStatus.PENDING


async def test_cancel_many_stores_its_reason_and_requester(make_app: AppFactory):
    async with client(make_app) as app:
        thread = await app.threads.create()
        runs = [await app.runs.create(thread.thread_id, "noop", input={}) for _ in range(2)]
        outcomes = await app.runs.cancel_many(
            thread_id=thread.thread_id, status="all", reason="tenant offboarded",
            requested_by="ops")
        assert sorted(outcomes) == sorted((r.run_id, CancelOutcome.CANCELLED) for r in runs)
        for run in runs:
            stored = await app.runs.get(run.run_id)
            assert stored.status is RunStatus.INTERRUPTED
            assert (stored.cancel_reason, stored.cancel_requested_by) == (
                "tenant offboarded", "ops")


async def test_threads_search_by_ids_sorted_and_count(make_app: AppFactory):
    async with client(make_app) as app:
        for thread_id in ("t-b", "t-c", "t-a"):
            await app.threads.create(thread_id=thread_id, metadata={"team": "x"})
        await app.threads.create(thread_id="t-other", metadata={"team": "y"})
        found = await app.threads.search(ids=["t-c", "t-a", "t-b"], sort_by="thread_id",
                                         sort_order="asc")
        assert [t.thread_id for t in found] == ["t-a", "t-b", "t-c"]
        found = await app.threads.search(ids=["t-c", "t-a"], sort_by="thread_id",
                                         sort_order="desc")
        assert [t.thread_id for t in found] == ["t-c", "t-a"]
        assert await app.threads.count() == 4
        assert await app.threads.count(metadata={"team": "x"}) == 3


async def test_join_and_settled_take_the_thread_the_run_must_be_on(make_app: AppFactory):
    """As ``GET /threads/{thread_id}/runs/{run_id}/join``: another thread's run is not found,
    at once (not after waiting for it)."""
    app = make_app()
    app.workflow("noop")(_noop)
    async with app:
        mine, other = await app.threads.create(), await app.threads.create()
        run = await app.runs.create(mine.thread_id, "noop", input={"n": 1})
        with pytest.raises(RunNotFound):
            await app.runs.join(run.run_id, thread_id=other.thread_id)
        with pytest.raises(RunNotFound):
            await app.runs.settled(run.run_id, thread_id=other.thread_id)
        assert await app.runs.join(run.run_id, thread_id=mine.thread_id) == {"n": 1}
        settled = await app.runs.settled(run.run_id, thread_id=mine.thread_id)
        assert settled.status is RunStatus.SUCCESS


FACADES = (Runs, Threads, Assistants, Memory, Crons)


@pytest.mark.parametrize("facade", FACADES)
async def test_each_operation_is_the_service_method_itself(
    make_app: AppFactory, facade: type[Operations],
):
    async with client(make_app) as app:
        operations = {Runs: app.runs, Threads: app.threads, Assistants: app.assistants,
                      Memory: app.memory, Crons: app.crons}[facade]
        assert dir(operations) == sorted(facade.OPERATIONS)
        for name, method in facade.OPERATIONS.items():
            bound = getattr(operations, name)
            service_method = getattr(RunService, method)
            assert bound == getattr(app.service, method), name
            assert inspect.signature(bound) == inspect.signature(
                getattr(app.service, method)), name
            assert bound.__doc__ == service_method.__doc__, name


async def test_the_facades_cover_the_services_public_operations():
    """A new public service operation must be named here, or in the facades."""
    internal = {"spawn", "end_children", "end_orphans", "child_result", "wait",
                "expire_threads", "expire_items", "fire_crons", "deliver_webhooks",  # duties
                "next_thread_run"}  # the HTTP thread stream's step
    public = {name for name, _ in inspect.getmembers(RunService, inspect.isfunction)
              if not name.startswith("_")}
    offered = {method for facade in FACADES for method in facade.OPERATIONS.values()}
    assert public - internal == offered


async def test_operations_need_an_open_app(make_app: AppFactory):
    app = client(make_app)
    with pytest.raises(RuntimeError, match="not open"):
        app.runs.create  # noqa: B018
    async with app:
        await app.threads.count()
    with pytest.raises(RuntimeError, match="not open"):
        app.threads.count  # noqa: B018
    with pytest.raises(AttributeError):
        app.runs.create_run  # noqa: B018
