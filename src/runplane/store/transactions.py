"""The run state machine, written once for every store.

Each function here is one transaction of the :class:`~runplane.store.base.Store`
protocol: it reads what it needs, decides, and writes, all through a :class:`Tx`,
an open transaction of one dialect that knows its statements by name (see
:mod:`runplane.store.queries`). The decisions (what a cancel does to each status,
which runs a sweep covers and in which order, what a spawn under a cancelled
parent gets, what the reaper does with an expired lease, how a thread's
multitask rule applies) therefore exist once, and both databases take the same
steps in the same order.

What differs by database stays in the dialect: the SQL of each statement
(PostgreSQL's row locks live in its statements named ``…_for_update``,
``lock_tree_root``, ``share_tree_root``, where SQLite, a single writer, has
plain reads), the signals (PostgreSQL's ``pg_notify``, sent in the transaction
so it is delivered on commit; SQLite's notifier is in the process), the SQLite
connection thread, the workflow writes (PostgreSQL batches them into single
statements, SQLite writes them one at a time) and PostgreSQL's one-statement
claim. PostgreSQL's lock order is the order of the calls below: a sweep locks
the root before the tree, a spawn shares the root before it locks its parent,
and batches lock rows in creation order.

The functions are ``async`` so that PostgreSQL's connection can be awaited; on
SQLite every call returns without suspending, and :func:`drive` runs a whole
transaction in the connection thread.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from importlib import resources
from typing import Any, Protocol, TypeVar

from runplane.errors import (
    AssistantBusy,
    AssistantNotFound,
    Conflict,
    NotFound,
    NothingToResume,
    PausedElsewhere,
    RunConflict,
    RunExists,
    RunNotFound,
    ThreadActive,
    ThreadBusy,
    ThreadExists,
    ThreadNotFound,
)
from runplane.lifecycle import EventName
from runplane.limits import MAX_METADATA_BYTES, check_json
from runplane.models import (
    ANSWER_STEP,
    ANY_RUN,
    FINISHED,
    AssistantRecord,
    CancelAction,
    CancelOutcome,
    CancelRequest,
    CheckpointWrite,
    ClaimedRun,
    Cron,
    Event,
    Lease,
    NewRun,
    Run,
    RunFilter,
    RunStatus,
    Step,
    StoredCheckpoint,
    StoredItem,
    Thread,
    ThreadTTL,
    WebhookDelivery,
    Where,
    contains_any,
    is_comparison,
    item_matches,
    to_datetime,
    to_epoch,
)
from runplane.store.base import Cancelled, Created, OnActive, Reaped, Swept
from runplane.store.rows import (
    Row,
    assistant_from_row,
    checkpoint_from_row,
    checkpoint_write_from_row,
    cron_from_row,
    dumps,
    event_from_row,
    item_from_row,
    loads,
    run_from_row,
    step_from_row,
    thread_from_row,
    webhook_from_row,
)

log = logging.getLogger("runplane.store")

T = TypeVar("T")


class Tx(Protocol):
    """One open transaction of a dialect. ``query`` is a statement's name in the
    dialect's SQL file; a list argument is an array (PostgreSQL) or a JSON array
    (SQLite, read with ``json_each``)."""

    #: Errors a claim meets when another worker claimed a run of the same thread first:
    #: that run is left to it.
    CONTENDED: tuple[type[Exception], ...]
    #: Errors that say a run's stored row cannot be claimed (see ``rows.BadRow``).
    BAD_ROW: tuple[type[Exception], ...]

    async def row(self, query: str, *args: Any) -> Row | None: ...

    async def rows(self, query: str, *args: Any) -> Sequence[Row]: ...

    async def value(self, query: str, *args: Any) -> Any: ...

    async def execute(self, query: str, *args: Any) -> None: ...

    async def script(self, sql: str) -> None:
        """Run several statements (a migration file)."""

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A nested transaction: an error inside undoes only what it wrote."""

    async def signal_pending(self) -> None:
        """Tell other processes, on commit, that runs became pending."""

    async def signal_cancel(self, run_id: str, generation: int | None) -> None:
        """Tell the worker holding ``generation`` of ``run_id``, on commit, to stop it."""

    async def signal_changed(self, run_id: str) -> None:
        """Tell other processes' watchers of ``run_id``, on commit, that it moved."""


def drive(transaction: Coroutine[Any, Any, T]) -> T:
    """Run a transaction that never suspends (SQLite's, in its connection thread)."""
    try:
        transaction.send(None)
    except StopIteration as done:
        return done.value
    transaction.close()
    raise RuntimeError("a SQLite transaction suspended; its statements must not await")


#: Seconds between the cancels of one sweep, so the log shows children before parents
#: (ten microseconds: times are read back rounded to the microsecond).
SWEEP_TICK = 1e-5


# --------------------------------------------------------------------------- #
# pure decisions                                                               #
# --------------------------------------------------------------------------- #


def cancel_event(request: CancelRequest, from_status: RunStatus) -> dict[str, Any]:
    return {
        "action": request.action.value,
        "reason": request.reason,
        "requested_by": request.requested_by,
        "from_status": from_status.value,
    }


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


