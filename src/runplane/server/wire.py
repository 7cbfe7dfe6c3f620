"""The LangGraph Agent Server wire format: request bodies in, JSON bodies out.

Field names follow the ``langgraph_sdk`` client. Request models ignore fields
that only tune LangGraph internals (``config``, ``durability``, ...), and refuse,
with a 422 naming the field, those whose meaning runplane cannot honour
(``command``, ``checkpoint``, ``webhook``, ...), so that nothing is silently lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from runplane.limits import (
    MAX_ATTEMPTS,
    MAX_ID_LENGTH,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_TIMEOUT_SECONDS,
)
from runplane.models import CancelResult, Run, RunNode, RunStatus, Thread

#: Run-creation fields runplane does not implement; sending one is an error, not a no-op.
UNSUPPORTED_RUN_FIELDS = (
    "command", "checkpoint", "checkpoint_id", "interrupt_before", "interrupt_after",
    "webhook", "after_seconds",
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


#: Bounds of the RunService (runplane.limits), repeated here so that OpenAPI shows them.
Id = Annotated[str, Field(max_length=MAX_ID_LENGTH)]
Limit = Annotated[int, Field(ge=0, le=MAX_LIMIT)]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]


class ThreadCreate(_Body):
    thread_id: Id | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"


class ThreadUpdate(_Body):
    metadata: dict[str, Any] | None = None


class ThreadSearch(_Body):
    metadata: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    ids: list[Id] | None = Field(None, max_length=MAX_LIMIT)
    status: Literal["idle", "busy", "interrupted", "error"] | None = None
    limit: Limit = 10
    offset: Offset = 0
    sort_by: Literal["thread_id", "status", "created_at", "updated_at"] = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"

    @model_validator(mode="after")
    def _no_values_filter(self) -> ThreadSearch:
        if self.values:
            raise ValueError("filtering threads by 'values' is not supported; use 'metadata'")
        return self


class ThreadCount(ThreadSearch):
    pass


class AssistantSearch(_Body):
    graph_id: str | None = None
    name: str | None = None
    metadata: dict[str, Any] | None = None
    limit: Limit = 10
    offset: Offset = 0


class RunCreate(_Body):
    assistant_id: str
    input: Any = None
    metadata: dict[str, Any] | None = None
    multitask_strategy: str | None = None
    if_not_exists: str | None = None
    on_disconnect: Literal["cancel", "continue"] | None = None
    stream_mode: str | list[str] | None = None
    #: runplane extensions: seconds before the run ends ``timeout``; claims before ``error``
    timeout: float | None = Field(None, gt=0, le=MAX_TIMEOUT_SECONDS, allow_inf_nan=False)
    max_attempts: int | None = Field(None, ge=1, le=MAX_ATTEMPTS)
    # accepted with no effect (the model ignores other unknown fields too: durability,
    # stream_resumable, ...; runplane streams are always resumable, every step checkpointed)
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    # refused when given: see UNSUPPORTED_RUN_FIELDS
    command: Any = None
    checkpoint: Any = None
    checkpoint_id: Any = None
    interrupt_before: Any = None
    interrupt_after: Any = None
    webhook: Any = None
    after_seconds: Any = None

    @model_validator(mode="after")
    def _refuse_unsupported(self) -> RunCreate:
        given = [name for name in UNSUPPORTED_RUN_FIELDS if getattr(self, name)]
        if given:
            raise ValueError(f"not supported by runplane: {', '.join(given)}")
        return self

    def stream_modes(self) -> list[str]:
        return stream_modes(self.stream_mode)


class BulkCancel(_Body):
    run_ids: list[Id] | None = Field(None, max_length=MAX_LIMIT)
    thread_id: Id | None = None
    status: Literal["pending", "running", "all"] | None = None


def stream_modes(requested: str | list[str] | None) -> list[str]:
    """The SDK's ``stream_mode`` as a list; nothing (or an empty value) means ``values``."""
    if isinstance(requested, str):
        requested = [requested]
    modes = [m for m in requested or [] if m]
    return list(dict.fromkeys(modes)) or ["values"]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def run_body(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "thread_id": run.thread_id,
        "assistant_id": run.assistant_id,
        "created_at": _iso(run.created_at),
        "updated_at": _iso(run.updated_at),
        "status": run.status.value,
        "metadata": run.metadata,
        "multitask_strategy": run.multitask_strategy.value,
        "kwargs": {"input": run.input},
        "started_at": _iso(run.started_at),
        "ended_at": _iso(run.ended_at),
        "attempt": run.attempt,
        "max_attempts": run.max_attempts,
        "timeout": run.timeout,
        "error": run.error,
        "cancel_reason": run.cancel_reason,
        "cancel_action": run.cancel_action.value if run.cancel_action else None,
        "cancel_requested_at": _iso(run.cancel_requested_at),
        "cancel_requested_by": run.cancel_requested_by,
        "root_run_id": run.root_run_id,
        "parent_run_id": run.parent_run_id,
    }


