"""Row decoding and the decisions both stores make inside their transactions.

Both stores keep JSON as text and time as epoch seconds, so one decoder serves
both; any row that reads a column by name will do (:class:`Row`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from runplane.errors import ThreadNotFound
from runplane.lifecycle import EventName
from runplane.limits import MAX_METADATA_BYTES, check_json
from runplane.models import (
    FINISHED,
    CancelAction,
    CancelRequest,
    Event,
    MultitaskStrategy,
    NewRun,
    Run,
    RunStatus,
    Step,
    Thread,
    ThreadStatus,
    to_datetime,
)


class Row(Protocol):
    """A stored row as the decoders read it: ``sqlite3.Row`` and ``asyncpg.Record`` alike
    (neither is a ``Mapping``)."""

    def __getitem__(self, column: str, /) -> Any: ...


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def cancel_event(request: CancelRequest, from_status: RunStatus) -> dict[str, Any]:
    return {
        "action": request.action.value,
        "reason": request.reason,
        "requested_by": request.requested_by,
        "from_status": from_status.value,
    }


#: Seconds between the cancels of one sweep, so the log shows children before parents
#: (ten microseconds: times are read back rounded to the microsecond).
SWEEP_TICK = 1e-5


def sweep_order(tree: list[Run], run_id: str, *, whole_tree: bool) -> list[str]:
    """The run ids a cancel sweeps, leaves first: ``run_id`` and its descendants, or every
    run of ``tree`` (the runs sharing a root, in creation order). A finished run cancelled
    on its own is a conflict that changes nothing, its descendants included."""
    by_id = {run.run_id: run for run in tree}
    if not whole_tree and by_id[run_id].status in FINISHED:
        return [run_id]
    children: dict[str | None, list[str]] = {}
    for run in tree:
        children.setdefault(run.parent_run_id, []).append(run.run_id)
    start = by_id[run_id].root_run_id if whole_tree else run_id
    depth: dict[str, int] = {}
    stack = [(start, 0)]
    while stack:
        current, level = stack.pop()
        if current in depth or current not in by_id:
            continue
        depth[current] = level
        stack.extend((child, level + 1) for child in children.get(current, []))
    seq = {run.run_id: k for k, run in enumerate(tree)}
    return sorted(depth, key=lambda r: (-depth[r], seq[r]))


def spawned_under_cancel(parent: Run) -> CancelRequest:
    """The cancel a child gets when its parent was cancelled while spawning it."""
    return CancelRequest(action=parent.cancel_action or CancelAction.INTERRUPT,
                         reason=f"parent run {parent.run_id} was cancelled",
                         requested_by="cascade")


def spawned_by(new: NewRun, holder: Run) -> NewRun:
    """``new`` as spawned by the run ``holder``: its owner's, so a tree has one owner."""
    return dataclasses.replace(new, owner=holder.owner)


def thread_run(new: NewRun, thread_owner: str | None, own_thread_only: bool) -> NewRun:
    """``new`` as created on an existing thread: it gets the thread's owner (a thread's runs
    are its owner's, whoever started them). ``own_thread_only``: a thread of another owner
    is not found."""
    if own_thread_only and thread_owner != new.owner:
        raise ThreadNotFound(new.thread_id or "")
    return dataclasses.replace(new, owner=thread_owner)


def merge_metadata(stored: str | None, changes: dict[str, Any]) -> dict[str, Any]:
    """A thread's metadata after an update: the given top-level keys replace the stored.
    Raises InvalidInput (in the update's transaction: nothing is written) if the merged
    metadata outgrew MAX_METADATA_BYTES."""
    merged = {**(loads(stored) or {}), **changes}
    return check_json("metadata", merged, MAX_METADATA_BYTES)


def delete_conflict(run: Run) -> str:
    return (f"run {run.run_id!r} is {run.status.value}; cancel it before deleting it "
            "(only a finished or interrupted run can be deleted)")


def reap_decision(
    attempt: int, max_attempts: int, deadline_at: float | None, now: float
) -> tuple[RunStatus, str | None, EventName]:
    """What becomes of a running run whose lease expired: (status, error, event name)."""
    if deadline_at is not None and deadline_at <= now:
        return RunStatus.TIMEOUT, "run timed out while its worker was lost", EventName.RUN_TIMEOUT
    if attempt >= max_attempts:
        error = f"worker lease expired on attempt {attempt} of {max_attempts}"
        return RunStatus.ERROR, error, EventName.RUN_FAIL
    return RunStatus.PENDING, None, EventName.RUN_RESUME