def thread_run(new: NewRun, thread_owner: str | None, own_thread_only: bool) -> NewRun:
    """``new`` as created on an existing thread: it gets the thread's owner (a thread's runs
    are its owner's, whoever started them). ``own_thread_only``: a thread of another owner
    is not found."""
    if own_thread_only and thread_owner != new.owner:
        raise ThreadNotFound(new.thread_id or "")
    return dataclasses.replace(new, owner=thread_owner)


def new_thread_metadata(new: NewRun) -> dict[str, Any]:
    """The metadata of a thread a run creates: the run's, with its thread tags unless it
    names a graph itself (as tagging a thread that does)."""
    if not new.thread_tags or "graph_id" in new.metadata:
        return new.metadata
    return {**new.metadata, **new.thread_tags}


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


def unclaimable_error(exc: Exception) -> str:
    """The ``error`` of a run ended because its row could not be claimed."""
    return f"run could not be started, its stored row is invalid: {type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- #
# threads                                                                      #
# --------------------------------------------------------------------------- #


async def get_thread(tx: Tx, thread_id: str) -> Thread | None:
    row = await tx.row("get_thread", thread_id)
    return None if row is None else thread_from_row(row)


async def create_thread(
    tx: Tx, thread_id: str, metadata: dict[str, Any], now: float, if_exists: str,
    owner: str | None, ttl: ThreadTTL | None = None,
) -> Thread:
    inserted = await tx.value("insert_thread", thread_id, now, dumps(metadata), owner,
                              *_ttl_columns(ttl))
    if not inserted and if_exists == "raise":
        raise ThreadExists(thread_id)
    thread = await get_thread(tx, thread_id)
    assert thread is not None  # inserted or found, in this transaction
    return thread


async def update_thread(
    tx: Tx, thread_id: str, metadata: dict[str, Any], now: float, ttl: ThreadTTL | None
) -> Thread | None:
    row = await tx.row("thread_metadata_for_update", thread_id)
    if row is None:
        return None
    merged = merge_metadata(row["metadata"], metadata)
    await tx.execute("update_thread_metadata", thread_id, dumps(merged), now)
    if ttl is not None:
        await tx.execute("set_thread_ttl", thread_id, *_ttl_columns(ttl), now)
    return await get_thread(tx, thread_id)


def _ttl_columns(ttl: ThreadTTL | None) -> tuple[str | None, float | None]:
    return (None, None) if ttl is None else (ttl.strategy, ttl.ttl_minutes)


async def expire_threads(tx: Tx, now: float, limit: int) -> list[str]:
    """The sweep of threads past their time to live (``Store.expire_threads``)."""
    expired = await tx.rows("expired_threads", now, limit)
    for row in expired:
        if row["ttl_strategy"] == "keep_latest":
            await prune_checkpoints(tx, [row["thread_id"]], keep_latest=True)
            await tx.execute("mark_ttl_swept", row["thread_id"], now)
        else:
            await delete_thread(tx, row["thread_id"])
    return [row["thread_id"] for row in expired]


async def delete_thread(tx: Tx, thread_id: str) -> bool:
    """The thread with its runs, then its checkpoints (the lock order: runs first)."""
    deleted = bool(await tx.value("delete_thread", thread_id))
    await delete_checkpoints(tx, thread_id)
    return deleted


async def copy_thread(
    tx: Tx, source_thread_id: str, target_thread_id: str, now: float, owner: str | None
) -> bool:
    """A new thread with the source's metadata, values, interrupts and checkpoints, as
    one snapshot (one transaction); False if the source does not exist."""
    if not await tx.value("copy_thread", source_thread_id, target_thread_id, now, owner):
        return False
    await copy_checkpoints(tx, source_thread_id, target_thread_id)
    return True


# --------------------------------------------------------------------------- #
# assistants                                                                   #
# --------------------------------------------------------------------------- #


async def _insert_version(tx: Tx, a: AssistantRecord, now: float) -> None:
    await tx.execute("insert_assistant_version", a.assistant_id, a.version, a.graph_id, a.name,
                     a.description, dumps(a.config), dumps(a.context), dumps(a.metadata), now)


async def get_assistant(tx: Tx, assistant_id: str, *, lock: bool = False
                        ) -> AssistantRecord | None:
    row = await tx.row("get_assistant_for_update" if lock else "get_assistant", assistant_id)
    return None if row is None else assistant_from_row(row)


async def search_assistants(
    tx: Tx, owner: str | None, graph_id: str | None, name: str | None,
    metadata: Mapping[str, Any] | None,
) -> list[AssistantRecord]:
    rows = await tx.rows("search_assistants", owner, graph_id, name,
                         None if metadata is None else dumps(metadata))
    return [assistant_from_row(r) for r in rows]


async def assistant_versions(
    tx: Tx, assistant_id: str, metadata: Mapping[str, Any] | None, limit: int, offset: int
) -> list[AssistantRecord]:
    rows = await tx.rows("assistant_versions", assistant_id,
                         None if metadata is None else dumps(metadata), limit, offset)
    return [assistant_from_row(r) for r in rows]


async def create_assistant(tx: Tx, new: AssistantRecord, now: float
                           ) -> tuple[AssistantRecord, bool]:
    """``new`` as version 1, and True; or the assistant that has its id, and False."""
    inserted = bool(await tx.value("insert_assistant", new.assistant_id, new.owner, now))
    if inserted:
        await _insert_version(tx, new.evolve(version=1), now)
    existing = await get_assistant(tx, new.assistant_id)
    assert existing is not None
    return existing, inserted


