"""What a workflow writes is held to the bounds of what a client sends (runplane.limits).

A step's result, an event's data (``values`` become the thread's values), the run's output
and a child's input are checked in the worker before their write, with the outcome a
workflow author expects: an unstorable step result fails that step, an unstorable emit or
child input raises at the call and writes nothing, an unstorable output ends the run
``error``. Whatever the check accepts, both stores keep and give back; and text a run must
record whatever it holds (an exception's message) never makes the store refuse the write.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runplane import (
    Context,
    InvalidInput,
    RunFailed,
    Runplane,
    StepResultNotSerializable,
    UnstorableValue,
    limits,
)
from runplane.models import RunStatus

from support import AppFactory, nested

#: (what, an unstorable value, where the message says the problem is)
UNSTORABLE: list[tuple[str, Any, str]] = [
    ("NaN", {"items": [1, 2, 3, float("nan")]}, "{field}.items[3] is NaN, not a JSON number"),
    ("Infinity", [{"x": float("inf")}], "{field}[0].x is Infinity, not a JSON number"),
    ("300 deep", {"a": nested(300)}, "{field} is nested deeper than 128 levels"),
    ("NUL", {"text": "a\x00b"}, "{field}.text contains \\u0000"),
    ("lone surrogate key", {"k": {"\ud800": 1}}, "{field}.k has a key that contains an "
                                                "unpaired surrogate (\\ud800)"),
    ("set", {"s": {1, 2}}, "{field} is not JSON-serialisable: Object of type set"),
]
UNSTORABLE_IDS = [u[0] for u in UNSTORABLE]


async def _readable(app: Runplane, run_id: str, thread_id: str | None) -> None:
    """Every read that carries the run answers: the run, its listings, thread, events."""
    await app.runs.get(run_id)
    assert run_id in [r.run_id for r in await app.service.list_runs(limit=limits.MAX_LIMIT)]
    await app.runs.events(run_id)
    await app.runs.steps(run_id)
    if thread_id is not None:
        await app.threads.get(thread_id)
        await app.runs.list(thread_id)


async def _finished(app: Runplane, run_id: str) -> Any:
    async with asyncio.timeout(20):
        try:
            return await app.runs.join(run_id)
        except RunFailed as exc:
            return exc.run


# --------------------------------------------------------------------------- #
# what the workflow sees, on both stores                                      #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("what", "value", "where"), UNSTORABLE, ids=UNSTORABLE_IDS)
async def test_an_unstorable_step_result_fails_the_step_and_it_runs_again(
    make_app: AppFactory, what: str, value: Any, where: str
) -> None:
    app = make_app()
    failures: list[StepResultNotSerializable] = []

    @app.workflow("unstorable_step")
    async def unstorable_step(ctx: Context, input: Any) -> Any:
        try:
            await ctx.step("produce", lambda: value)
        except StepResultNotSerializable as exc:
            failures.append(exc)
        return await ctx.step("produce", lambda: {"fixed": True})

    async with app:
        thread = await app.threads.create()
        run = await app.runs.create(thread.thread_id, "unstorable_step")
        assert await _finished(app, run.run_id) == {"fixed": True}
        [failure] = failures
        assert isinstance(failure, TypeError)
        expected = f"step 'produce' returned a value that cannot be stored: " \
                   f"{where.format(field='result')}"
        assert str(failure).startswith(expected), str(failure)
        # the failed step took no index: the same step ran again and was stored at 0
        steps = await app.runs.steps(run.run_id)
        assert [(s.index, s.name, s.result) for s in steps] == [(0, "produce", {"fixed": True})]
        events = await app.runs.events(run.run_id)
        fails = [e.data for e in events if e.event == "step:fail"]
        assert fails == [{"name": "produce", "index": 0,
                          "error": f"StepResultNotSerializable: {failure}"}]
        await _readable(app, run.run_id, thread.thread_id)


@pytest.mark.parametrize(("what", "value", "where"), UNSTORABLE, ids=UNSTORABLE_IDS)
@pytest.mark.parametrize("mode", ["values", "custom"])
async def test_an_unstorable_emit_raises_at_the_call_and_writes_nothing(
    make_app: AppFactory, what: str, value: Any, where: str, mode: str
) -> None:
    app = make_app()

    @app.workflow("unstorable_emit")
    async def unstorable_emit(ctx: Context, input: Any) -> Any:
        await ctx.emit("values", {"kept": True})
        try:
            await ctx.emit(mode, value)
        except UnstorableValue as exc:
            assert isinstance(exc, TypeError) and isinstance(exc, ValueError)
            return {"refused": str(exc), "field": exc.field}
        return {"refused": None}

    async with app:
        thread = await app.threads.create()
        run = await app.runs.create(thread.thread_id, "unstorable_emit")
        out = await _finished(app, run.run_id)
        assert out["field"] == "data", out
        assert out["refused"].startswith(f"ctx.emit({mode!r}): {where.format(field='data')}"), \
            out["refused"]
        events = [(e.event, e.data) for e in await app.runs.events(run.run_id)][1:-1]
        assert events == [("run:start", events[0][1]), ("values", {"kept": True})], events
        await _readable(app, run.run_id, thread.thread_id)


@pytest.mark.parametrize(("what", "value", "where"), UNSTORABLE, ids=UNSTORABLE_IDS)
async def test_an_unstorable_output_ends_the_run_error_and_reads_go_on(
    make_app: AppFactory, what: str, value: Any, where: str
) -> None:
    app = make_app()

    @app.workflow("unstorable_output")
    async def unstorable_output(ctx: Context, input: Any) -> Any:
        await ctx.emit("values", {"kept": True})
        return value

    async with app:
        thread = await app.threads.create()
        run = await app.runs.create(thread.thread_id, "unstorable_output")
        ended = await _finished(app, run.run_id)
        assert ended.status is RunStatus.ERROR
        assert ended.output is None
        assert ended.error.startswith(
            f"the workflow's output cannot be stored: {where.format(field='output')}"), \
            ended.error
        assert ended.attempt == 1
        assert (await app.threads.get(thread.thread_id)).values == {"kept": True}
        await _readable(app, run.run_id, thread.thread_id)


@pytest.mark.parametrize(("what", "value", "where"), UNSTORABLE, ids=UNSTORABLE_IDS)
async def test_an_unstorable_child_input_raises_before_the_child_exists(
    make_app: AppFactory, what: str, value: Any, where: str
) -> None:
    app = make_app()

    @app.workflow("child")
    async def child(ctx: Context, input: Any) -> Any:
        return input

    @app.workflow("parent")
    async def parent(ctx: Context, input: Any) -> Any:
        try:
            await ctx.spawn("child", value)
        except UnstorableValue as exc:
            return {"refused": str(exc), "field": exc.field}
        return {"refused": None}

    async with app:
        run = await app.runs.create(None, "parent")
        out = await _finished(app, run.run_id)
        assert out["field"] == "input", out
        # the input bounds of a run: a child's input is one
        expected = where.format(field="input").replace("128", str(limits.MAX_JSON_DEPTH))
        assert out["refused"].startswith(f"ctx.spawn('child'): {expected}"), out["refused"]
        assert (await app.runs.tree(run.run_id)).children == []
        events = [e.event for e in await app.runs.events(run.run_id)]
        assert events == ["run:created", "run:start", "run:complete"], events


async def test_a_step_name_or_emit_mode_no_store_keeps_raises_at_the_call(
    make_app: AppFactory,
) -> None:
    app = make_app()

    @app.workflow("bad_names")
    async def bad_names(ctx: Context, input: Any) -> Any:
        refused = []
        for call in (lambda: ctx.step("a\x00b", lambda: 1), lambda: ctx.emit("m\x00", 1),
                     lambda: ctx.emit("m\ud800", 1)):
            try:
                await call()
            except UnstorableValue as exc:
                refused.append(str(exc))
        return refused

    async with app:
        run = await app.runs.create(None, "bad_names")
        assert await _finished(app, run.run_id) == [
            "ctx.step('a\\x00b'): name contains \\u0000",
            "ctx.emit('m\\x00'): mode contains \\u0000",
            "ctx.emit('m\\ud800'): mode contains an unpaired surrogate (\\ud800)",
        ]
        events = [e.event for e in await app.runs.events(run.run_id)]
        assert events == ["run:created", "run:start", "run:complete"], events


# --------------------------------------------------------------------------- #
# text the store would refuse never leaves a run to its lease                  #
# --------------------------------------------------------------------------- #


async def test_an_exception_whose_message_holds_a_nul_ends_the_run_once(
    make_app: AppFactory,
) -> None:
    """PostgreSQL refuses ``\\u0000`` in text and jsonb: written as is, the error would make
    the finish write fail, the run would wait for its lease to expire and run again."""
    app = make_app()
    attempts: list[int] = []

    @app.workflow("raises_nul")
    async def raises_nul(ctx: Context, input: Any) -> Any:
        attempts.append(ctx.attempt)
        raise ValueError("bad\x00byte")

    async with app:
        thread = await app.threads.create()
        run = await app.runs.create(thread.thread_id, "raises_nul")
        ended = await _finished(app, run.run_id)
        assert ended.status is RunStatus.ERROR
        assert ended.error == "ValueError: bad\\u0000byte"
        assert "ValueError: bad\\u0000byte" in ended.traceback
        assert attempts == [1]
        await _readable(app, run.run_id, thread.thread_id)


async def test_a_step_failing_with_a_nul_in_its_message_fails_as_itself(
    make_app: AppFactory,
) -> None:
    app = make_app()

    def fails() -> None:
        raise ValueError("k\x00")

    @app.workflow("step_raises_nul")
    async def step_raises_nul(ctx: Context, input: Any) -> Any:
        try:
            await ctx.step("fails", fails)
        except ValueError as exc:
            return {"caught": repr(exc)}
        return None

    async with app:
        run = await app.runs.create(None, "step_raises_nul")
        assert await _finished(app, run.run_id) == {"caught": "ValueError('k\\x00')"}
        [fail] = [e.data for e in await app.runs.events(run.run_id) if e.event == "step:fail"]
        assert fail["error"] == "ValueError: k\\u0000"


# --------------------------------------------------------------------------- #
# whatever the check accepts, both stores keep and give back                  #
# --------------------------------------------------------------------------- #


_TEXT = st.text(st.characters(codec="utf-8") | st.sampled_from("\x00\ud800\udfff\u2028\x7f"),
                max_size=6)
_NUMBER = st.integers() | st.integers(-2**80, 2**80) | st.floats() | st.sampled_from(
    [1e300, -0.0, 5e-324, 1.7976931348623157e308, 1e16, 2**63, -2**63 - 1])
_KEY = _TEXT | st.integers(-3, 3) | st.booleans() | st.none()
_REFUSED = st.sampled_from([float("nan"), float("-inf"), "\x00", "\udfff", {"\ud800": 0}])
_VALUE = st.recursive(
    st.none() | st.booleans() | _NUMBER | _TEXT | _REFUSED,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner)
    | st.dictionaries(_KEY, inner, max_size=4),
    max_leaves=24,
)


def _as_json(value: Any) -> Any:
    """The JSON meaning of ``value``: numbers by their decimal value (PostgreSQL's jsonb keeps
    a number, not its spelling: ``1e+300`` comes back as the integer ``10**300``)."""
    return json.loads(json.dumps(value), parse_float=Decimal, parse_int=Decimal)


async def test_what_the_check_accepts_every_store_keeps_and_gives_back(
    make_app: AppFactory,
) -> None:
    """Random values, run through a real worker: each is a step's result, an event's data,
    the thread's values and the run's output; what the check accepts reads back equal (as
    JSON) from every one, and what it refuses fails the run without writing it."""
    app = make_app()
    values: dict[str, Any] = {}

    @app.workflow("writes")
    async def writes(ctx: Context, key: str) -> Any:
        value = values[key]
        await ctx.step("result", lambda: value)
        await ctx.emit("custom", value)
        await ctx.emit("values", value)
        return value

    accepted: list[Any] = []
    refused: list[Any] = []

    async def round_trip(value: Any) -> None:
        key = str(len(values))
        values[key] = value
        thread = await app.threads.create()
        run = await app.runs.create(thread.thread_id, "writes", key)
        ended = await _finished(app, run.run_id)
        try:
            limits.check_result("value", value)
        except InvalidInput:
            refused.append(value)
            assert ended.status is RunStatus.ERROR, ended
            assert await app.runs.steps(run.run_id) == []
            await _readable(app, run.run_id, thread.thread_id)
            return
        accepted.append(value)
        expected = _as_json(value)
        assert _as_json(ended) == expected
        [step] = await app.runs.steps(run.run_id)
        assert _as_json(step.result) == expected
        data = {e.event: e.data for e in await app.runs.events(run.run_id)}
        assert _as_json(data["custom"]) == expected
        assert _as_json(data["values"]) == expected
        assert _as_json((await app.threads.get(thread.thread_id)).values) == expected
        assert _as_json((await app.runs.get(run.run_id)).output) == expected
        await _readable(app, run.run_id, thread.thread_id)

    loop = asyncio.get_running_loop()

    @settings(max_examples=200, deadline=None, derandomize=True, database=None)
    @given(_VALUE)
    def check(value: Any) -> None:
        asyncio.run_coroutine_threadsafe(round_trip(value), loop).result(timeout=60)

    async with app:
        await asyncio.to_thread(check)
    assert len(accepted) > 100 and len(refused) > 20, (len(accepted), len(refused))


async def test_an_outcome_the_store_refuses_ends_the_run_error_not_a_rerun(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A value past the checks (here slipped in under them, between the check and the
    write) meets the database's own refusal: PostgreSQL refuses ``\\u0000`` in jsonb, and
    neither driver encodes a lone surrogate. The run ends ``error`` saying so, at once and
    on its first attempt, instead of waiting for its lease to expire to run again."""
    app = make_app(max_attempts=3)
    attempts: list[int] = []

    @app.workflow("slips_past")
    async def slips_past(ctx: Context, input: Any) -> Any:
        attempts.append(ctx.attempt)
        return {"fine": True}

    async with app:
        store = app.store
        real_finish = store.finish_run
        sent: list[Any] = []

        async def finish_run(lease: Any, status: Any, output: Any, *args: Any) -> bool:
            if output == {"fine": True}:
                output = {"fine": "\x00\ud800"}
            sent.append(output)
            return await real_finish(lease, status, output, *args)

        monkeypatch.setattr(store, "finish_run", finish_run)
        thread = await app.threads.create()
        run = await app.runs.create(thread.thread_id, "slips_past")
        ended = await _finished(app, run.run_id)
        assert ended.status is RunStatus.ERROR
        assert ended.error.startswith("the store refused the run's success outcome: "), \
            ended.error
        assert ended.output is None and attempts == [1]
        assert sent == [{"fine": "\x00\ud800"}, None]
        events = [e.event for e in await app.runs.events(run.run_id)]
        assert events == ["run:created", "run:start", "run:fail"], events
        await _readable(app, run.run_id, thread.thread_id)