T = TypeVar("T")


class BadRow(Exception):
    """A stored row that cannot be decoded: written by an older version or by hand (a
    timeout whose deadline is no datetime, text that is no JSON)."""


#: What a value out of range in a row makes decoding raise (datetime.fromtimestamp alone
#: raises ValueError, OverflowError or OSError, by how far out of range).
_DECODING = (ValueError, TypeError, OverflowError, OSError)
#: What claiming a run raises for a bad row: that run cannot start, and is ended ``error``
#: so that the runs behind it can. A bug elsewhere stays a bug.
BAD_ROW_ERRORS: tuple[type[Exception], ...] = (BadRow,)


def unclaimable_error(exc: Exception) -> str:
    """The ``error`` of a run ended because its row could not be claimed."""
    return f"run could not be started, its stored row is invalid: {type(exc).__name__}: {exc}"


def _decoded(kind: str, row: Row, decode: Callable[[Row], T]) -> T:
    try:
        return decode(row)
    except _DECODING as exc:
        raise BadRow(f"{kind} of run {row['run_id']!r}: {type(exc).__name__}: {exc}") from exc


def run_from_row(row: Row) -> Run:
    return _decoded("the row", row, _run_from_row)


def _run_from_row(row: Row) -> Run:
    action = row["cancel_action"]
    return Run(
        run_id=row["run_id"],
        thread_id=row["thread_id"],
        assistant_id=row["assistant_id"],
        status=RunStatus(row["status"]),
        input=loads(row["input"]),
        output=loads(row["output"]),
        error=row["error"],
        metadata=loads(row["metadata"]),
        multitask_strategy=MultitaskStrategy(row["multitask_strategy"]),
        created_at=to_datetime(row["created_at"]),
        updated_at=to_datetime(row["updated_at"]),
        started_at=to_datetime(row["started_at"]),
        ended_at=to_datetime(row["ended_at"]),
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        timeout=row["timeout"],
        deadline_at=to_datetime(row["deadline_at"]),
        lease_owner=row["lease_owner"],
        lease_generation=row["lease_generation"],
        lease_expires_at=to_datetime(row["lease_expires_at"]),
        step_index=row["step_index"],
        cancel_requested_at=to_datetime(row["cancel_requested_at"]),
        cancel_reason=row["cancel_reason"],
        cancel_action=CancelAction(action) if action else None,
        cancel_requested_by=row["cancel_requested_by"],
        cancelled_generation=row["cancelled_generation"],
        root_run_id=row["root_run_id"],
        parent_run_id=row["parent_run_id"],
        traceback=row["traceback"],
        owner=row["owner"],
    )


#: A thread's status in SQL, over the columns ``busy`` and ``last_status`` of the stores'
#: thread query (the same rule as :func:`thread_status`, for filtering and sorting).
THREAD_STATUS_SQL = """
CASE WHEN busy THEN 'busy'
     WHEN last_status = 'interrupted' THEN 'interrupted'
     WHEN last_status IN ('error', 'timeout') THEN 'error'
     ELSE 'idle' END
"""


def thread_status(busy: int, last_status: str | None) -> ThreadStatus:
    if busy:
        return ThreadStatus.BUSY
    if last_status == RunStatus.INTERRUPTED:
        return ThreadStatus.INTERRUPTED
    if last_status in (RunStatus.ERROR, RunStatus.TIMEOUT):
        return ThreadStatus.ERROR
    return ThreadStatus.IDLE


def thread_from_row(row: Row) -> Thread:
    return Thread(
        thread_id=row["thread_id"],
        created_at=to_datetime(row["created_at"]),
        updated_at=to_datetime(row["updated_at"]),
        metadata=loads(row["metadata"]),
        values=loads(row["values_json"]),
        status=thread_status(row["busy"], row["last_status"]),
        owner=row["owner"],
    )


def step_from_row(row: Row) -> Step:
    return _decoded("a step", row, _step_from_row)


def _step_from_row(row: Row) -> Step:
    return Step(
        run_id=row["run_id"],
        index=row["idx"],
        name=row["name"],
        result=loads(row["result"]),
        created_at=to_datetime(row["created_at"]),
    )


def event_from_row(row: Row) -> Event:
    return Event(
        run_id=row["run_id"],
        seq=row["seq"],
        event=row["event"],
        data=loads(row["data"]),
        created_at=to_datetime(row["created_at"]),
    )