async def owned_assistant(tx: Tx, assistant_id: str, owner: str | None) -> AssistantRecord:
    """The assistant, locked (AssistantNotFound if it is not there for this owner)."""
    found = await get_assistant(tx, assistant_id, lock=True)
    if found is None or (owner is not None and found.owner != owner):
        raise AssistantNotFound(assistant_id)
    return found


async def update_assistant(
    tx: Tx, assistant_id: str, owner: str | None,
    change: Callable[[AssistantRecord], AssistantRecord], now: float,
) -> AssistantRecord:
    """A new version, ``change(current)``, made current: numbered after the last one
    (which is not the current one after a ``set_latest`` back)."""
    current = await owned_assistant(tx, assistant_id, owner)
    last = await tx.value("last_assistant_version", assistant_id)
    updated = change(current).evolve(version=last + 1, updated_at=to_datetime(now))
    await _insert_version(tx, updated, now)
    await tx.execute("set_assistant_version", assistant_id, updated.version, now)
    return updated


async def set_latest_assistant_version(
    tx: Tx, assistant_id: str, owner: str | None, version: int, now: float
) -> AssistantRecord:
    await owned_assistant(tx, assistant_id, owner)
    if not await tx.value("has_assistant_version", assistant_id, version):
        raise AssistantNotFound(assistant_id, version)
    await tx.execute("set_assistant_version", assistant_id, version, now)
    found = await get_assistant(tx, assistant_id)
    assert found is not None
    return found


async def delete_assistant(
    tx: Tx, assistant_id: str, owner: str | None, delete_threads: bool,
    threads_matching: Where = None,
) -> list[str]:
    """The assistant with its versions (refused while it has an active run: its row lock
    keeps a run from being created meanwhile), and with ``delete_threads`` the owner's
    threads that say they are the assistant's and whose metadata holds one of
    ``threads_matching``'s documents (an auth handler's filter; None: any), refused while
    one has an active run, of any assistant: the ids of the threads deleted."""
    await owned_assistant(tx, assistant_id, owner)
    active = [r["run_id"] for r in await tx.rows("active_runs_of_assistant", assistant_id)]
    if active:
        raise AssistantBusy(assistant_id, active)
    threads: list[str] = []
    if delete_threads:
        threads = [r["thread_id"] for r in
                   await tx.rows("threads_of_assistant", assistant_id, owner)
                   if threads_matching is None
                   or contains_any(loads(r["metadata"]), threads_matching)]
        for thread_id in threads:
            await tx.row("thread_owner_for_update", thread_id)
            busy = [r["run_id"] for r in await tx.rows("active_runs_of_thread", thread_id)]
            if busy:
                raise AssistantBusy(assistant_id, busy)
            await delete_thread(tx, thread_id)
    await tx.execute("delete_assistant_versions", assistant_id)
    await tx.execute("delete_assistant", assistant_id)
    return threads


# --------------------------------------------------------------------------- #
# runs, service side                                                           #
# --------------------------------------------------------------------------- #


async def get_run(tx: Tx, run_id: str, *, lock: bool = False) -> Run | None:
    row = await tx.row("get_run_for_update" if lock else "get_run", run_id)
    return None if row is None else run_from_row(row)


async def append(tx: Tx, run_id: str, seq: int, event: str, data: Any, now: float) -> None:
    await tx.execute("insert_event", run_id, seq, event, dumps(data), now)


async def insert_run(tx: Tx, new: NewRun, now: float) -> Run:
    row = await tx.row(
        "insert_run", new.run_id, new.thread_id, new.assistant_id, dumps(new.input),
        dumps(new.metadata), new.multitask_strategy.value, now, new.max_attempts, new.timeout,
        new.root_run_id, new.parent_run_id, new.owner, dumps(new.kwargs) if new.kwargs else "{}",
        new.not_before, new.workflow,
    )
    if row is None:
        raise RunExists(new.run_id)
    await append(tx, new.run_id, 1, EventName.RUN_CREATED,
                 {"assistant_id": new.assistant_id, "thread_id": new.thread_id}, now)
    return run_from_row(row)


async def create_run(
    tx: Tx, new: NewRun, now: float, on_active: OnActive, create_thread: bool,
    own_thread_only: bool,
) -> Created:
    """Insert a pending run, applying the thread's multitask rule first. The thread's row
    lock (PostgreSQL) serialises the decisions on one thread."""
    cancelled: list[Run] = []
    if new.workflow is not None and not await tx.value("share_assistant", new.assistant_id):
        raise AssistantNotFound(new.assistant_id)  # deleted since the service read it
    if new.thread_id is not None:
        thread_id = new.thread_id
        made = create_thread and bool(await tx.value(
            # a thread the run makes has the run's metadata, as on the LangGraph server
            "insert_thread", thread_id, now, dumps(new_thread_metadata(new)), new.owner,
            None, None))
        locked = await tx.row("thread_owner_for_update", thread_id)
        if locked is None:
            raise ThreadNotFound(thread_id)
        if new.thread_tags and not made:
            await tx.execute("tag_thread", thread_id, dumps(new.thread_tags), now)
        new = thread_run(new, locked["owner"], own_thread_only)
        active = [r["run_id"] for r in await tx.rows("active_runs_of_thread", thread_id)]
        if active and on_active == "reject":
            raise ThreadBusy(thread_id, active)
        if active and isinstance(on_active, CancelRequest):
            for run_id in active:  # with its attached children, which would outlive it
                swept = await sweep(tx, run_id, on_active, now, whole_tree=False)
                if swept is not None:
                    cancelled += [c.run for c in swept.runs
                                  if c.outcome is CancelOutcome.CANCELLED]
    run = await insert_run(tx, new, now)
    if new.takes_up_pause:
        run = await take_up_pause(tx, run, new.kwargs["command"]["resume"], now)
    await tx.signal_pending()
    return Created(run, cancelled)


