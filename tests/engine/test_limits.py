"""Input bounds: a value outside runplane.limits is refused with InvalidInput (a ValueError
naming the field) before anything is written, on both stores; and a run whose stored row
cannot be claimed ends ``error`` without stopping the worker or the runs behind it."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from runplane import Context, InvalidInput, RunFailed, Runplane, limits
from runplane.models import RunStatus
from runplane.service import RunService
from runplane.store.postgres import postgres_dsn
from runplane.store.sqlite import sqlite_path

from support import AppFactory, nested

# --------------------------------------------------------------------------- #
# the service refuses before writing, on both stores                          #
# --------------------------------------------------------------------------- #


async def _echo(ctx: Context, input: Any) -> Any:
    return {"echo": input}


DEEP = nested(300)
Call = Callable[[RunService, str, str], Awaitable[Any]]

#: (what, the call given a service, a thread id and a pending run id, the field named)
BAD_CALLS: list[tuple[str, Call, str]] = [
    ("deep input", lambda s, t, r: s.create_run(None, "echo", DEEP), "input"),
    ("NaN input", lambda s, t, r: s.create_run(t, "echo", float("nan")), "input"),
    ("NUL in input", lambda s, t, r: s.create_run(t, "echo", {"a": "\x00"}), "input"),
    ("lone surrogate", lambda s, t, r: s.create_run(None, "echo", ["\ud800"]), "input"),
    ("huge input", lambda s, t, r: s.create_run(
        None, "echo", "x" * limits.MAX_INPUT_BYTES), "input"),
    ("timeout 1e12", lambda s, t, r: s.create_run(None, "echo", timeout=1e12), "timeout"),
    ("timeout inf", lambda s, t, r: s.create_run(t, "echo", timeout=float("inf")), "timeout"),
    ("timeout NaN", lambda s, t, r: s.create_run(t, "echo", timeout=float("nan")), "timeout"),
    ("max_attempts 2^31", lambda s, t, r: s.create_run(
        None, "echo", max_attempts=2**31), "max_attempts"),
    ("deep run metadata", lambda s, t, r: s.create_run(
        t, "echo", metadata={"a": DEEP}), "metadata"),
    ("long thread id", lambda s, t, r: s.create_run(
        "x" * 20_000, "echo", if_not_exists="create"), "thread_id"),
    ("NUL run id", lambda s, t, r: s.create_run(None, "echo", run_id="a\x00b"), "run_id"),
    ("NUL thread id", lambda s, t, r: s.create_thread(thread_id="a\x00b"), "thread_id"),
    ("long new thread id", lambda s, t, r: s.create_thread(thread_id="x" * 20_000), "thread_id"),
    ("deep thread metadata", lambda s, t, r: s.create_thread(metadata={"a": DEEP}), "metadata"),
    ("surrogate key", lambda s, t, r: s.create_thread(metadata={"\ud800": 1}), "metadata"),
    ("Infinity in update", lambda s, t, r: s.update_thread(
        t, metadata={"a": float("inf")}), "metadata"),
    ("deep update", lambda s, t, r: s.update_thread(t, metadata={"a": DEEP}), "metadata"),
    ("NUL in search", lambda s, t, r: s.search_threads(metadata={"a": "\x00"}), "metadata"),
    ("deep count", lambda s, t, r: s.count_threads(metadata={"a": DEEP}), "metadata"),
    ("search limit 2^63", lambda s, t, r: s.search_threads(limit=2**63), "limit"),
    ("search ids", lambda s, t, r: s.search_threads(ids=[t, "\x00"]), "ids[1]"),
    ("list offset 2^63", lambda s, t, r: s.list_threads(offset=2**63), "offset"),
    ("runs limit 2^63", lambda s, t, r: s.list_runs(limit=2**63), "limit"),
    ("runs offset 2^63", lambda s, t, r: s.list_runs(t, offset=2**63), "offset"),
    ("get NUL run", lambda s, t, r: s.get_run("a\x00b"), "run_id"),
    ("get long thread", lambda s, t, r: s.get_thread("x" * 20_000), "thread_id"),
    ("get via NUL thread", lambda s, t, r: s.get_run(r, thread_id="\x00"), "thread_id"),
    ("cancel NUL run", lambda s, t, r: s.cancel("a\x00b"), "run_id"),
    ("cancel NUL reason", lambda s, t, r: s.cancel(r, reason="why\x00"), "reason"),
    ("bulk cancel ids", lambda s, t, r: s.cancel_many(run_ids=[r, "\ud800"]), "run_ids[1]"),
    ("bulk cancel reason", lambda s, t, r: s.cancel_many(
        thread_id=t, status="all", reason="\x00"), "reason"),
    ("delete NUL run", lambda s, t, r: s.delete_run("\x00"), "run_id"),
    ("events after 2^63", lambda s, t, r: s.events(r, after_seq=2**63), "after_seq"),
    ("resume NUL run", lambda s, t, r: s.resume("\x00"), "run_id"),
]


async def _snapshot(app: Runplane) -> tuple[list[Any], list[Any]]:
    runs = await app.service.list_runs(limit=limits.MAX_LIMIT)
    threads = await app.service.search_threads(limit=limits.MAX_LIMIT)
    return runs, threads


@pytest.mark.parametrize(("what", "call", "field"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
async def test_out_of_bounds_input_raises_invalid_input_and_writes_nothing(
    make_app: AppFactory, what: str, call: Call, field: str
) -> None:
    app = make_app(worker=False)
    app.workflow("echo")(_echo)
    async with app:
        thread = await app.threads.create(metadata={"kept": True})
        run = await app.runs.create(thread.thread_id, "echo", {"x": 1})
        before = await _snapshot(app)
        with pytest.raises(InvalidInput) as err:
            await call(app.service, thread.thread_id, run.run_id)
        assert isinstance(err.value, ValueError)
        assert err.value.field == field
        assert str(err.value).startswith(field), str(err.value)
        assert await _snapshot(app) == before
        assert (await app.runs.get(run.run_id)).status is RunStatus.PENDING


async def test_thread_metadata_cannot_grow_past_the_bound_by_updates(make_app: AppFactory):
    app = make_app(worker=False)
    async with app:
        thread = await app.threads.create()
        half = "x" * (limits.MAX_METADATA_BYTES // 2)
        await app.threads.update(thread.thread_id, metadata={"a": half})
        kept = await app.threads.get(thread.thread_id)
        with pytest.raises(InvalidInput, match=r"^metadata is larger than") as err:
            await app.threads.update(thread.thread_id, metadata={"b": half})
        assert err.value.field == "metadata"
        assert await app.threads.get(thread.thread_id) == kept


# --------------------------------------------------------------------------- #
# a run whose row cannot be claimed does not stop the worker                  #
# --------------------------------------------------------------------------- #


Statements = list[tuple[str, tuple[Any, ...]]]


async def _sql(url: str, *, sqlite: Statements, postgres: Statements) -> None:
    """Write behind the service's back, as an older version or a person with psql might."""
    if url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(sqlite_path(url))) as conn, conn:
            for statement, args in sqlite:
                conn.execute(statement, args)
        return
    dsn, schema = postgres_dsn(url)
    conn = await asyncpg.connect(dsn, server_settings={"search_path": schema or "public"})
    try:
        for statement, args in postgres:
            await conn.execute(statement, *args)
    finally:
        await conn.close()


