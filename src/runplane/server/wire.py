"""The LangGraph Agent Server wire format: request bodies in, JSON bodies out.

Field names follow the ``langgraph_sdk`` client. Request models ignore fields
that only tune LangGraph internals (``config``, ``durability``, ...), and refuse,
with a 422 naming the field, those whose meaning runplane cannot honour
(``command``, ``checkpoint``, ``webhook``, ...), so that nothing is silently lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Path, Query
from fastapi.responses import StreamingResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema, WithJsonSchema
from pydantic_core import CoreSchema, core_schema

from runplane.errors import InvalidInput
from runplane.limits import (
    MAX_ATTEMPTS,
    MAX_ID_LENGTH,
    MAX_JSON_DEPTH,
    MAX_LIMIT,
    MAX_OFFSET,
    MAX_TEXT_LENGTH,
    MAX_TIMEOUT_SECONDS,
    MAX_VERSION,
)
from runplane.models import (
    ASSISTANT_SORT_KEYS,
    CRON_SORT_KEYS,
    PRUNE_STRATEGIES,
    STREAM_MODES,
    THREAD_SORT_KEYS,
    AssistantRecord,
    CancelAction,
    CancelOutcome,
    CancelResult,
    Cron,
    MultitaskStrategy,
    Run,
    RunNode,
    RunStatus,
    StoredItem,
    Thread,
    ThreadStatus,
    WebhookDelivery,
)
from runplane.server.protocol_events import CHANNELS
from runplane.service import BULK_STATUSES, CANCEL_SCOPES, DURABILITY

if TYPE_CHECKING:
    from langgraph.types import StateSnapshot

#: Run-creation fields runplane does not implement; sending one is an error, not a no-op.
UNSUPPORTED_RUN_FIELDS: tuple[str, ...] = ()


class _OneOf:
    """A ``str`` that is one of the service's own list of values, validated and documented
    as the Literal of them (the document shows them; pydantic refuses anything else with a
    422 naming them). An annotation, not a Literal built at run time, so that type checkers
    see a plain ``str``."""

    def __init__(self, choices: Iterable[str]) -> None:
        self.choices = tuple(str(c) for c in choices)

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.literal_schema(list(self.choices))


RunStatusName = Annotated[str, _OneOf(RunStatus)]
ThreadStatusName = Annotated[str, _OneOf(ThreadStatus)]
StrategyName = Annotated[str, _OneOf(MultitaskStrategy)]
ActionName = Annotated[str, _OneOf(CancelAction)]
PruneStrategyName = Annotated[str, _OneOf(PRUNE_STRATEGIES)]
#: What one run's cancel answers (a finished run: 409; an unknown one: 404) and what a bulk
#: cancel reports for each run.
CancelOutcomeName = Annotated[
    str, _OneOf((CancelOutcome.CANCELLED, CancelOutcome.ALREADY_INTERRUPTED))]
BulkOutcomeName = Annotated[str, _OneOf(CancelOutcome)]
ScopeName = Annotated[str, _OneOf(CANCEL_SCOPES)]
BulkStatusName = Annotated[str, _OneOf(BULK_STATUSES)]
SortKey = Annotated[str, _OneOf(THREAD_SORT_KEYS)]
AssistantSortKey = Annotated[str, _OneOf(ASSISTANT_SORT_KEYS)]
#: The fields of an assistant a search may select (``select``).
ASSISTANT_FIELDS = ("assistant_id", "graph_id", "name", "description", "config", "context",
                    "metadata", "version", "created_at", "updated_at")
AssistantField = Annotated[str, _OneOf(ASSISTANT_FIELDS)]
CronSortKey = Annotated[str, _OneOf(CRON_SORT_KEYS)]
CRON_FIELDS = ("cron_id", "assistant_id", "thread_id", "on_run_completed", "end_time",
               "schedule", "timezone", "created_at", "updated_at", "payload", "user_id",
               "next_run_date", "metadata", "enabled")
CronField = Annotated[str, _OneOf(CRON_FIELDS)]
DurabilityName = Annotated[str, _OneOf(DURABILITY)]


#: A stream mode as the document gives it: one of LangGraph's, or "" (nothing: ``values``).
_MODE: dict[str, Any] = {"enum": ["", *STREAM_MODES]}
StreamModeField = Annotated[str | list[str] | None, WithJsonSchema(
    {"anyOf": [_MODE, {"type": "array", "items": _MODE}, {"type": "null"}]})]
#: What joining a run's stream may also ask for (a runplane extension): ``log``, every
#: event of the run's durable log as it is stored (what ``runplane runs tail`` prints).
JOIN_MODES = ("log",)
_JOIN_MODE: dict[str, Any] = {"enum": ["", *STREAM_MODES, *JOIN_MODES]}
StreamModesQuery = Annotated[list[str] | None, Query(), WithJsonSchema(
    {"anyOf": [{"type": "array", "items": _JOIN_MODE}, {"type": "null"}]})]


class _Body(BaseModel):
    # strict: a JSON true is not the integer 1, as the document says
    model_config = ConfigDict(extra="ignore", strict=True)


#: Bounds of the RunService (runplane.limits), repeated here so that OpenAPI shows them.
Id = Annotated[str, Field(max_length=MAX_ID_LENGTH)]
Text = Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]
LimitQuery = Annotated[int, Query(ge=0, le=MAX_LIMIT)]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET)]
ReasonQuery = Annotated[str | None, Query(max_length=MAX_TEXT_LENGTH)]
ThreadId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)]
RunId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)]
AssistantId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)]
CronId = Annotated[str, Path(min_length=1, max_length=MAX_ID_LENGTH)]
Limit = Annotated[int, Field(ge=0, le=MAX_LIMIT)]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET)]


#: A thread's time to live as the SDK sends it: minutes, or ``{"ttl": minutes,
#: "strategy": "delete" | "keep_latest"}`` (checked by the service).
TTL = Annotated[float | dict[str, Any] | None, Field(
    description="minutes, or {ttl: minutes, strategy: 'delete' | 'keep_latest'}")]


class ThreadCreate(_Body):
    thread_id: Id | None = None
    metadata: dict[str, Any] | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"
    ttl: TTL = None
    supersteps: SkipJsonSchema[list[Any] | None] = None  # refused when given

    @model_validator(mode="after")
    def _no_supersteps(self) -> ThreadCreate:
        if self.supersteps:
            raise ValueError("creating a thread with 'supersteps' is not supported; create "
                             "it, then apply each update with POST /threads/{id}/state")
        return self


class ThreadUpdate(_Body):
    metadata: dict[str, Any] | None = None
    ttl: TTL = None


class ThreadSearch(_Body):
    metadata: dict[str, Any] | None = None
    values: SkipJsonSchema[dict[str, Any] | None] = None  # refused when given
    ids: list[Id] | None = Field(None, max_length=MAX_LIMIT)
    status: ThreadStatusName | None = None
    limit: Limit = 10
    offset: Offset = 0
    sort_by: SortKey = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"

    @model_validator(mode="after")
    def _no_values_filter(self) -> ThreadSearch:
        if self.values:
            raise ValueError("filtering threads by 'values' is not supported; use 'metadata'")
        return self


class ThreadCount(ThreadSearch):
    pass


class HistoryQuery(_Body):
    limit: Limit = 10
    before: Id | dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    checkpoint: dict[str, Any] | None = None

    def before_id(self) -> str | None:
        """``before`` as a checkpoint id (the SDK sends a checkpoint config or an id)."""
        if isinstance(self.before, dict):
            found = (self.before.get("configurable") or self.before).get("checkpoint_id")
            return found if isinstance(found, str) else None
        return self.before


class ThreadPrune(_Body):
    thread_ids: list[Id]
    strategy: PruneStrategyName = "delete"


class PruneAnswer(BaseModel):
    pruned_count: int


class StateUpdate(_Body):
    """``threads.update_state``: ``values`` as if node ``as_node`` wrote them, from the
    thread's latest checkpoint or from ``checkpoint``/``checkpoint_id``."""

    values: Any = None
    as_node: str | None = None
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: Id | None = None