async def take_up_pause(tx: Tx, run: Run, resume: Any, now: float) -> Run:
    """``run`` answers the pause of its (locked) thread: it takes the paused run's input
    and stored steps, and the answer as the step the pause stood at, so the workflow goes
    on from there, its completed steps replayed, not re-run. The pause is taken, in this
    transaction: a second answer finds nothing to resume."""
    assert run.thread_id is not None
    thread = await get_thread(tx, run.thread_id)
    if thread is None or not thread.interrupts:
        raise NothingToResume(run.thread_id)
    [(paused_id, asked)] = thread.interrupts.items()
    paused = await get_run(tx, paused_id)
    if paused is None or paused.assistant_id != run.assistant_id:
        raise PausedElsewhere(run.thread_id, "a graph" if paused is None
                              else f"workflow {paused.assistant_id!r}", run.assistant_id)
    ids = {interrupt["id"] for interrupt in asked}
    if isinstance(resume, dict) and resume and set(resume) <= ids:
        resume = resume[asked[0]["id"]]
    await tx.execute("copy_steps", paused_id, run.run_id)
    await tx.execute("insert_step", run.run_id, paused.step_index, ANSWER_STEP, dumps(resume),
                     now)
    await tx.execute("take_up_run", paused_id, run.run_id, paused.step_index + 1)
    await tx.execute("set_interrupts", run.thread_id, None)
    taken = await get_run(tx, run.run_id)
    assert taken is not None
    return taken


async def cancel(tx: Tx, run_id: str, request: CancelRequest, now: float) -> Cancelled | None:
    """One run's cancel: pending or running moves to ``interrupted`` with its fence bumped
    (the worker's next write is refused); interrupted or finished changes nothing."""
    current = await get_run(tx, run_id, lock=True)
    if current is None:
        return None
    if current.status is RunStatus.INTERRUPTED:
        return Cancelled(CancelOutcome.ALREADY_INTERRUPTED, current)
    if not current.status.active:
        return Cancelled(CancelOutcome.ALREADY_FINISHED, current)
    row = await tx.row("cancel", run_id, now, request.reason, request.action.value,
                       request.requested_by)
    assert row is not None  # locked and active above
    run = run_from_row(row)
    await append(tx, run_id, row["last_event_seq"], EventName.RUN_CANCEL,
                 cancel_event(request, current.status), now)
    if request.action is CancelAction.ROLLBACK:  # as if the run had never run
        await tx.execute("delete_steps", run_id)
        await delete_checkpoints_of_runs(tx, [run_id])
        if run.thread_id is not None and row["pre_run_values"] is not None:
            await tx.execute("rollback_values", run.thread_id, row["pre_run_values"], now, run_id)
    await tx.signal_cancel(run_id, run.cancelled_generation)
    return Cancelled(CancelOutcome.CANCELLED, run)


async def sweep(
    tx: Tx, run_id: str, request: CancelRequest, now: float, *, whole_tree: bool
) -> Swept | None:
    """Cancel ``run_id`` with its descendants (or its whole tree), leaves first.

    The root's row orders sweeps and spawns: a spawn shares it until it commits, a sweep
    locks it before reading the tree. Once a sweep holds it, no spawn is in flight in this
    tree and none can start, so one read sees every run.
    """
    run = await get_run(tx, run_id)
    if run is None:
        return None
    await tx.execute("lock_tree_root", run.root_run_id)
    tree = await get_tree(tx, run.root_run_id, lock=True)
    if not any(r.run_id == run_id for r in tree):  # deleted meanwhile
        return None
    done = []
    for k, rid in enumerate(sweep_order(tree, run_id, whole_tree=whole_tree)):
        done.append(await cancel(tx, rid, request, now + k * SWEEP_TICK))
    remaining = await tx.value("count_active_in_tree", run.root_run_id)
    results = [c for c in done if c is not None]
    target = next(c for c in results if c.run.run_id == run_id)
    return Swept(target, results, run.root_run_id, remaining)


async def get_tree(tx: Tx, root_run_id: str, *, lock: bool = False) -> list[Run]:
    rows = await tx.rows("get_tree_for_update" if lock else "get_tree", root_run_id)
    return [run_from_row(r) for r in rows]