def cancel_body(result: CancelResult) -> dict[str, Any]:
    return {
        **run_body(result.run),
        "outcome": result.outcome,
        "stopped": result.stopped,
        "scope": result.scope,
        "root_run_id": result.root_run_id,
        "remaining_active_in_tree": result.remaining_active_in_tree,
        "suggested_endpoint": result.suggested_endpoint,
        "warning": result.warning,
        "counts": result.counts,
    }


def tree_body(node: RunNode) -> dict[str, Any]:
    run = node.run
    return {
        "run_id": node.run_id,
        "assistant_id": node.assistant_id,
        "status": node.status.value,
        "parent_run_id": node.parent_run_id,
        "thread_id": run.thread_id if run else None,
        "created_at": _iso(run.created_at) if run else None,
        "ended_at": _iso(run.ended_at) if run else None,
        "children": [tree_body(child) for child in node.children],
    }


def run_result(run: Run) -> Any:
    """What ``join`` and ``wait`` answer: the output, or the SDK's ``__error__`` shape."""
    if run.status is RunStatus.SUCCESS:
        return run.output
    if run.status is RunStatus.INTERRUPTED:
        why = f" ({run.cancel_reason})" if run.cancel_reason else ""
        return {"__error__": {"error": "RunInterrupted",
                              "message": f"run {run.run_id} was cancelled{why}"}}
    kind = "RunTimeout" if run.status is RunStatus.TIMEOUT else "RunError"
    return {"__error__": {"error": kind, "message": run.error or run.status.value}}


def thread_body(thread: Thread) -> dict[str, Any]:
    return {
        "thread_id": thread.thread_id,
        "created_at": _iso(thread.created_at),
        "updated_at": _iso(thread.updated_at),
        "metadata": thread.metadata,
        "status": thread.status.value,
        "values": thread.values,
        "interrupts": {},
    }


def thread_state(thread: Thread) -> dict[str, Any]:
    """The thread's current values as a LangGraph state (runplane keeps no history)."""
    return {
        "values": thread.values if thread.values is not None else {},
        "next": [],
        "tasks": [],
        "checkpoint": {"thread_id": thread.thread_id, "checkpoint_ns": "",
                       "checkpoint_id": None, "checkpoint_map": None},
        "metadata": thread.metadata,
        "created_at": _iso(thread.updated_at),
        "parent_checkpoint": None,
        "interrupts": [],
    }


def assistant_body(name: str, description: str | None, created_at: datetime) -> dict[str, Any]:
    return {
        "assistant_id": name,
        "graph_id": name,
        "name": name,
        "description": description,
        "config": {},
        "context": {},
        "metadata": {"created_by": "system"},
        "version": 1,
        "created_at": _iso(created_at),
        "updated_at": _iso(created_at),
    }