class StateAt(_Body):
    """``threads.get_state`` at a checkpoint given as a config."""

    checkpoint: dict[str, Any]
    subgraphs: bool = False

    def checkpoint_id(self) -> str | None:
        found = (self.checkpoint.get("configurable") or self.checkpoint).get("checkpoint_id")
        return found if isinstance(found, str) else None


class AssistantCount(_Body):
    graph_id: Id | None = None
    name: Text | None = None
    metadata: dict[str, Any] | None = None


class AssistantSearch(AssistantCount):
    limit: Limit = 10
    offset: Offset = 0
    sort_by: AssistantSortKey = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[AssistantField] | None = Field(None, max_length=len(ASSISTANT_FIELDS))


class AssistantUpdate(_Body):
    graph_id: Id | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    name: Text | None = None
    description: Text | None = None


class AssistantCreate(AssistantUpdate):
    graph_id: Id
    assistant_id: Id | None = None
    if_exists: Literal["raise", "do_nothing"] = "raise"


class AssistantVersionsSearch(_Body):
    metadata: dict[str, Any] | None = None
    limit: Limit = 10
    offset: Offset = 0


class AssistantLatest(_Body):
    version: Annotated[int, Field(ge=1, le=MAX_VERSION)]


Label = Annotated[str, Field(max_length=MAX_ID_LENGTH)]
Namespace = Annotated[list[Label], Field(max_length=MAX_JSON_DEPTH)]