async def spawn(tx: Tx, parent: Lease, new: NewRun, now: float) -> Run | None:
    """Create ``new`` under the run ``parent`` holds (see ``Store.spawn_run``). Root first,
    then the parent, as a sweep locks them."""
    holder = await get_run(tx, parent.run_id)
    if holder is not None:
        await tx.execute("share_tree_root", holder.root_run_id)
        holder = await get_run(tx, parent.run_id, lock=True)
    existing = await get_run(tx, new.run_id)
    if existing is not None or holder is None:
        return existing  # a replayed spawn re-attaches
    # a tree has one owner, and a child its parent's metadata (what an auth filter reads)
    child = dataclasses.replace(new, owner=holder.owner,
                                metadata={**holder.metadata, **new.metadata})
    if holder.status is RunStatus.RUNNING and holder.lease_generation == parent.generation:
        run = await insert_run(tx, child, now)
        await tx.signal_pending()
        return run
    if holder.status is RunStatus.INTERRUPTED and \
            holder.cancelled_generation == parent.generation:
        await insert_run(tx, child, now)  # nothing escapes the sweep that cancelled its parent
        done = await cancel(tx, new.run_id, spawned_under_cancel(holder), now)
        return None if done is None else done.run
    return None


async def resume(tx: Tx, run_id: str, now: float) -> Run:
    row = await tx.row("resume", run_id, now)
    if row is None:
        current = await get_run(tx, run_id)
        if current is None:
            raise RunNotFound(run_id)
        raise RunConflict(run_id, current.status.value,
                          f"run {run_id!r} is {current.status.value}; "
                          "only an interrupted run can be resumed")
    await append(tx, run_id, row["last_event_seq"], EventName.RUN_RESUME,
                 {"reason": "resumed", "step_index": row["step_index"]}, now)
    await tx.signal_pending()
    await tx.signal_changed(run_id)
    return run_from_row(row)


async def delete_run(tx: Tx, run_id: str) -> Run:
    current = await get_run(tx, run_id, lock=True)
    if current is None:
        raise RunNotFound(run_id)
    if current.status.active:
        raise RunConflict(run_id, current.status.value, delete_conflict(current))
    await tx.execute("delete_run", run_id)
    return current


async def list_runs(
    tx: Tx, thread_id: str | None, status: RunStatus | None, limit: int, offset: int,
    owner: str | None, where: RunFilter = ANY_RUN,
) -> list[Run]:
    rows = await tx.rows("list_runs", thread_id, status.value if status else None, limit,
                         offset, owner, *where.params())
    return [run_from_row(r) for r in rows]


async def count_runs(
    tx: Tx, thread_id: str | None, owner: str | None, where: RunFilter
) -> dict[RunStatus, int]:
    rows = await tx.rows("count_runs", thread_id, owner, *where.params())
    return {RunStatus(r["status"]): r["n"] for r in rows}


async def orphaned_runs(tx: Tx) -> list[Run]:
    return [run_from_row(r) for r in await tx.rows("orphaned_runs")]


async def run_marks(tx: Tx, run_ids: list[str]) -> dict[str, tuple[Any, ...]]:
    rows = await tx.rows("run_marks", run_ids)
    return {r["run_id"]: (r["status"], r["lease_owner"], r["last_event_seq"]) for r in rows}


async def get_steps(tx: Tx, run_id: str) -> list[Step]:
    return [step_from_row(r) for r in await tx.rows("get_steps", run_id)]


async def get_events(tx: Tx, run_id: str, after_seq: int) -> list[Event]:
    return [event_from_row(r) for r in await tx.rows("get_events", run_id, after_seq)]


# --------------------------------------------------------------------------- #
# runs, worker side                                                            #
# --------------------------------------------------------------------------- #


async def claim_one_by_one(
    tx: Tx, owner: str, workflows: list[str], limit: int, expires: float, now: float,
    exclude: list[str],
) -> list[ClaimedRun]:
    """Claim run by run, each in a savepoint: one run another worker's claim contends
    for is left to it, one whose row cannot be claimed or decoded ends ``error``, and
    neither stops the claim of the others."""
    claimed = []
    for record in await tx.rows("claimable", workflows, limit, exclude, now):
        run_id = record["run_id"]
        try:
            async with tx.savepoint():
                row = await tx.row("claim", run_id, owner, expires, now)
                assert row is not None  # pending and unlocked: just read
                run = run_from_row(row)
                await append(tx, run_id, row["last_event_seq"], EventName.RUN_START,
                             {"attempt": run.attempt, "worker": owner}, now)
                steps = await get_steps(tx, run_id) if run.step_index else []
        except tx.CONTENDED:
            continue
        except tx.BAD_ROW as exc:
            await fail_unclaimable(tx, run_id, exc, now)
            continue
        claimed.append(ClaimedRun(run, steps))
    return claimed


async def fail_unclaimable(tx: Tx, run_id: str, exc: Exception, now: float) -> None:
    """End a pending run whose row cannot be claimed, so the runs behind it can start."""
    error = unclaimable_error(exc)
    log.warning("run %s ended error: %s", run_id, error)
    seq = await tx.value("fail_pending", run_id, error, now)
    if seq is not None:
        await append(tx, run_id, seq, EventName.RUN_FAIL, {"error": error}, now)


async def renew_leases(tx: Tx, leases: list[Lease], expires: float) -> list[str]:
    """The run ids of ``leases`` whose fence refused the renewal."""
    rows = await tx.rows("renew_leases", expires, [x.run_id for x in leases],
                         [x.generation for x in leases])
    renewed = {(r["run_id"], r["lease_generation"]) for r in rows}
    return [x.run_id for x in leases if (x.run_id, x.generation) not in renewed]


