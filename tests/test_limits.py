"""Input bounds: a value outside runplane.limits is refused with InvalidInput (a ValueError
naming the field) before anything is written, on both stores."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from runplane import Context, Runplane, limits
from runplane.errors import InvalidInput
from runplane.models import RunStatus
from runplane.service import RunService

from support import AppFactory


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


# --------------------------------------------------------------------------- #
# the checks themselves                                                       #
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("value", "message"), [
    (nested(limits.MAX_JSON_DEPTH + 1), "input is nested deeper than 64 levels"),
    ({"a": [1, {"b c": float("nan")}]}, "input.a[1]['b c'] is NaN, not a JSON number"),
    ({"a": float("-inf")}, "input.a is Infinity, not a JSON number"),
    ({"a": "x\x00y"}, "input.a contains \\u0000"),
    ({"a": {"\ud800": 1}}, "input.a has a key that contains an unpaired surrogate (\\ud800)"),
    (["ok", "\udfff"], "input[1] contains an unpaired surrogate (\\udfff)"),
    ({"a": {1, 2}}, "input is not JSON-serialisable"),
    ("x" * 100, "input is larger than 64 bytes encoded as JSON (102)"),
])
def test_a_json_value_out_of_bounds_is_refused_naming_where(value: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as err:
        limits.check_json("input", value, 64)
    assert err.value.field == "input"
    assert message in str(err.value)
    assert isinstance(err.value, ValueError)


def test_values_within_bounds_pass_unchanged() -> None:
    value = {"deep": nested(limits.MAX_JSON_DEPTH - 1), "text": "naïve 😀 \t\n", "n": 1e300}
    assert limits.check_json("input", value, limits.MAX_INPUT_BYTES) is value
    assert limits.check_id("run_id", "a" * limits.MAX_ID_LENGTH) == "a" * limits.MAX_ID_LENGTH
    assert limits.check_timeout("timeout", limits.MAX_TIMEOUT_SECONDS) == limits.MAX_TIMEOUT_SECONDS
    assert limits.check_int("limit", limits.MAX_LIMIT, 0, limits.MAX_LIMIT) == limits.MAX_LIMIT


@pytest.mark.parametrize(("value", "message"), [
    ("", "run_id must not be empty"),
    ("x" * 20_000, "run_id is longer than 256 characters (20000)"),
    ("a\x00b", "run_id contains \\u0000"),
    ("a\ud800", "run_id contains an unpaired surrogate"),
    ("a\nb", "run_id contains non-printable characters"),
    (7, "run_id must be a string, got int"),
])
def test_an_id_is_short_printable_text(value: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=r"^run_id") as err:
        limits.check_id("run_id", value)
    assert message in str(err.value)


def test_the_largest_accepted_value_serialises_in_a_response() -> None:
    """What the HTTP layer does to a run body: FastAPI's serialiser (its depth limit is about
    250) and starlette's JSON encoder. The deepest accepted input, wrapped as a listing wraps
    it, and wrapped again by a workflow's output, still goes through both with margin."""
    from fastapi.encoders import jsonable_encoder
    from pydantic import TypeAdapter
    from starlette.responses import JSONResponse

    deepest = nested(limits.MAX_JSON_DEPTH - 1)
    limits.check_json("input", deepest, limits.MAX_INPUT_BYTES)
    wrapped = [{"kwargs": {"input": nested(limits.MAX_JSON_DEPTH, deepest)}}]
    TypeAdapter(list[dict[str, Any]]).dump_json(wrapped)
    JSONResponse(jsonable_encoder(wrapped))


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