class CronBody(_Body):
    """What a cron's runs are created with, and its schedule (``update``: what changes)."""

    schedule: Text | None = None
    input: Any = None
    metadata: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    interrupt_before: Literal["*"] | list[Id] | None = None
    interrupt_after: Literal["*"] | list[Id] | None = None
    stream_mode: StreamModeField = None
    stream_subgraphs: bool | None = None
    stream_resumable: bool | None = None  # accepted, no effect: every stream resumes
    durability: DurabilityName | None = None
    checkpoint_during: bool | None = None  # LangGraph's older durability: no effect
    enabled: bool | None = None
    timezone: Text | None = None
    # ISO 8601 text on the wire (strict models take no text for a datetime otherwise)
    end_time: Annotated[datetime | None, Field(strict=False)] = None
    webhook: Annotated[str, Field(max_length=2048)] | None = None
    on_run_completed: Literal["keep", "delete"] | None = None

    def runs(self) -> dict[str, Any]:
        return {"input": self.input, "metadata": self.metadata, "config": self.config,
                "context": self.context, "interrupt_before": self.interrupt_before,
                "interrupt_after": self.interrupt_after,
                "stream_mode": stream_modes(self.stream_mode) if self.stream_mode else None,
                "stream_subgraphs": self.stream_subgraphs, "durability": self.durability,
                "timezone": self.timezone, "webhook": self.webhook,
                "on_run_completed": self.on_run_completed}


class CronCreate(CronBody):
    assistant_id: Id
    schedule: Text
    multitask_strategy: StrategyName | None = None


class CronSearch(_Body):
    assistant_id: Id | None = None
    thread_id: Id | None = None
    enabled: bool | None = None
    metadata: dict[str, Any] | None = None
    limit: Limit = 10
    offset: Offset = 0
    sort_by: CronSortKey = "created_at"
    sort_order: Literal["asc", "desc"] = "desc"
    select: list[CronField] | None = Field(None, max_length=len(CRON_FIELDS))


class CronCount(_Body):
    assistant_id: Id | None = None
    thread_id: Id | None = None
    metadata: dict[str, Any] | None = None


class ItemKey(_Body):
    namespace: Namespace
    key: Id


class ItemPut(ItemKey):
    value: dict[str, Any]
    index: Literal[False] | list[str] | None = None
    ttl: Annotated[float, Field(gt=0, le=MAX_TIMEOUT_SECONDS / 60)] | None = None


class ItemSearch(_Body):
    namespace_prefix: Namespace | None = None
    filter: dict[str, Any] | None = None
    limit: Limit = 10
    offset: Offset = 0
    query: Text | None = None
    refresh_ttl: bool | None = None


class NamespaceSearch(_Body):
    prefix: Namespace | None = None
    suffix: Namespace | None = None
    max_depth: Annotated[int, Field(ge=1, le=MAX_JSON_DEPTH)] | None = None
    limit: Limit = 100
    offset: Offset = 0


class RunCommand(BaseModel):
    """LangGraph's ``Command`` on the wire (the service checks the shapes inside)."""

    model_config = ConfigDict(extra="forbid")

    resume: Any = None
    update: dict[str, Any] | list[Any] | None = None
    goto: str | dict[str, Any] | list[str | dict[str, Any]] | None = None


