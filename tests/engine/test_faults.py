"""A store fault is never a run's outcome.

Each test makes the database fail one worker write at a chosen moment, the way
the dialect really fails (PostgreSQL: the connection dropped during the
statement, before or after its commit; SQLite: an I/O error), and checks that
the run is handed back and completes on its next claim, its completed steps
replayed and not executed again, the attempt not counted.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest

import runplane.store.postgres as pg
import runplane.store.sqlite as sq
from runplane import Context, Runplane
from runplane.errors import RunCancelled, StoreUnavailable
from runplane.models import RunStatus
from runplane.server.app import create_app
from runplane.store.postgres import PostgresStore
from runplane.store.sqlite import SQLiteStore

from support import AppFactory, eventually
from support.databases import postgres_schema

STEPS = ("one", "two", "three")


class Faults:
    """Fail the ``nth`` call of one kind of worker write, ``before`` or ``after`` it
    committed (after: the write is stored, but the worker only sees the error)."""

    def __init__(self, write: str, nth: int, when: str) -> None:
        self.write, self.nth, self.when = write, nth, when
        self.calls = 0
        self.fired = 0

    def due(self, write: str) -> bool:
        if write != self.write:
            return False
        self.calls += 1
        if self.calls == self.nth:
            self.fired += 1
            return True
        return False


_PG_WRITES = {pg._QUERIES["complete_steps"]: "step", pg._QUERIES["append_events"]: "event",
              pg._QUERIES["finish_runs"]: "finish"}


class _FaultyPool:
    """The store's asyncpg pool, but the chosen batch statement loses its connection."""

    def __init__(self, pool: asyncpg.Pool, faults: Faults) -> None:
        self._pool = pool
        self._faults = faults

    async def fetch(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        due = self._faults.due(_PG_WRITES.get(sql, ""))
        if due and self._faults.when == "before":
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of "
                                                      "operation")
        rows = await self._pool.fetch(sql, *args, **kwargs)
        if due:
            raise asyncpg.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress")
        return rows

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


def _io_error() -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("disk I/O error")
    exc.sqlite_errorcode = sqlite3.SQLITE_IOERR  # type: ignore[attr-defined]
    return exc


def _inject(app: Runplane, faults: Faults, monkeypatch: pytest.MonkeyPatch) -> None:
    store = app.store
    if isinstance(store, PostgresStore):
        store._pool = _FaultyPool(store.pool, faults)  # type: ignore[assignment]
        return
    assert isinstance(store, SQLiteStore)
    assert faults.when == "before", "SQLite answers only after its commit"
    for write, name in (("step", "_complete_step"), ("event", "_append_event"),
                        ("finish", "_finish")):
        real = getattr(sq, name)

        def failing(*args: Any, _real: Any = real, _write: str = write) -> Any:
            if faults.due(_write):
                raise _io_error()
            return _real(*args)

        monkeypatch.setattr(sq, name, failing)


def _three_steps(app: Runplane, executed: Counter[tuple[int, str]]) -> None:
    @app.workflow("steps")
    async def steps(ctx: Context, input: Any) -> list[str]:
        done = []
        for name in STEPS:
            try:  # a workflow that swallows every error cannot swallow a store fault
                done.append(await ctx.step(name, _record, executed, ctx.attempt, name))
            except Exception as exc:
                done.append(f"swallowed {type(exc).__name__}")
        return done


def _record(executed: Counter[tuple[int, str]], attempt: int, name: str) -> str:
    executed[(attempt, name)] += 1
    return name


@pytest.mark.parametrize(("write", "nth", "twice", "in_flight"), [
    pytest.param("step", 2, {"two"}, "two", id="step-result-lost"),
    pytest.param("event", 2, set(), "two", id="step-start-event-lost"),
    pytest.param("finish", 1, set(), None, id="completion-lost"),
])
async def test_a_store_fault_in_a_worker_write_hands_the_run_back_not_error(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, write: str, nth: int,
    twice: set[str], in_flight: str | None,
):
    await _check_handed_back(make_app(max_attempts=1), Faults(write, nth, "before"), twice,
                             in_flight, monkeypatch)


@pytest.mark.parametrize(("write", "twice"), [
    pytest.param("step", set(), id="step-result-stored"),  # its step:cancel is not logged
    pytest.param("finish", set(), id="completion-stored"),
])
async def test_a_write_stored_before_its_connection_dropped_is_replayed_not_rerun(
    postgres_server: str, monkeypatch: pytest.MonkeyPatch, write: str, twice: set[str],
):
    """PostgreSQL can commit a write and lose the connection before answering: the
    worker cannot know, hands the run back, and the next attempt finds the step stored."""
    async with postgres_schema(postgres_server) as url:
        app = Runplane(url, max_attempts=1, poll_interval=0.01, reap_interval=3600.0,
                       shutdown_grace=0.0)
        try:
            await _check_handed_back(app, Faults(write, 2 if write == "step" else 1, "after"),
                                     twice, None, monkeypatch)
        finally:
            await app.close()