async def test_a_step_result_the_store_refuses_fails_the_step_and_it_runs_again(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for a step's result: the refusal fails the step (``step:fail``, no index
    taken), the workflow sees it at ``ctx.step`` and may go on; nothing waits for a lease."""
    app = make_app(max_attempts=3)
    attempts: list[int] = []
    seen: list[BaseException] = []

    @app.workflow("step_slips_past")
    async def step_slips_past(ctx: Context, input: Any) -> Any:
        attempts.append(ctx.attempt)
        try:
            await ctx.step("produce", lambda: {"fine": True})
        except Exception as exc:
            seen.append(exc)
        return await ctx.step("produce", lambda: {"fine": "again"})

    async with app:
        store = app.store
        real_complete = store.complete_step
        slipped: list[bool] = []

        async def complete_step(lease: Any, index: int, name: str, result: Any,
                                *args: Any) -> bool:
            if result == {"fine": True}:
                slipped.append(True)
                result = {"fine": "\x00\ud800"}
            return await real_complete(lease, index, name, result, *args)

        monkeypatch.setattr(store, "complete_step", complete_step)
        run = await app.runs.create(None, "step_slips_past")
        assert await _finished(app, run.run_id) == {"fine": "again"}
        assert slipped == [True] and attempts == [1]
        [refusal] = seen
        assert not isinstance(refusal, RuntimeError), refusal  # not "steps overlap"
        steps = await app.runs.steps(run.run_id)
        assert [(s.index, s.name, s.result) for s in steps] == [(0, "produce", {"fine": "again"})]
        events = [(e.event, (e.data or {}).get("index")) for e in
                  await app.runs.events(run.run_id) if e.event.startswith("step:")]
        assert events == [("step:start", 0), ("step:fail", 0), ("step:start", 0),
                          ("step:complete", 0)], events


async def test_an_output_at_the_size_bound_is_stored_and_one_past_it_is_refused(
    make_app: AppFactory,
) -> None:
    app = make_app()
    # a JSON string of n characters encodes in n + 2 bytes
    sizes = {"at": limits.MAX_RESULT_BYTES - 2, "past": limits.MAX_RESULT_BYTES - 1}

    @app.workflow("big")
    async def big(ctx: Context, input: str) -> str:
        return "x" * sizes[input]

    async with app:
        at = await app.runs.create(None, "big", "at")
        assert await _finished(app, at.run_id) == "x" * sizes["at"]
        past = await app.runs.create(None, "big", "past")
        ended = await _finished(app, past.run_id)
        assert ended.status is RunStatus.ERROR
        assert ended.error == (f"the workflow's output cannot be stored: output is larger than "
                               f"{limits.MAX_RESULT_BYTES} bytes encoded as JSON "
                               f"({limits.MAX_RESULT_BYTES + 1})")


async def test_an_event_the_store_refuses_raises_at_the_emit_and_the_run_goes_on(
    make_app: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event's refused write is the workflow's to handle at ``ctx.emit``: nothing is
    written and nothing waits for a lease."""
    app = make_app(max_attempts=3)
    attempts: list[int] = []

    @app.workflow("emit_slips_past")
    async def emit_slips_past(ctx: Context, input: Any) -> Any:
        attempts.append(ctx.attempt)
        try:
            await ctx.emit("custom", {"fine": True})
        except Exception as exc:
            return {"refused": type(exc).__name__}
        return {"refused": None}

    async with app:
        store = app.store
        real_append = store.append_event

        async def append_event(run_id: str, event: str, data: Any, *args: Any,
                               **kwargs: Any) -> bool:
            if data == {"fine": True}:
                data = {"fine": "\x00\ud800"}
            return await real_append(run_id, event, data, *args, **kwargs)

        monkeypatch.setattr(store, "append_event", append_event)
        run = await app.runs.create(None, "emit_slips_past")
        out = await _finished(app, run.run_id)
        assert out["refused"] is not None and attempts == [1], out
        events = [e.event for e in await app.runs.events(run.run_id)]
        assert events == ["run:created", "run:start", "run:complete"], events