class RunCreate(_Body):
    assistant_id: str
    input: Any = None
    metadata: dict[str, Any] | None = None
    multitask_strategy: StrategyName | None = None
    if_not_exists: Literal["reject", "create"] | None = None
    on_disconnect: Literal["cancel", "continue"] | None = None
    stream_mode: StreamModeField = None
    #: runplane extensions: seconds before the run ends ``timeout``; claims before ``error``
    timeout: float | None = Field(None, gt=0, le=MAX_TIMEOUT_SECONDS, allow_inf_nan=False)
    max_attempts: int | None = Field(None, ge=1, le=MAX_ATTEMPTS)
    # a graph's run: its config and context, subgraphs' chunks in its stream, how it keeps
    # its checkpoints (a workflow's run takes none of them; the model ignores other unknown
    # fields, e.g. stream_resumable: runplane streams are always resumable)
    config: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    stream_subgraphs: bool = False
    durability: DurabilityName | None = None
    #: a graph's thread's latest checkpoint, or null ids (what LangGraph's UIs send with
    #: every message after the first); an earlier one is refused
    checkpoint: dict[str, Any] | None = None
    checkpoint_id: Id | None = None
    #: a graph's run instead of input: resume a thread waiting at an interrupt (a value,
    #: or {interrupt id: value}), update its state, go to nodes (names or {node, input})
    command: RunCommand | None = None
    #: breakpoints: node names, or "*" for every node
    interrupt_before: list[str] | Literal["*"] | None = None
    interrupt_after: list[str] | Literal["*"] | None = None
    #: an http(s) URL the run's end is POSTed to (see RunService.deliver_webhooks)
    webhook: Annotated[str, Field(max_length=2048)] | None = None
    #: a delayed run: pending until then, claimed by no worker before its time
    after_seconds: float | None = Field(None, ge=0, le=MAX_TIMEOUT_SECONDS, allow_inf_nan=False)

    @model_validator(mode="after")
    def _refuse_unsupported(self) -> RunCreate:
        given = [name for name in UNSUPPORTED_RUN_FIELDS if getattr(self, name)]
        if given:
            raise ValueError(f"not supported by runplane: {', '.join(given)}")
        return self

    @field_validator("stream_mode")
    @classmethod
    def _known_modes(cls, value: str | list[str] | None) -> str | list[str] | None:
        stream_modes(value)  # refused before any run is created
        return value

    def stream_modes(self) -> list[str]:
        return stream_modes(self.stream_mode)


class BulkCancel(_Body):
    run_ids: list[Id] | None = Field(None, max_length=MAX_LIMIT)
    thread_id: Id | None = None
    status: BulkStatusName | None = None


def stream_modes(requested: str | list[str] | None, *, join: bool = False) -> list[str]:
    """The SDK's ``stream_mode`` as a list; nothing (or an empty value) means ``values``.
    An unknown mode is an InvalidInput naming the allowed ones (a typo would stream nothing).
    ``join``: a joined stream, which may also ask for ``JOIN_MODES``."""
    if isinstance(requested, str):
        requested = [requested]
    allowed = (*STREAM_MODES, *JOIN_MODES) if join else STREAM_MODES
    modes = list(dict.fromkeys(m for m in requested or [] if m))
    unknown = [m for m in modes if m not in allowed]
    if unknown:
        raise InvalidInput("stream_mode", f"unknown stream mode "
                           f"{', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")
    return modes or ["values"]


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
        "traceback": run.traceback,
        "cancel_reason": run.cancel_reason,
        "cancel_action": run.cancel_action.value if run.cancel_action else None,
        "cancel_requested_at": _iso(run.cancel_requested_at),
        "cancel_requested_by": run.cancel_requested_by,
        "root_run_id": run.root_run_id,
        "parent_run_id": run.parent_run_id,
        "not_before": _iso(run.not_before),
    }


