"""The bounds of runplane.limits as functions: what a value may be (depth, size, numbers,
text), what an id may be, and that what the checks accept serialises in a response and
fits every store."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from fastapi.encoders import jsonable_encoder
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter
from starlette.responses import JSONResponse

from runplane import InvalidInput, limits

from support import nested


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
    deepest = nested(limits.MAX_JSON_DEPTH - 1)
    limits.check_json("input", deepest, limits.MAX_INPUT_BYTES)
    wrapped = [{"kwargs": {"input": nested(limits.MAX_JSON_DEPTH, deepest)}}]
    TypeAdapter(list[dict[str, Any]]).dump_json(wrapped)
    JSONResponse(jsonable_encoder(wrapped))


_ANY_TEXT = st.text(st.characters() | st.sampled_from("\x00\ud800\udfff"), max_size=8)


_JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_ANY_TEXT, inner, max_size=4),
    max_leaves=20,
)


def _storable(value: Any) -> bool:
    """The reference rule: finite numbers, no NUL or surrogate in any string or key."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return not any(c == "\x00" or "\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    return True


@settings(max_examples=300, deadline=None)
@given(_JSON_LIKE)
def test_what_the_check_accepts_is_exactly_what_stores_and_responses_carry(value: Any) -> None:
    try:
        limits.check_json("input", value, limits.MAX_INPUT_BYTES)
    except InvalidInput as exc:
        assert exc.field == "input"
        assert not _storable(value)
        return
    assert _storable(value)
    encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
    assert "\\u0000" not in encoded  # PostgreSQL's jsonb refuses it
    assert json.loads(encoded.encode().decode()) == value
    TypeAdapter(list[dict[str, Any]]).dump_json([{"kwargs": {"input": value}}])


def test_a_result_may_wrap_the_deepest_input_and_still_serialise_in_a_response() -> None:
    deepest_input = nested(limits.MAX_JSON_DEPTH)
    limits.check_json("input", deepest_input, limits.MAX_INPUT_BYTES)
    limits.check_result("output", {"echo": deepest_input})
    deepest_result = nested(limits.MAX_RESULT_DEPTH)
    limits.check_result("output", deepest_result)
    with pytest.raises(InvalidInput, match="output is nested deeper than 128 levels"):
        limits.check_result("output", [deepest_result])
    wrapped = [{"values": {"output": deepest_result}}]
    TypeAdapter(list[dict[str, Any]]).dump_json(wrapped)
    JSONResponse(jsonable_encoder(wrapped))


def test_text_a_run_must_record_is_made_storable_not_refused() -> None:
    assert limits.storable_text("a\x00b\ud800c 😀") == "a\\u0000b\\ud800c 😀"
    assert limits.storable_text("plain") == "plain"
