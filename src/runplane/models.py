"""Value objects shared by the service, the worker, the stores and the adapters."""

from __future__ import annotations

import dataclasses
import json
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar, overload

from runplane.limits import check_choice


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"

    @property
    def active(self) -> bool:
        return self in (RunStatus.PENDING, RunStatus.RUNNING)

    @property
    def terminal(self) -> bool:
        return not self.active


#: Terminal statuses that a cancel can never override (it answers a conflict instead).
FINISHED = frozenset({RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.TIMEOUT})


class CancelAction(StrEnum):
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"


class CancelOutcome(StrEnum):
    """What one cancel found and did to one run. The values are the outcomes the stores,
    ``cancel_many``, the bulk cancel's answer and the ``runplane_cancel_requests`` metric
    give; a cancel result's ``counts`` tally them under :attr:`count_key`."""

    #: this call made the transition
    CANCELLED = "cancelled"
    #: an idempotent repeat: the run was interrupted already
    ALREADY_INTERRUPTED = "already_interrupted"
    #: the run had ended ``success``, ``error`` or ``timeout``: a single cancel answers 409
    ALREADY_FINISHED = "conflict"
    #: no such run (or another owner's): a single cancel answers 404
    NOT_FOUND = "not_found"

    @property
    def count_key(self) -> str:
        return "already_finished" if self is CancelOutcome.ALREADY_FINISHED else self.value


#: The outcomes a sweep gives its runs (every one exists), in the order counts list them.
SWEPT_OUTCOMES = (CancelOutcome.CANCELLED, CancelOutcome.ALREADY_INTERRUPTED,
                  CancelOutcome.ALREADY_FINISHED)


class MultitaskStrategy(StrEnum):
    REJECT = "reject"
    INTERRUPT = "interrupt"
    ROLLBACK = "rollback"
    ENQUEUE = "enqueue"