def cancel_body(result: CancelResult) -> dict[str, Any]:
    """A run cancel that left other runs of its tree active points at the tree cancel, in
    the API's own terms (``suggested_endpoint``, ``warning``: both None otherwise)."""
    remaining = result.remaining_active_in_tree
    return {
        **run_body(result.run),
        "outcome": result.outcome,
        "stopped": result.stopped,
        "scope": result.scope,
        "root_run_id": result.root_run_id,
        "remaining_active_in_tree": remaining,
        "suggested_endpoint": f"/runs/{result.root_run_id}/cancel?scope=tree"
        if remaining else None,
        "warning": f"{remaining} other run(s) of this run's tree are still active; cancel "
        "with scope=tree to stop the whole tree" if remaining else None,
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


def thread_body(thread: Thread, *, include: Sequence[str] = ()) -> dict[str, Any]:
    """A thread as the LangGraph server answers it; ``include`` ``ttl``: with its time to
    live, if it has one."""
    body = {
        "thread_id": thread.thread_id,
        "created_at": _iso(thread.created_at),
        "updated_at": _iso(thread.updated_at),
        "metadata": thread.metadata,
        "status": thread.status.value,
        "values": thread.values,
        "interrupts": thread.interrupts or {},
    }
    if "ttl" in include and thread.ttl is not None:
        body["ttl"] = {"strategy": thread.ttl.strategy, "ttl_minutes": thread.ttl.ttl_minutes,
                       "expires_at": thread.ttl.expires_at and _iso(thread.ttl.expires_at)}
    return body


def state_body(state: Thread | StateSnapshot) -> dict[str, Any]:
    """A thread's state as the LangGraph server answers it: a graph's from its checkpoint,
    a workflow thread's from its values."""
    if isinstance(state, Thread):
        return thread_state(state)
    from runplane.graphs.runner import jsonable

    return {
        "values": jsonable(state.values),
        "next": list(state.next),
        "checkpoint": _checkpoint(state.config),
        "metadata": jsonable(state.metadata),
        "created_at": state.created_at,
        "parent_checkpoint": _checkpoint(state.parent_config),
        "tasks": [{
            "id": task.id, "name": task.name,
            "error": None if task.error is None else str(task.error),
            "interrupts": jsonable(list(task.interrupts)),
            "checkpoint": _checkpoint(task.state) if isinstance(task.state, dict) else None,
            "state": None if task.state is None or isinstance(task.state, dict)
            else state_body(task.state),
            "result": jsonable(task.result),
        } for task in state.tasks],
        "interrupts": jsonable(list(state.interrupts)),
    }


def _checkpoint(config: Any) -> dict[str, Any] | None:
    """Where a state is (a ``RunnableConfig``'s ``configurable``), as the SDK's Checkpoint."""
    if not config:
        return None
    configurable = config.get("configurable", {})
    return {"thread_id": configurable.get("thread_id"),
            "checkpoint_ns": configurable.get("checkpoint_ns", ""),
            "checkpoint_id": configurable.get("checkpoint_id"),
            "checkpoint_map": configurable.get("checkpoint_map")}


def thread_state(thread: Thread) -> dict[str, Any]:
    """A workflow thread's current values as a LangGraph state (it keeps no history)."""
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


def webhook_body(delivery: WebhookDelivery) -> dict[str, Any]:
    return {"delivery_id": delivery.delivery_id, "run_id": delivery.run_id,
            "url": delivery.url, "run_status": delivery.run_status,
            "status": delivery.status, "attempts": delivery.attempts,
            "next_attempt_at": _iso(delivery.next_attempt_at),
            "last_error": delivery.last_error, "created_at": _iso(delivery.created_at),
            "delivered_at": _iso(delivery.delivered_at)}


def selected(bodies: list[dict[str, Any]], fields: list[str] | None) -> list[dict[str, Any]]:
    """A search's answer with ``select``: only the fields asked for (all without it)."""
    return bodies if not fields else [{k: b[k] for k in fields} for b in bodies]


def cron_body(cron: Cron) -> dict[str, Any]:
    return {
        "cron_id": cron.cron_id, "assistant_id": cron.assistant_id,
        "thread_id": cron.thread_id, "on_run_completed": None if cron.thread_id else "keep",
        "end_time": _iso(cron.end_time), "schedule": cron.schedule,
        "timezone": cron.timezone, "created_at": _iso(cron.created_at),
        "updated_at": _iso(cron.updated_at),
        "payload": {k: v for k, v in cron.payload.items() if k != "auth"},  # the user's
        "user_id": cron.owner, "next_run_date": _iso(cron.next_run_at),
        "metadata": cron.metadata, "enabled": cron.enabled,
    }


def item_body(item: StoredItem) -> dict[str, Any]:
    return {"namespace": list(item.namespace), "key": item.key, "value": item.value,
            "created_at": _iso(item.created_at), "updated_at": _iso(item.updated_at)}


def assistant_body(assistant: AssistantRecord, *, version: bool = False) -> dict[str, Any]:
    """An assistant (or with ``version``, one of its versions: no ``updated_at``)."""
    body = {
        "assistant_id": assistant.assistant_id,
        "graph_id": assistant.graph_id,
        "name": assistant.name,
        "description": assistant.description,
        "config": assistant.config,
        "context": assistant.context,
        "metadata": assistant.metadata,
        "version": assistant.version,
        "created_at": _iso(assistant.created_at),
    }
    if not version:
        body["updated_at"] = _iso(assistant.updated_at)
    return body


# --- answers, as /openapi.json describes them ------------------------------------------------
# The bodies above are built as plain dicts (no validation on the hot path); these models
# only document them. tests/acceptance/http/test_fuzz.py holds every real answer to its
# documented model.


class ErrorAnswer(BaseModel):
    """Every 4xx and 5xx answer: ``detail`` says what was wrong."""

    detail: str


class InvalidAnswer(ErrorAnswer):
    """422: ``detail`` names each invalid field; ``errors`` lists them one by one."""

    errors: list[dict[str, Any]] | None = None


class ConflictAnswer(ErrorAnswer):
    """409: the state forbids it. A run conflict gives the run's current ``status``; a busy
    thread (``multitask_strategy='reject'``) its ``active_run_ids``."""

    run_id: str | None = None
    status: str | None = None
    active_run_ids: list[str] | None = None


class RunAnswer(BaseModel):
    run_id: str
    thread_id: str | None
    assistant_id: str
    created_at: datetime
    updated_at: datetime
    status: RunStatusName
    metadata: dict[str, Any]
    multitask_strategy: StrategyName
    kwargs: dict[str, Any]
    started_at: datetime | None
    ended_at: datetime | None
    attempt: int
    max_attempts: int
    timeout: float | None
    error: str | None
    #: the workflow's formatted traceback (its last 16 KiB) when it ended error or timeout
    traceback: str | None
    cancel_reason: str | None
    cancel_action: ActionName | None
    cancel_requested_at: datetime | None
    cancel_requested_by: str | None
    root_run_id: str
    parent_run_id: str | None
    #: a delayed run's time (``after_seconds``): no worker claims it before
    not_before: datetime | None = None


class CancelAnswer(RunAnswer):
    """The run as the cancel left it, what the cancel did, and to how many runs."""

    outcome: CancelOutcomeName
    stopped: bool
    scope: ScopeName
    remaining_active_in_tree: int | None
    suggested_endpoint: str | None
    warning: str | None
    counts: dict[str, int]


class BulkCancelOutcome(BaseModel):
    run_id: str
    outcome: BulkOutcomeName


class BulkCancelAnswer(BaseModel):
    runs: list[BulkCancelOutcome]
    counts: dict[str, int]


class TreeAnswer(BaseModel):
    run_id: str
    assistant_id: str
    status: RunStatusName
    parent_run_id: str | None
    thread_id: str | None
    created_at: datetime | None
    ended_at: datetime | None
    children: list[TreeAnswer]


# --- the thread-centric streaming protocol (runplane.server.protocol) ---


class ProtocolCommand(_Body):
    id: int
    method: Annotated[str, Field(max_length=100)]
    params: dict[str, Any] = {}


class CommandAnswer(BaseModel):
    type: str
    id: int
    result: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    error: str | None = None
    message: str | None = None


class EventStreamRequest(_Body):
    channels: Annotated[list[Annotated[str, Field(max_length=200)]],
                        Field(min_length=1, max_length=20)]
    namespaces: Annotated[list[Annotated[list[Id], Field(max_length=32)]] | None,
                          Field(max_length=32)] = None
    depth: Annotated[int | None, Field(ge=0, le=1000)] = None
    since: Annotated[int | None, Field(ge=0, le=2**63 - 1)] = None

    @field_validator("channels")
    @classmethod
    def _known(cls, channels: list[str]) -> list[str]:
        for channel in channels:
            if channel not in CHANNELS and not (channel.startswith("custom:")
                                                and len(channel) > len("custom:")):
                raise ValueError(f"unknown channel {channel!r}; allowed: "
                                 f"{', '.join(CHANNELS)}, custom:<name>")
        return channels


class ThreadTTLAnswer(BaseModel):
    strategy: Literal["delete", "keep_latest"]
    ttl_minutes: float
    expires_at: datetime


class ThreadAnswer(BaseModel):
    thread_id: str
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]
    status: ThreadStatusName
    values: Any
    interrupts: dict[str, Any]
    #: only with ``?include=ttl``, and only when the thread has one
    ttl: ThreadTTLAnswer | None = None


