"""The bounds of what runplane accepts, and the checks that hold input to them.

Whatever is accepted must be storable by both stores, readable back through
every adapter (FastAPI serialises responses with a depth limit of about 250
and ``allow_nan=False``), and usable by the worker (a deadline must be a valid
datetime). The RunService runs these checks on everything it is handed before
any store call, so a refused value leaves nothing written; the HTTP wire
models repeat the numeric bounds so that OpenAPI shows them. What a workflow
writes (step results, events, its output, a child's input) passes the same
checks in the worker before its write: one stored value no response can carry
would break every later read of the run, its thread and the run listings.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from runplane.errors import InvalidInput

#: Deepest nesting of arrays and objects in input and metadata: well under the ~250
#: levels the response serialiser handles, with room for what wraps a value on its way
#: back (run body, ``kwargs``, a workflow's output around its input, stream events).
MAX_JSON_DEPTH = 64
#: Largest JSON encoding (UTF-8 bytes) of a run's input.
MAX_INPUT_BYTES = 8 << 20
#: Deepest nesting of what a workflow writes: a step's result, an event's data (``values``
#: become the thread's values), the run's output. Twice the input's: a result often wraps
#: its input (``{"echo": input}``, a state that keeps the input's messages), and even the
#: deepest, wrapped again by a response, stays well under the serialiser's ~250 levels.
MAX_RESULT_DEPTH = 2 * MAX_JSON_DEPTH
#: Largest JSON encoding of what a workflow writes, for the same reason twice the input's.
MAX_RESULT_BYTES = 2 * MAX_INPUT_BYTES
#: Largest JSON encoding of a thread's or run's metadata (also of a thread after an update).
MAX_METADATA_BYTES = 64 << 10
#: Longest thread or run id; ids are printable text (no control characters).
MAX_ID_LENGTH = 256
#: Longest free text stored with a run (a cancel's reason, who asked).
MAX_TEXT_LENGTH = 4096
#: Longest per-run ``timeout`` (a year): the deadline it sets is always a valid datetime.
MAX_TIMEOUT_SECONDS = 366 * 24 * 3600
#: Largest per-run ``max_attempts`` (claims before a run ends ``error``).
MAX_ATTEMPTS = 1000
#: Largest page (``limit``) of a listing or search, and most ids one call may name.
MAX_LIMIT = 1000
#: Largest ``offset`` of a listing or search (a 32-bit integer).
MAX_OFFSET = 2**31 - 1

#: Largest event sequence number a reader may resume after (a 64-bit integer).
MAX_SEQ = 2**63 - 1
#: An assistant's version number (a 32-bit column).
MAX_VERSION = 2**31 - 1

#: What no stored string may hold: NUL (PostgreSQL text and jsonb refuse it) and lone
#: surrogates (they have no UTF-8 encoding, so no response could carry them).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _refuse(field: str, problem: str, where: str = "") -> InvalidInput:
    return InvalidInput(field, f"{field}{where} {problem}")


def _bad_chars(text: str) -> str | None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    char = found.group()
    return "contains \\u0000" if char == "\x00" else \
        f"contains an unpaired surrogate (\\u{ord(char):04x})"


def check_id(field: str, value: Any) -> str:
    """An id: a non-empty printable string of at most MAX_ID_LENGTH characters."""
    if not isinstance(value, str):
        raise _refuse(field, f"must be a string, got {type(value).__name__}")
    if not value:
        raise _refuse(field, "must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise _refuse(field, f"is longer than {MAX_ID_LENGTH} characters ({len(value)})")
    if not value.isprintable():
        raise _refuse(field, _bad_chars(value) or "contains non-printable characters")
    return value


def check_ids(field: str, values: Any) -> list[str]:
    if not isinstance(values, list | tuple):
        raise _refuse(field, f"must be a list of ids, got {type(values).__name__}")
    if len(values) > MAX_LIMIT:
        raise _refuse(field, f"names more than {MAX_LIMIT} ids ({len(values)})")
    return [check_id(f"{field}[{k}]", v) for k, v in enumerate(values)]


def check_text(field: str, value: Any, max_length: int = MAX_TEXT_LENGTH) -> str | None:
    """Free text (None allowed): storable characters, at most ``max_length`` of them."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _refuse(field, f"must be a string, got {type(value).__name__}")
    if len(value) > max_length:
        raise _refuse(field, f"is longer than {max_length} characters ({len(value)})")
    problem = _bad_chars(value)
    if problem:
        raise _refuse(field, problem)
    return value


def check_choice(field: str, value: Any, allowed: Sequence[str]) -> Any:
    """One of ``allowed``; the error names them all."""
    if value not in allowed:
        raise InvalidInput(field, f"invalid {field} {value!r}; allowed values: "
                                  f"{', '.join(map(repr, allowed))}")
    return value


def check_int(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse(field, f"must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise _refuse(field, f"must be >= {low} and <= {high}, got {value}")
    return value


def check_timeout(field: str, value: Any) -> float | None:
    """Seconds (None: no timeout): finite, > 0 and at most MAX_TIMEOUT_SECONDS."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refuse(field, f"must be a number of seconds, got {type(value).__name__}")
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT_SECONDS):
        raise _refuse(field, f"must be a positive number of seconds, at most "
                             f"{MAX_TIMEOUT_SECONDS}, got {value!r}")
    return float(value)


def check_json(field: str, value: Any, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """A JSON value both stores keep and every response can carry back: nested at most
    ``max_depth`` levels, finite numbers, strings (keys too) free of NUL and lone
    surrogates, encoded in at most ``max_bytes`` bytes."""
    found = _first_problem(value, 0, max_depth)
    if found is not None:
        problem, where = found
        raise _refuse(field, problem, "".join(reversed(where or [])))
    try:
        encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise _refuse(field, f"is not JSON-serialisable: {exc}") from None
    size = len(encoded.encode())
    if size > max_bytes:
        raise _refuse(field, f"is larger than {max_bytes} bytes encoded as JSON ({size})")
    return value


def check_result(field: str, value: Any) -> Any:
    """What a workflow writes: storable like input, with room to wrap its input."""
    return check_json(field, value, MAX_RESULT_BYTES, MAX_RESULT_DEPTH)


def storable_text(text: str) -> str:
    """``text`` with what no store keeps (NUL, lone surrogates) written as ``\\uXXXX``: for
    text a run must record whatever it holds (an exception's message, a traceback), where
    refusing would lose the outcome and a refused write would leave the run to its lease."""
    return _UNSTORABLE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _first_problem(
    value: Any, depth: int, max_depth: int
) -> tuple[str, list[str] | None] | None:
    """What is wrong with ``value``, and where (path steps, innermost first; None where
    the path would be as long as the nesting is deep)."""
    if isinstance(value, str):
        problem = _bad_chars(value)
        return None if problem is None else (problem, [])
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"is {'NaN' if math.isnan(value) else 'Infinity'}, not a JSON number", []
    if not isinstance(value, dict | list | tuple):
        return None
    if depth >= max_depth:
        return f"is nested deeper than {max_depth} levels", None
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if isinstance(key, str) and (problem := _bad_chars(key)) is not None:
            return f"has a key that {problem}", []
        found = _first_problem(item, depth + 1, max_depth)
        if found is not None:
            if found[1] is None:
                return found
            step = f".{key}" if isinstance(key, str) and _NAME.fullmatch(key) else f"[{key!r}]"
            found[1].append(step)
            return found
    return None