async def lost_leases(tx: Tx, leases: list[Lease]) -> list[str]:
    rows = await tx.rows("held_leases", [x.run_id for x in leases])
    held = {r["run_id"]: r["lease_generation"] for r in rows}
    return [x.run_id for x in leases if held.get(x.run_id) != x.generation]


async def release_lease(tx: Tx, lease: Lease) -> None:
    """A stopped task's lease (a cancel's ``wait`` waits for this)."""
    await tx.execute("release_lease", lease.run_id, lease.generation)
    await tx.signal_changed(lease.run_id)


async def requeue(
    tx: Tx, lease: Lease, reason: str, now: float, in_flight: tuple[int, str] | None
) -> bool:
    """Hand a run back (see ``Store.requeue_run``), logging ``step:cancel`` for the step in
    flight unless it was stored after all (its write failed after the commit)."""
    if in_flight is not None and await tx.value("step_stored", lease.run_id, in_flight[0]):
        in_flight = None
    events = 1 if in_flight is None else 2
    seq = await tx.value("requeue", lease.run_id, lease.generation, now, events)
    if seq is None:
        return False
    if in_flight is not None:
        await append(tx, lease.run_id, seq - 1, EventName.STEP_CANCEL,
                     {"index": in_flight[0], "name": in_flight[1], "reason": reason}, now)
    await append(tx, lease.run_id, seq, EventName.RUN_RESUME, {"reason": reason}, now)
    await tx.signal_pending()
    await tx.signal_changed(lease.run_id)
    return True


async def reap(tx: Tx, now: float) -> list[Reaped]:
    """Re-queue running runs whose lease expired, or end them (attempts, deadline)."""
    reaped = []
    for r in await tx.rows("expired_leases", now):
        status, error, event = reap_decision(r["attempt"], r["max_attempts"], r["deadline_at"],
                                             now)
        seq = await tx.value("reap", r["run_id"], status.value, error, now)
        if seq is None:
            continue
        data = {"reason": "lease_expired", "attempt": r["attempt"], "worker": r["lease_owner"]}
        if error:
            data["error"] = error
        await append(tx, r["run_id"], seq, event, data, now)
        await tx.signal_changed(r["run_id"])
        reaped.append(Reaped(r["run_id"], status))
    if any(x.status is RunStatus.PENDING for x in reaped):
        await tx.signal_pending()
    return reaped


async def record_step_cancel(
    tx: Tx, lease: Lease, index: int, name: str, reason: str, now: float
) -> None:
    seq = await tx.value("step_cancel_seq", lease.run_id, lease.generation, index, now)
    if seq is not None:
        await append(tx, lease.run_id, seq, EventName.STEP_CANCEL,
                     {"name": name, "index": index, "reason": reason}, now)


# --------------------------------------------------------------------------- #
# LangGraph checkpoints                                                        #
# --------------------------------------------------------------------------- #


async def lease_holds(tx: Tx, lease: Lease | None) -> bool:
    """The fence of a checkpoint write (None: an unfenced write); on PostgreSQL the run's
    row stays shared until the write commits, so no cancel or takeover slips in between."""
    return lease is None or \
        bool(await tx.value("share_held_run", lease.run_id, lease.generation))


async def put_checkpoint(
    tx: Tx, checkpoint: StoredCheckpoint, lease: Lease | None, now: float
) -> bool:
    if not await lease_holds(tx, lease):
        return False
    c = checkpoint
    await tx.execute("upsert_checkpoint", c.thread_id, c.checkpoint_ns, c.checkpoint_id,
                     c.parent_checkpoint_id, c.run_id, c.type, c.checkpoint, c.metadata, now)
    return True


async def put_checkpoint_writes(
    tx: Tx, thread_id: str, checkpoint_ns: str, checkpoint_id: str,
    writes: Sequence[CheckpointWrite], run_id: str | None, lease: Lease | None, now: float,
) -> bool:
    if not await lease_holds(tx, lease):
        return False
    for w in writes:
        await tx.execute("upsert_checkpoint_write", thread_id, checkpoint_ns, checkpoint_id,
                         w.task_id, w.idx, w.task_path, w.channel, w.type, w.value, run_id, now)
    return True


async def put_thread_state(
    tx: Tx, thread_id: str, checkpoints: Sequence[StoredCheckpoint],
    writes: Mapping[tuple[str, str, str], Sequence[CheckpointWrite]], values: Any,
    interrupts: dict[str, Any] | None, now: float,
) -> None:
    """A state edit: its checkpoints (with their writes), the thread's values and pending
    interrupts, all or nothing, and only while no run is pending or running on the thread.
    The thread's row lock (PostgreSQL) is the one run creation takes: no run can be created
    between the check and the write."""
    if await tx.row("thread_owner_for_update", thread_id) is None:
        raise ThreadNotFound(thread_id)
    active = [r["run_id"] for r in await tx.rows("active_runs_of_thread", thread_id)]
    if active:
        raise ThreadActive(thread_id, active)
    for c in checkpoints:  # unfenced (no lease): the thread's guard above stands for it
        await put_checkpoint(tx, c, None, now)
    pending = [((c.thread_id, c.checkpoint_ns, c.checkpoint_id), c.writes) for c in checkpoints]
    for (thread, ns, checkpoint_id), held in [*pending, *writes.items()]:
        await put_checkpoint_writes(tx, thread, ns, checkpoint_id, held, None, None, now)
    await tx.execute("set_values", thread_id, dumps(values), None, now)
    await tx.execute("set_interrupts", thread_id, None if interrupts is None else dumps(interrupts))