class ThreadStateAnswer(BaseModel):
    values: Any
    next: list[str]
    tasks: list[dict[str, Any]]
    checkpoint: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime | None
    parent_checkpoint: dict[str, Any] | None
    interrupts: list[dict[str, Any]]


class StateUpdateAnswer(BaseModel):
    checkpoint: dict[str, Any]


class AssistantVersionAnswer(BaseModel):
    assistant_id: str
    graph_id: str
    name: str
    description: str | None
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    version: int
    created_at: datetime


class AssistantAnswer(AssistantVersionAnswer):
    updated_at: datetime


class SelectedAssistantAnswer(BaseModel):
    """An assistant as a search with ``select`` answers it: the fields selected."""

    model_config = ConfigDict(extra="allow")


class WebhookAnswer(BaseModel):
    delivery_id: int
    run_id: str
    url: str
    run_status: RunStatusName
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class CronAnswer(BaseModel):
    cron_id: str
    assistant_id: str
    thread_id: str | None
    on_run_completed: str | None
    end_time: datetime | None
    schedule: str
    timezone: str | None
    created_at: datetime
    updated_at: datetime
    payload: dict[str, Any]
    user_id: str | None
    next_run_date: datetime | None
    metadata: dict[str, Any]
    enabled: bool


class SelectedCronAnswer(BaseModel):
    """A cron as a search with ``select`` answers it: the fields selected."""

    model_config = ConfigDict(extra="allow")


