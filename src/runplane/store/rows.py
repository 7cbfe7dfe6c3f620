"""Row decoding: stored rows into the package's records.

Both stores keep JSON as text and time as epoch seconds, so one decoder serves
both; any row that reads a column by name will do (:class:`Row`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from runplane.models import (
    AssistantRecord,
    CancelAction,
    CheckpointWrite,
    Cron,
    Event,
    MultitaskStrategy,
    Run,
    RunStatus,
    Step,
    StoredCheckpoint,
    StoredItem,
    Thread,
    ThreadStatus,
    ThreadTTL,
    WebhookDelivery,
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


def thread_values(values: Any) -> Any:
    """What a ``values`` event or a run's output leaves as its thread's values: pending
    interrupts (``__interrupt__``) are the stream's and the run output's, not the thread's
    state (``values`` itself when there is none; None, the values unchanged, when there is
    nothing else: a paused workflow's output, a graph's interrupt-only ``values`` chunk)."""
    if isinstance(values, dict) and "__interrupt__" in values:
        return {k: v for k, v in values.items() if k != "__interrupt__"} or None
    return values


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
        kwargs={} if row["kwargs"] == "{}" else loads(row["kwargs"]),  # a workflow's: none
        not_before=to_datetime(row["not_before"]),
        seq=row["seq"],
        workflow=row["workflow"] or row["assistant_id"],
    )


def assistant_from_row(row: Row) -> AssistantRecord:
    """An assistant (``get_assistant``: its current version) or one of its versions
    (``assistant_versions``: no owner, updated when it was made)."""
    return AssistantRecord(
        assistant_id=row["assistant_id"],
        graph_id=row["graph_id"],
        name=row["name"],
        description=row["description"],
        config=loads(row["config"]),
        context=loads(row["context"]),
        metadata=loads(row["metadata"]),
        version=row["version"],
        created_at=to_datetime(row["created_at"]),
        updated_at=to_datetime(row["updated_at"]),
        owner=row["owner"],
    )


def thread_status(busy: int, last_status: str | None, paused: bool = False) -> ThreadStatus:
    """A thread is busy while it has an active run, interrupted while its graph waits at
    an interrupt or a breakpoint (``paused``), else as its last run ended (the same rule
    as ``threads_with_status`` in the stores' SQL, which search filters on)."""
    if busy:
        return ThreadStatus.BUSY
    if paused or last_status == RunStatus.INTERRUPTED:
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
        status=thread_status(row["busy"], row["last_status"], row["interrupts"] is not None),
        interrupts=loads(row["interrupts"]),
        owner=row["owner"],
        ttl=None if row["ttl_minutes"] is None else ThreadTTL(
            row["ttl_strategy"], row["ttl_minutes"], to_datetime(row["expires_at"])),
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


def checkpoint_write_from_row(row: Row) -> CheckpointWrite:
    return CheckpointWrite(task_id=row["task_id"], idx=row["idx"], channel=row["channel"],
                           type=row["type"], value=bytes(row["value"]),
                           task_path=row["task_path"])


def checkpoint_from_row(row: Row, writes: tuple[CheckpointWrite, ...]) -> StoredCheckpoint:
    return StoredCheckpoint(
        thread_id=row["thread_id"], checkpoint_ns=row["checkpoint_ns"],
        checkpoint_id=row["checkpoint_id"], parent_checkpoint_id=row["parent_checkpoint_id"],
        run_id=row["run_id"], type=row["type"], checkpoint=bytes(row["checkpoint"]),
        metadata=row["metadata"], writes=writes)


def item_from_row(row: Row) -> StoredItem:
    return StoredItem(
        namespace=tuple(row["namespace"].split(".")),
        key=row["key"],
        value=loads(row["value"]),
        created_at=to_datetime(row["created_at"]),
        updated_at=to_datetime(row["updated_at"]),
        ttl_minutes=row["ttl_minutes"],
    )


def cron_from_row(row: Row) -> Cron:
    return Cron(
        cron_id=row["cron_id"],
        assistant_id=row["assistant_id"],
        thread_id=row["thread_id"],
        schedule=row["schedule"],
        timezone=row["timezone"],
        payload=loads(row["payload"]),
        metadata=loads(row["metadata"]),
        end_time=to_datetime(row["end_time"]),
        enabled=bool(row["enabled"]),
        next_run_at=to_datetime(row["next_run_at"]),
        owner=row["owner"],
        created_at=to_datetime(row["created_at"]),
        updated_at=to_datetime(row["updated_at"]),
    )


def webhook_from_row(row: Row) -> WebhookDelivery:
    return WebhookDelivery(
        delivery_id=row["delivery_id"],
        run_id=row["run_id"],
        url=row["url"],
        run_status=row["run_status"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=to_datetime(row["next_attempt_at"]),
        last_error=row["last_error"],
        created_at=to_datetime(row["created_at"]),
        delivered_at=to_datetime(row["delivered_at"]),
    )