async def with_writes(tx: Tx, rows: Sequence[Row]) -> list[StoredCheckpoint]:
    """Checkpoints read with their pending writes (one more statement for all of them)."""
    if not rows:
        return []
    keys = [(r["thread_id"], r["checkpoint_ns"], r["checkpoint_id"]) for r in rows]
    writes: dict[tuple[str, str, str], list[CheckpointWrite]] = {k: [] for k in keys}
    threads, namespaces, ids = (list(column) for column in zip(*keys, strict=True))
    for w in await tx.rows("writes_of_checkpoints", threads, namespaces, ids):
        key = (w["thread_id"], w["checkpoint_ns"], w["checkpoint_id"])
        writes[key].append(checkpoint_write_from_row(w))
    return [checkpoint_from_row(r, tuple(writes[k])) for r, k in zip(rows, keys, strict=True)]


async def get_checkpoint(
    tx: Tx, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
) -> StoredCheckpoint | None:
    row = await tx.row("get_checkpoint", thread_id, checkpoint_ns, checkpoint_id)
    found = await with_writes(tx, [] if row is None else [row])
    return found[0] if found else None


async def list_checkpoints(
    tx: Tx, thread_id: str | None, checkpoint_ns: str | None, checkpoint_id: str | None,
    metadata: dict[str, Any] | None, before: str | None, limit: int | None,
) -> list[StoredCheckpoint]:
    rows = await tx.rows("list_checkpoints", thread_id, checkpoint_ns, checkpoint_id, before,
                         None if metadata is None else dumps(metadata), limit)
    return await with_writes(tx, rows)


async def delete_checkpoints(tx: Tx, thread_id: str) -> None:
    await tx.execute("delete_thread_writes", thread_id)
    await tx.execute("delete_thread_checkpoints", thread_id)


async def delete_checkpoints_of_runs(tx: Tx, run_ids: list[str]) -> None:
    """The writes first: which are a run's checkpoints' is read from the checkpoints."""
    await tx.execute("delete_run_writes", run_ids)
    await tx.execute("delete_run_checkpoints", run_ids)


async def copy_checkpoints(tx: Tx, source_thread_id: str, target_thread_id: str) -> None:
    await tx.execute("copy_thread_checkpoints", source_thread_id, target_thread_id)
    await tx.execute("copy_thread_writes", source_thread_id, target_thread_id)


async def prune_checkpoints(tx: Tx, thread_ids: list[str], keep_latest: bool) -> None:
    """The writes first: which checkpoint is a namespace's newest is read from the
    checkpoints."""
    await tx.execute("prune_writes", thread_ids, keep_latest)
    await tx.execute("prune_checkpoints", thread_ids, keep_latest)


# --------------------------------------------------------------------------- #
# the memory store (items)                                                     #
# --------------------------------------------------------------------------- #


def _joined(namespace: Sequence[str]) -> str:
    return ".".join(namespace)  # a label cannot hold "." (RunService checks)


async def put_item(tx: Tx, owner: str, namespace: Sequence[str], key: str,
                   value: dict[str, Any], ttl_minutes: float | None, now: float) -> None:
    await tx.execute("put_item", owner, _joined(namespace), key, dumps(value), now, ttl_minutes)


async def get_item(tx: Tx, owner: str, namespace: Sequence[str], key: str, now: float,
                   refresh: bool) -> StoredItem | None:
    row = await tx.row("get_item", owner, _joined(namespace), key, now)
    if row is None:
        return None
    if refresh and row["ttl_minutes"] is not None:
        await tx.execute("refresh_item", owner, row["namespace"], key, now)
    return item_from_row(row)


async def delete_item(tx: Tx, owner: str, namespace: Sequence[str], key: str) -> None:
    await tx.execute("delete_item", owner, _joined(namespace), key)


async def search_items(
    tx: Tx, owner: str, prefix: Sequence[str], conditions: Mapping[str, Any], limit: int,
    offset: int, now: float, refresh: bool, required: Mapping[str, Any] | None = None,
) -> list[StoredItem]:
    """The items under ``prefix`` matching ``conditions`` and ``required`` (an auth
    handler's, both as ``item_matches`` takes them): equality on top-level keys of
    ``conditions`` is the statement's, the rest is applied here, before the page is cut."""
    equal = {k: v for k, v in conditions.items() if not is_comparison(v)}
    compared = {k: v for k, v in conditions.items() if is_comparison(v)}
    here = bool(compared or required)
    rows = await tx.rows("search_items", owner, _joined(prefix), now,
                         dumps(equal) if equal else None,
                         None if here else limit, 0 if here else offset)
    items = [item_from_row(r) for r in rows]
    if here:
        items = [i for i in items if item_matches(i.value, compared)
                 and item_matches(i.value, required or {})][offset:offset + limit]
    if refresh:
        for item in items:
            if item.ttl_minutes is not None:
                await tx.execute("refresh_item", owner, _joined(item.namespace), item.key, now)
    return items