class ItemAnswer(BaseModel):
    namespace: list[str]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class ItemsAnswer(BaseModel):
    items: list[ItemAnswer]


class NamespacesAnswer(BaseModel):
    namespaces: list[list[str]]


class GraphAnswer(BaseModel):
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]


class SchemasAnswer(BaseModel):
    graph_id: str
    input_schema: dict[str, Any] | None
    output_schema: dict[str, Any] | None
    state_schema: dict[str, Any] | None
    config_schema: dict[str, Any] | None
    context_schema: dict[str, Any] | None


#: Why each error status is answered, as the document says it.
_ERRORS: dict[int, tuple[type[BaseModel], str]] = {
    400: (ErrorAnswer, "The body is not valid JSON, or the Host is not allowed."),
    404: (ErrorAnswer, "No such run, thread or assistant (or not this thread's run)."),
    409: (ConflictAnswer, "The current state forbids it."),
    413: (ErrorAnswer, "The body is larger than the server accepts (--max-body-bytes)."),
    422: (InvalidAnswer, "A field is invalid or out of range; nothing was written."),
    503: (ErrorAnswer, "The database is unavailable; retry after Retry-After seconds."),
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                                "schema": {"type": "integer"}}}
#: Each server-sent event: its name (a stream mode, ``metadata``, ``error`` or ``end``), its
#: JSON ``data`` and, on the last event a log entry gives, its ``id`` (for Last-Event-ID).
SSE = {"text/event-stream": {"schema": {
    "type": "object", "required": ["event", "data"],
    "properties": {"event": {"type": "string"},
                   "data": {"type": "string", "contentMediaType": "application/json"},
                   "id": {"type": "string"}},
}}}


def answers(ok: Any = None, *errors: int, status: int = 200, ok_content: Any = None,
            also: dict[int, Any] | None = None) -> dict[str, Any]:
    """Route keyword arguments documenting every answer: ``ok`` (a model, or a type) on
    ``status``, each status of ``errors``, and 422 and 503, which any route can give."""
    documented: dict[int, Any] = {}
    if ok_content is not None:
        documented[status] = {"description": "Success", "content": ok_content}
    elif ok is not None:
        documented[status] = {"description": "Success", "model": ok}
    for code in sorted({*errors, 422, 503}):
        model, why = _ERRORS[code]
        documented[code] = {"model": model, "description": why}
        if code == 503:
            documented[code]["headers"] = _RETRY_AFTER
    documented.update(also or {})
    kwargs: dict[str, Any] = {
        "status_code": status, "response_model": None, "responses": documented}
    if ok_content is SSE:
        kwargs["response_class"] = EventStream
    return kwargs


class EventStream(StreamingResponse):
    media_type = "text/event-stream"