class ThreadStatus(StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    INTERRUPTED = "interrupted"
    ERROR = "error"


E = TypeVar("E", bound=StrEnum)


def parse_enum(enum: type[E], value: str | E, what: str) -> E:
    """Turn a user-supplied string into ``enum`` or raise InvalidInput naming the allowed values."""
    return enum(check_choice(what, value, [m.value for m in enum]))


@overload
def to_datetime(ts: float) -> datetime: ...
@overload
def to_datetime(ts: float | None) -> datetime | None: ...
def to_datetime(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def to_epoch(at: datetime | None) -> float | None:
    """``to_datetime``'s inverse: what the stores keep."""
    return None if at is None else at.timestamp()


#: The stream modes a client may ask for: LangGraph's (``langgraph_sdk.schema.StreamMode``).
STREAM_MODES = ("values", "updates", "custom", "debug", "messages", "messages-tuple", "events",
                "tasks", "checkpoints", "tools", "lifecycle")


#: What a resource's metadata must contain for a request, as an auth handler decided: one
#: of these documents (an empty tuple: nothing matches; None: no condition).
Where = tuple[dict[str, Any], ...] | None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks the service. An owner sees and changes only the threads, runs, assistants,
    crons and store items it owns; an admin sees and changes everyone's. Callers that pass
    None (the Python API, the CLI on the box, the worker) act as admins that own nothing.

    A caller a project's auth handlers authenticated (:mod:`runplane.auth_handlers`) carries
    them, with its user and permissions, and ``filters``: per resource, what the handler
    said that resource's metadata must match during this request."""

    owner: str
    admin: bool = False
    handlers: Any = field(default=None, compare=False, repr=False)
    user: Any = field(default=None, compare=False, repr=False)
    permissions: tuple[str, ...] = ()
    filters: Mapping[str, Where] = field(default_factory=dict, compare=False)
    #: What the handlers answered to reads and searches during this request (a stream
    #: polling asks them once): (resource, action, value) -> filter.
    decided: dict[tuple[str, str, str], Where] = field(default_factory=dict, compare=False,
                                                       repr=False)

    def sees(self, owner: str | None, resource: str | None = None,
             metadata: Mapping[str, Any] | None = None) -> bool:
        """The one isolation rule: the owner's (or an admin), and, for ``resource``, its
        ``metadata`` matching the handler's filter."""
        if not (self.admin or owner == self.owner):
            return False
        where = None if resource is None else self.filters.get(resource)
        return where is None or contains_any(metadata or {}, where)


def contains(whole: Any, part: Any) -> bool:
    """``whole @> part`` as PostgreSQL's jsonb says it: objects hold part's keys with
    contained values, arrays hold a contained item for each of part's, scalars equal (a
    bool is not a number)."""
    if isinstance(part, Mapping):
        return isinstance(whole, Mapping) and all(
            key in whole and contains(whole[key], value) for key, value in part.items())
    if isinstance(part, list):
        return isinstance(whole, list) and all(
            any(contains(w, p) for w in whole) for p in part)
    if isinstance(whole, bool) or isinstance(part, bool):
        return whole is part
    return not isinstance(whole, (Mapping, list)) and whole == part


def contains_any(whole: Any, documents: tuple[dict[str, Any], ...]) -> bool:
    return any(contains(whole, doc) for doc in documents)


def owner_filter(caller: Caller | None) -> str | None:
    """The owner a caller's reads are restricted to (None: no restriction)."""
    return None if caller is None or caller.admin else caller.owner


@dataclass(frozen=True, slots=True)
class ThreadTTL:
    """A thread's time to live: ``ttl_minutes`` after its last update (``expires_at``) the
    sweep deletes it (``delete``) or keeps only its latest checkpoint (``keep_latest``)."""

    strategy: str
    ttl_minutes: float
    #: None in a request: the thread's update decides it.
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Thread:
    thread_id: str
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, Any]
    values: Any
    status: ThreadStatus
    #: Who created it (None: created without an owner, e.g. by the Python API).
    owner: str | None = None
    #: A graph thread paused by its last run: ``{task id: [{value, id}]}`` (empty at a
    #: breakpoint); None when it is not paused.
    interrupts: dict[str, list[dict[str, Any]]] | None = None
    ttl: ThreadTTL | None = None


@dataclass(frozen=True, slots=True)
class ThreadQuery:
    """Which threads a search wants: every filter given must hold."""

    #: top-level keys whose JSON values must be equal
    metadata: dict[str, Any] = field(default_factory=dict)
    status: ThreadStatus | None = None
    ids: list[str] | None = None
    #: only threads of this owner (None: any owner's)
    owner: str | None = None
    limit: int = 10
    offset: int = 0
    sort_by: str = "created_at"  # thread_id | status | created_at | updated_at
    descending: bool = True
    #: metadata containing one of these (an auth handler's filter; None: any)
    matching: Where = None


THREAD_SORT_KEYS = ("thread_id", "status", "created_at", "updated_at")
#: What assistants may be sorted by (the LangGraph server's ``sort_by`` choices).
ASSISTANT_SORT_KEYS = ("assistant_id", "graph_id", "name", "created_at", "updated_at")
#: What crons may be sorted by (the LangGraph server's ``sort_by`` choices).
CRON_SORT_KEYS = ("cron_id", "assistant_id", "thread_id", "next_run_date", "end_time",
                  "created_at", "updated_at")


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a listing wants besides their thread, status and owner: every filter
    given must hold (``id_prefix``: the start of the run id; times: epoch seconds of
    creation, ``created_before`` excluded)."""

    assistant_id: str | None = None
    id_prefix: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    #: an auth handler's filter: the run's thread's metadata (a thread-less run's own)
    #: containing one of these documents (None: any)
    matching: Where = None

    def params(self) -> tuple[str | None, str | None, float | None, float | None, str | None]:
        return (self.assistant_id, self.id_prefix, self.created_after, self.created_before,
                None if self.matching is None else json.dumps(list(self.matching)))


#: No filter: every run.
ANY_RUN = RunFilter()


@dataclass(frozen=True, slots=True)
class Run:
    """A run as stored. ``lease_generation`` is the fencing token: it only grows."""

    run_id: str
    thread_id: str | None
    assistant_id: str
    status: RunStatus
    input: Any
    output: Any
    error: str | None
    metadata: dict[str, Any]
    multitask_strategy: MultitaskStrategy
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    attempt: int
    max_attempts: int
    timeout: float | None
    deadline_at: datetime | None
    lease_owner: str | None
    lease_generation: int
    lease_expires_at: datetime | None
    step_index: int
    cancel_requested_at: datetime | None
    cancel_reason: str | None
    cancel_action: CancelAction | None
    cancel_requested_by: str | None
    #: The lease generation the last cancel revoked (for a pending run: closed, no worker
    #: held it); kept across resume so a worker refused after a cancel-then-resume still
    #: knows it was cancelled, and so children spawned after a cancel get new ids.
    cancelled_generation: int | None
    root_run_id: str
    parent_run_id: str | None
    #: Where a failed run's workflow raised (or where its timeout stopped it), formatted and
    #: bounded by the worker; None for other runs.
    traceback: str | None = None
    #: The run's place in creation order (the store's own key: it only grows).
    seq: int = 0
    #: The owner of its thread, of its parent run, or of whoever created it (None: nobody).
    owner: str | None = None
    #: How a graph run is to run (``config``, ``context``, ``stream_mode``, ...: see
    #: :mod:`runplane.graphs.runner`); empty for a workflow's.
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: A delayed run (``after_seconds``): no worker claims it before this time.
    not_before: datetime | None = None

    #: The registered workflow that runs it (a graph's by its default assistant's id):
    #: ``assistant_id`` unless the run is of an assistant made through the API.
    workflow: str = ""

    @property
    def of_graph(self) -> bool:
        """A graph's run: it always has the stream modes it logs in its kwargs."""
        return "stream_mode" in self.kwargs

    def evolve(self, **changes: Any) -> Run:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Step:
    run_id: str
    index: int
    name: str
    result: Any
    created_at: datetime


#: The step a paused workflow's answer is stored as (see ``Context.interrupt``).
ANSWER_STEP = "__interrupt__"


@dataclass(frozen=True, slots=True)
class Event:
    run_id: str
    seq: int
    event: str
    data: Any
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewRun:
    """What the service asks a store to insert; the store fills in the rest."""

    run_id: str
    thread_id: str | None
    assistant_id: str
    input: Any
    metadata: dict[str, Any]
    multitask_strategy: MultitaskStrategy
    max_attempts: int
    timeout: float | None
    root_run_id: str
    parent_run_id: str | None = None
    #: The owner a new thread-less run (or a thread created with it) gets; a run on an
    #: existing thread gets the thread's owner, a child its parent's.
    owner: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: A delayed run: no worker claims it before this time (epoch seconds).
    not_before: float | None = None
    #: A workflow's run answering its thread's pause with ``kwargs["command"]["resume"]``:
    #: it takes up the paused run's input and steps (``transactions.take_up_pause``).
    takes_up_pause: bool = False
    #: The registered workflow that runs it, for a run of an assistant made through the
    #: API (None: ``assistant_id`` names it); its creation holds the assistant (it exists).
    workflow: str | None = None
    #: A graph's run: its thread says which graph and assistant it is (``graph_id``,
    #: ``assistant_id`` in its metadata, what agent-chat-ui searches threads by), set in
    #: the run's transaction when the thread says none yet.
    thread_tags: dict[str, str] | None = None
    #: ``thread_id`` was made for this run (a graph's thread-less run): no thread has it,
    #: so the run's creation makes it without asking (PostgreSQL batches such creations).
    new_thread: bool = False


@dataclass(frozen=True, slots=True)
class AssistantRecord:
    """An assistant as the API shows it: a workflow's or a graph's own (``builtin``, the
    code's, version 1 for ever) or one made through the API, with its current version's
    fields (or, in a list of versions, that version's)."""

    assistant_id: str
    graph_id: str
    name: str
    description: str | None
    config: dict[str, Any]
    context: dict[str, Any]
    metadata: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    owner: str | None = None
    builtin: bool = False

    def evolve(self, **changes: Any) -> AssistantRecord:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class CancelRequest:
    action: CancelAction = CancelAction.INTERRUPT
    reason: str | None = None
    requested_by: str | None = None


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What ``cancel`` answers. ``outcome`` is ``cancelled`` when this call made the transition
    (``already_interrupted`` when the run was; a finished run raises RunConflict instead).

    ``scope`` is ``run`` (the run and its attached descendants) or ``tree`` (every run under
    the root). A run cancel that leaves other runs of its tree active says how many:
    ``remaining_active_in_tree`` (None when nothing else stays active), so that an adapter
    can point at the tree cancel of ``root_run_id`` in its own words. ``counts`` tallies the
    outcomes over the runs this call swept, by :attr:`CancelOutcome.count_key`
    (``cancelled``, ``already_interrupted``, ``already_finished``).
    """

    outcome: CancelOutcome
    run: Run
    stopped: bool = False
    scope: str = "run"
    root_run_id: str | None = None
    remaining_active_in_tree: int | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def status(self) -> RunStatus:
        return self.run.status


@dataclass(frozen=True, slots=True)
class RunNode:
    """One run of a tree, with its attached children (``app.runs.tree``)."""

    run_id: str
    assistant_id: str
    status: RunStatus
    parent_run_id: str | None
    children: list[RunNode] = field(default_factory=list)
    run: Run | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """A worker's claim on one run, as the worker remembers it."""

    run_id: str
    generation: int


@dataclass(frozen=True, slots=True)
class ClaimedRun:
    """A run a worker now holds, with the steps it completed on earlier attempts."""

    run: Run
    steps: list[Step] = field(default_factory=list)

    @property
    def lease(self) -> Lease:
        return Lease(self.run.run_id, self.run.lease_generation)


@dataclass(frozen=True, slots=True)
class CheckpointWrite:
    """A pending write of a LangGraph task, serialized by the graph's serializer. ``idx``
    is the write's place in its task's writes, negative for a special channel (an error,
    an interrupt, ...), which a second write replaces."""

    task_id: str
    idx: int
    channel: str
    type: str
    value: bytes
    task_path: str = ""


#: How threads are pruned: deleted whole, or down to each one's latest checkpoint.
PRUNE_STRATEGIES = ("delete", "keep_latest")


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A LangGraph checkpoint as the store keeps it: serialized whole by the graph's
    serializer, with its metadata as JSON text (what list filters read). ``run_id`` is the
    run that wrote it; ``writes`` (when read back) its pending writes, in the order
    LangGraph applies them."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    run_id: str | None
    type: str
    checkpoint: bytes
    metadata: str
    writes: tuple[CheckpointWrite, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item of the memory store (``runplane.memory``): a JSON object under a namespace
    and a key, in its owner's space."""

    namespace: tuple[str, ...]
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    #: An item with a time to live is deleted this long after it was written or last read.
    ttl_minutes: float | None = None


#: What a store search's ``filter`` may compare a value with, besides equality.
COMPARISONS: Mapping[str, Callable[[Any, Any], bool]] = MappingProxyType({
    "$eq": operator.eq, "$ne": operator.ne, "$gt": operator.gt, "$gte": operator.ge,
    "$lt": operator.lt, "$lte": operator.le,
})


def is_comparison(condition: Any) -> bool:
    """A filter's condition that compares (``{"$gt": 3}``) rather than equals."""
    return isinstance(condition, dict) and bool(condition) and all(
        isinstance(k, str) and k.startswith("$") for k in condition)


def item_matches(value: Mapping[str, Any], conditions: Mapping[str, Any]) -> bool:
    """Whether an item's value meets every condition of a search's ``filter``: equal to
    a top-level key's value, or each comparison true (values that cannot be compared,
    like a string and a number, do not match)."""
    for key, condition in conditions.items():
        have = value.get(key)
        if not is_comparison(condition):
            if have != condition:
                return False
            continue
        for op, want in condition.items():
            try:
                if not COMPARISONS[op](have, want):
                    return False
            except TypeError:
                return False
    return True


@dataclass(frozen=True, slots=True)
class Cron:
    """A schedule of runs: at each of its times a run of ``assistant_id`` with ``payload``
    (the run's input, config, ...), on ``thread_id`` or on a thread of its own."""

    cron_id: str
    assistant_id: str
    thread_id: str | None
    schedule: str
    timezone: str | None
    payload: dict[str, Any]
    metadata: dict[str, Any]
    end_time: datetime | None
    enabled: bool
    #: The next time it fires (None once past its end time).
    next_run_at: datetime | None
    owner: str | None
    created_at: datetime
    updated_at: datetime

    def evolve(self, **changes: Any) -> Cron:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """A run's end POSTed to its ``webhook``: ``pending`` (due at ``next_attempt_at``),
    ``delivered``, or ``failed`` once its attempts ran out (``last_error`` says why)."""

    delivery_id: int
    run_id: str
    url: str
    #: the status the run ended with (a resumed run ends again: a delivery each end)
    run_status: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