async def item_namespaces(tx: Tx, owner: str, now: float) -> list[tuple[str, ...]]:
    return [tuple(r["namespace"].split(".")) for r in
            await tx.rows("item_namespaces", owner, now)]


async def expire_items(tx: Tx, now: float) -> int:
    return len(await tx.rows("expire_items", now))


# --------------------------------------------------------------------------- #
# crons                                                                        #
# --------------------------------------------------------------------------- #


async def insert_cron(tx: Tx, cron: Cron) -> Cron:
    row = await tx.row("insert_cron", cron.cron_id, cron.assistant_id, cron.thread_id,
                       cron.schedule, cron.timezone, dumps(cron.payload), dumps(cron.metadata),
                       to_epoch(cron.end_time), cron.enabled, to_epoch(cron.next_run_at),
                       cron.owner, cron.created_at.timestamp())
    assert row is not None
    return cron_from_row(row)


async def get_cron(tx: Tx, cron_id: str, *, lock: bool = False) -> Cron | None:
    row = await tx.row("get_cron_for_update" if lock else "get_cron", cron_id)
    return None if row is None else cron_from_row(row)


async def update_cron(tx: Tx, cron_id: str, owner: str | None,
                      change: Callable[[Cron], Cron]) -> Cron | None:
    """``change(current)`` stored, holding the cron; None if it is not there for ``owner``."""
    current = await get_cron(tx, cron_id, lock=True)
    if current is None or (owner is not None and current.owner != owner):
        return None
    c = change(current)
    row = await tx.row("update_cron", cron_id, c.schedule, c.timezone, dumps(c.payload),
                       dumps(c.metadata), to_epoch(c.end_time), c.enabled,
                       to_epoch(c.next_run_at), c.updated_at.timestamp())
    assert row is not None
    return cron_from_row(row)


async def delete_cron(tx: Tx, cron_id: str, owner: str | None) -> bool:
    current = await get_cron(tx, cron_id, lock=True)
    if current is None or (owner is not None and current.owner != owner):
        return False
    await tx.execute("delete_cron", cron_id)
    return True


async def search_crons(
    tx: Tx, owner: str | None, assistant_id: str | None, thread_id: str | None,
    enabled: bool | None, metadata: Mapping[str, Any] | None,
) -> list[Cron]:
    rows = await tx.rows("search_crons", owner, assistant_id, thread_id, enabled,
                         None if metadata is None else dumps(metadata))
    return [cron_from_row(r) for r in rows]


async def due_crons(tx: Tx, now: float, limit: int) -> list[Cron]:
    return [cron_from_row(r) for r in await tx.rows("due_crons", now, limit)]


async def fire_cron(
    tx: Tx, cron_id: str, scheduled: float, next_at: float | None, new: NewRun | None,
    now: float, on_active: OnActive, create_thread: bool, own_thread_only: bool,
) -> Created | None:
    """Fire the cron's time ``scheduled``: move it on to ``next_at`` and create its run
    ``new``, in one transaction. None if another process fired that time first (its
    ``next_run_at`` is no longer ``scheduled``), or if the run was refused (its thread
    busy under ``reject``, or gone): the time is spent all the same."""
    if not await tx.value("advance_cron", cron_id, scheduled, next_at):
        return None
    if new is None:
        return None
    try:
        async with tx.savepoint():
            return await create_run(tx, new, now, on_active, create_thread, own_thread_only)
    except (Conflict, NotFound) as exc:
        log.warning("cron %s: no run at %s: %s", cron_id, to_datetime(scheduled), exc)
        return None


# --------------------------------------------------------------------------- #
# webhooks                                                                     #
# --------------------------------------------------------------------------- #


async def claim_webhooks(tx: Tx, now: float, until: float, limit: int
                         ) -> list[WebhookDelivery]:
    return [webhook_from_row(r) for r in await tx.rows("claim_webhooks", now, until, limit)]


async def webhook_attempted(
    tx: Tx, delivery: WebhookDelivery, error: str | None, now: float, retry_at: float,
    max_attempts: int,
) -> None:
    """The outcome of the attempt ``delivery`` was claimed for: delivered (``error`` None),
    or tried again at ``retry_at`` unless it made ``max_attempts``."""
    if error is None:
        await tx.execute("webhook_delivered", delivery.delivery_id, now, delivery.attempts)
    else:
        await tx.execute("webhook_attempt_failed", delivery.delivery_id, error, retry_at,
                         max_attempts, delivery.attempts)


async def run_webhooks(tx: Tx, run_id: str) -> list[WebhookDelivery]:
    return [webhook_from_row(r) for r in await tx.rows("run_webhooks", run_id)]


# --------------------------------------------------------------------------- #
# schema                                                                       #
# --------------------------------------------------------------------------- #


async def migrate(tx: Tx, dialect: str, lock_key: str) -> list[str]:
    """Apply the dialect's migrations not applied yet, in name order; returns their names.
    One process migrates at a time (``lock_migrations``); the others then find nothing
    left to do."""
    await tx.execute("lock_migrations", lock_key)
    await tx.execute("create_migrations_table")
    applied = {r["version"] for r in await tx.rows("applied_migrations")}
    folder = resources.files("runplane.store") / "migrations" / dialect
    done = []
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".sql") and item.name not in applied:
            await tx.script(item.read_text())
            await tx.execute("record_migration", item.name)
            done.append(item.name)
    return done