async def _poison_deadline(url: str, run_id: str, timeout: float) -> None:
    """A timeout whose deadline is no datetime: decoding the claimed run fails (1e12: an
    OverflowError or ValueError; 1e18: an OSError, which is no connection fault)."""
    await _sql(url, sqlite=[("UPDATE runs SET timeout = ? WHERE run_id = ?", (timeout, run_id))],
               postgres=[("UPDATE runs SET timeout = $1 WHERE run_id = $2", (timeout, run_id))])


async def _poison_claim(url: str, run_id: str) -> None:
    """SQLite: a stored step that is no JSON (the claim reads it for the replay).
    PostgreSQL: an attempt counter the claim statement itself overflows."""
    await _sql(url, sqlite=[
        ("UPDATE runs SET step_index = 1 WHERE run_id = ?", (run_id,)),
        ("INSERT INTO steps (run_id, idx, name, result, created_at) "
         "VALUES (?, 0, 'echo', '{not json', 0)", (run_id,)),
    ], postgres=[("UPDATE runs SET attempt = 2147483647 WHERE run_id = $1", (run_id,))])


async def test_a_run_that_cannot_be_claimed_ends_error_and_the_others_run(
    make_app: AppFactory, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    writer = make_app(worker=False)
    writer.workflow("echo")(_echo)
    async with writer:
        thread = await writer.threads.create()
        bad = await writer.runs.create(None, "echo", {"n": "bad"})
        far = await writer.runs.create(None, "echo", {"n": "far"})
        # the second bad run is first on its thread: the good one queued behind it must run
        thread_bad = await writer.runs.create(thread.thread_id, "echo", {"n": "thread_bad"})
        behind = await writer.runs.create(thread.thread_id, "echo", {"n": "behind"})
        good = await writer.runs.create(None, "echo", {"n": "good"})
    await _poison_deadline(database_url, bad.run_id, 1e12)
    await _poison_deadline(database_url, far.run_id, 1e18)
    await _poison_claim(database_url, thread_bad.run_id)

    app = make_app(concurrency=4)
    app.workflow("echo")(_echo)
    async with app, asyncio.timeout(30):
        assert await app.runs.join(good.run_id) == {"echo": {"n": "good"}}
        assert await app.runs.join(behind.run_id) == {"echo": {"n": "behind"}}
        for run_id in (bad.run_id, far.run_id, thread_bad.run_id):
            with pytest.raises(RunFailed) as err:
                await app.runs.join(run_id)
            ended = err.value.run
            assert ended.status is RunStatus.ERROR
            assert ended.error.startswith("run could not be started, its stored row is invalid")
            events = [e.event for e in await app.runs.events(run_id)]
            assert events == ["run:created", "run:fail"], events
            fail = (await app.runs.events(run_id))[-1]
            assert fail.data == {"error": ended.error}
        assert (await app.threads.get(thread.thread_id)).status.value == "idle"
        # and the worker keeps working: a probe run created now runs
        probe = await app.runs.create(None, "echo", {"n": "probe"})
        assert await app.runs.join(probe.run_id) == {"echo": {"n": "probe"}}
    assert "claiming runs failed" not in caplog.text
    ended_logs = [r for r in caplog.records if "ended error" in r.getMessage()]
    assert len(ended_logs) == 3 and all(r.exc_info is None for r in ended_logs)


async def test_a_poisoned_row_alone_in_a_batch_of_one_is_ended_too(
    make_app: AppFactory, database_url: str
) -> None:
    """``concurrency=1``: every claim takes one run, the bad one first; it is ended and the
    next claim takes the good one (no claim is stuck on the same run)."""
    writer = make_app(worker=False)
    writer.workflow("echo")(_echo)
    async with writer:
        bad = await writer.runs.create(None, "echo", {"n": "bad"})
        far = await writer.runs.create(None, "echo", {"n": "far"})
        good = await writer.runs.create(None, "echo", {"n": "good"})
    await _poison_deadline(database_url, bad.run_id, 1e12)
    await _poison_deadline(database_url, far.run_id, 1e18)
    app = make_app(concurrency=1)
    app.workflow("echo")(_echo)
    async with app, asyncio.timeout(30):
        assert await app.runs.join(good.run_id) == {"echo": {"n": "good"}}
        assert (await app.runs.get(bad.run_id)).status is RunStatus.ERROR