async def _check_handed_back(app: Runplane, faults: Faults, twice: set[str],
                             in_flight: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """``twice``: steps executed on both attempts; ``in_flight``: the step whose write was
    lost (a ``step:cancel`` says so; a step stored after all gets none)."""
    executed: Counter[tuple[int, str]] = Counter()
    _three_steps(app, executed)
    async with app:
        _inject(app, faults, monkeypatch)
        run = await app.runs.create(None, "steps")
        async with asyncio.timeout(30):
            assert await app.runs.join(run.run_id) == list(STEPS)
        assert faults.fired == 1
        final = await app.runs.get(run.run_id)
        assert final.status is RunStatus.SUCCESS and final.error is None
        # handed back, not reaped: the attempt did not count against max_attempts=1
        assert final.attempt == 1
        assert app.worker is not None
        await eventually(lambda: not app.worker.active_runs)  # its settling is over too
        events = await app.runs.events(run.run_id)
    per_step = Counter(name for (_, name) in executed.elements())
    assert per_step == {name: 2 if name in twice else 1 for name in STEPS}, executed
    lifecycle = [e.event for e in events if e.event.startswith("run:")]
    if faults.write == "finish" and faults.when == "after":  # stored: nothing to hand back
        assert lifecycle == ["run:created", "run:start", "run:complete"]
        assert "lease:lost" not in [e.event for e in events]  # its own finish, not a loss
        return
    assert lifecycle == ["run:created", "run:start", "run:resume", "run:start",
                         "run:complete"]
    assert next(e for e in events if e.event == "run:resume").data == {
        "reason": "store_unavailable"}
    assert [e.data["index"] for e in events if e.event == "step:complete"] == [0, 1, 2]
    cancels = [e.data["name"] for e in events if e.event == "step:cancel"]
    assert cancels == ([] if in_flight is None else [in_flight])


async def test_a_store_fault_while_handing_back_is_retried_until_the_store_answers(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
):
    app = make_app(max_attempts=1)
    executed: Counter[tuple[int, str]] = Counter()
    _three_steps(app, executed)
    async with app:
        faults = Faults("step", 1, "before")
        _inject(app, faults, monkeypatch)
        store = app.store
        real_requeue = store.requeue_run
        refusals = []

        async def requeue(*args: Any, **kwargs: Any) -> bool:
            if len(refusals) < 3:  # the database is still away for the first three tries
                refusals.append(args[0].run_id)
                raise StoreUnavailable(ConnectionRefusedError("connection refused"))
            return await real_requeue(*args, **kwargs)

        monkeypatch.setattr(store, "requeue_run", requeue)
        run = await app.runs.create(None, "steps")
        async with asyncio.timeout(30):
            assert await app.runs.join(run.run_id) == list(STEPS)
        assert refusals == [run.run_id] * 3
        final = await app.runs.get(run.run_id)
        assert final.status is RunStatus.SUCCESS and final.attempt == 1


async def test_sqlite_locked_past_the_busy_timeout_is_unavailable(tmp_path):
    url = f"sqlite:///{tmp_path}/locked.db"
    store = SQLiteStore(url, busy_timeout=0.05)
    await store.open()
    other = sqlite3.connect(f"{tmp_path}/locked.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        with pytest.raises(StoreUnavailable, match="database is locked"):
            await store.create_thread("t", {}, 0.0, if_exists="raise")
        other.execute("ROLLBACK")
        assert (await store.create_thread("t", {}, 0.0, if_exists="raise")).thread_id == "t"
    finally:
        other.close()
        await store.close()


async def test_http_answers_a_store_fault_503_and_a_bug_a_json_500(
    tmp_path, monkeypatch: pytest.MonkeyPatch
):
    rp = Runplane(f"sqlite:///{tmp_path}/http.db", worker=False)

    @rp.workflow("noop")
    async def noop(ctx: Context, input: Any) -> None:
        return None

    async with rp:
        run = await rp.runs.create(None, "noop")
        transport = httpx.ASGITransport(app=create_app(rp), raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as http:
            async def unavailable(*args: Any) -> None:
                raise StoreUnavailable(ConnectionResetError("connection reset by peer"))

            monkeypatch.setattr(rp.store, "get_run", unavailable)
            response = await http.get(f"/runs/{run.run_id}")
            assert response.status_code == 503
            assert response.headers["retry-after"] == "1"
            assert response.json() == {"detail": "the database is unavailable "
                                       "(ConnectionResetError: connection reset by peer); "
                                       "try again in 1s"}

            async def bug(*args: Any) -> None:
                raise KeyError("oops")

            monkeypatch.setattr(rp.store, "get_run", bug)
            response = await http.get(f"/runs/{run.run_id}")
            assert response.status_code == 500
            assert response.json() == {"detail": "internal server error (KeyError)"}

            async def value_bug(*args: Any) -> None:  # not the client's fault: no 422
                raise ValueError("Out of range float values are not JSON compliant")

            monkeypatch.setattr(rp.store, "get_run", value_bug)
            response = await http.get(f"/runs/{run.run_id}")
            assert response.status_code == 500
            assert response.json() == {"detail": "internal server error (ValueError)"}


@pytest.mark.parametrize("fails", ["spawn", "child_result"])
async def test_a_store_fault_while_spawning_or_awaiting_a_child_hands_the_parent_back(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch, fails: str
):
    """Spawning and awaiting a child read and write the store outside ``ctx.step``'s own
    writes: a fault there is no more the parent's failure than a step write's."""
    app = make_app(max_attempts=1)
    spawned: Counter[int] = Counter()

    @app.workflow("child")
    async def child(ctx: Context, input: Any) -> int:
        return input * 2

    @app.workflow("parent")
    async def parent(ctx: Context, input: Any) -> int:
        spawned[ctx.attempt] += 1
        try:
            handle = await ctx.spawn("child", 21)
            return await handle
        except Exception as exc:  # cannot swallow a store fault
            raise AssertionError(f"the workflow saw {exc!r}") from exc

    async with app:
        real = getattr(app.service, fails)
        calls = []

        async def once_unavailable(*args: Any, **kwargs: Any) -> Any:
            calls.append(args)
            if len(calls) == 1:
                raise StoreUnavailable(ConnectionResetError("connection reset by peer"))
            return await real(*args, **kwargs)

        monkeypatch.setattr(app.service, fails, once_unavailable)
        run = await app.runs.create(None, "parent")
        async with asyncio.timeout(30):
            assert await app.runs.join(run.run_id) == 42
        final = await app.runs.get(run.run_id)
        assert final.status is RunStatus.SUCCESS and final.attempt == 1
        tree = await app.runs.tree(run.run_id)
        assert len(tree.children) == 1  # the resumed parent re-attached to its one child
        resumes = [e.data for e in await app.runs.events(run.run_id)
                   if e.event == "run:resume"]
        assert resumes == [{"reason": "store_unavailable"}]


async def test_a_stream_keeps_ticking_through_an_outage_and_goes_on_after_it(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
):
    app = make_app()

    @app.workflow("two")
    async def two(ctx: Context, input: Any) -> str:
        await ctx.step("a", lambda: "a")
        await ctx.step("b", lambda: "b")
        return "done"

    async with app:
        run = await app.runs.create(None, "two")
        await app.runs.join(run.run_id)
        store = app.store
        real = store.get_events
        outage = 4

        async def get_events(*args: Any, **kwargs: Any) -> Any:
            nonlocal outage
            if outage:
                outage -= 1
                raise StoreUnavailable(ConnectionRefusedError("connection refused"))
            return await real(*args, **kwargs)

        monkeypatch.setattr(store, "get_events", get_events)
        seen: list[str | None] = []
        async with asyncio.timeout(10):
            async for event in app.service.stream(run.run_id, after_seq=2, idle=0.01):
                seen.append(None if event is None else event.event)
    assert seen == [None] * 4 + ["step:start", "step:complete", "step:start",
                                 "step:complete", "run:complete"]


async def test_join_waits_out_a_store_outage_instead_of_failing(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
):
    """``join`` and ``wait`` of a run that exists ride out an outage: an error answered
    now (a 503 over HTTP) would make a client retry and create a second run."""
    app = make_app(worker=False)

    @app.workflow("noop")
    async def noop(ctx: Context, input: Any) -> str:
        return "done"

    async with app:
        run = await app.runs.create(None, "noop")
        real_get_run = app.store.get_run
        refused = 0

        async def get_run(run_id: str) -> Any:
            nonlocal refused
            if refused < 3:
                refused += 1
                raise StoreUnavailable(ConnectionResetError("connection reset by peer"))
            return await real_get_run(run_id)

        monkeypatch.setattr(app.store, "get_run", get_run)
        joined = asyncio.ensure_future(app.runs.join(run.run_id))
        await eventually(lambda: refused == 3)
        monkeypatch.setattr(app.store, "get_run", real_get_run)
        await app.runs.cancel(run.run_id, reason="outage over")  # no worker: end it this way
        with pytest.raises(RunCancelled):
            await asyncio.wait_for(joined, 10)
