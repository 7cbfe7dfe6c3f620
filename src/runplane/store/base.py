"""The narrow protocol every store implements.

The store is the single source of truth: every state change is one conditional
write (compare-and-set on ``status``, and on ``lease_generation`` for worker
writes) or one transaction. Worker writes take a :class:`Lease` and answer
``False`` when the fence refused them; nothing of a refused write is kept.

A database that cannot answer (connection lost or refused, server restarting,
SQLite busy or failing I/O) raises :class:`runplane.errors.StoreUnavailable`
from any call, each dialect telling it from a refused statement in one place;
a write that raised it may or may not have been stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from runplane.models import (
    ANY_RUN,
    AssistantRecord,
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
    ThreadQuery,
    ThreadTTL,
    WebhookDelivery,
    Where,
)

#: How ``create_run`` treats a thread that already has an active run.
OnActive = Literal["enqueue", "reject"] | CancelRequest


@dataclass(frozen=True, slots=True)
class Cancelled:
    """What one cancel write found and did."""

    outcome: CancelOutcome
    run: Run


@dataclass(frozen=True, slots=True)
class Swept:
    """What one cancel of a run with its descendants (or of a whole tree) found and did."""

    #: the run named by the call
    target: Cancelled
    #: every run the sweep covered, leaves first (the target among them)
    runs: list[Cancelled]
    root_run_id: str
    #: runs of the tree still pending or running once the sweep committed
    remaining_active: int


@dataclass(frozen=True, slots=True)
class Created:
    run: Run
    #: Active runs of the thread that this creation cancelled (strategies interrupt/rollback).
    cancelled: list[Run]


@dataclass(frozen=True, slots=True)
class Reaped:
    """A run whose lease expired and what the reaper did with it."""

    run_id: str
    status: RunStatus


class Signals(Protocol):
    """What a store tells this process of other processes' commits (the notifier)."""

    def runs_pending(self) -> None:
        """Runs became pending."""

    def run_cancelled(self, run_id: str, generation: int | None) -> None:
        """``run_id`` was cancelled, revoking lease ``generation`` (None: it was pending)."""

    def run_changed(self, run_id: str) -> None:
        """``run_id`` moved (ended, handed back, its lease released)."""

    def run_logged(self, run_id: str) -> None:
        """``run_id`` appended to its event log."""

    def changed(self) -> None:
        """Something was committed, the database cannot say what: re-read what you wait
        on."""


class Store(Protocol):
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None: ...

    #: The migrations ``open`` applied (none when the schema was up to date).
    migrations_applied: list[str] = []

    async def listen(self, signals: Signals) -> None:
        """Deliver other processes' signals to ``signals``, as far as the database can
        push them (see :class:`Signals`). What no signal covers is polled."""

    # --- threads -----------------------------------------------------------
    async def create_thread(
        self, thread_id: str, metadata: dict[str, Any], now: float, *, if_exists: str,
        owner: str | None = None, ttl: ThreadTTL | None = None,
    ) -> Thread:
        """``if_exists``: ``raise`` (ThreadExists) or ``do_nothing`` (return the existing one,
        whoever owns it: the service decides who may see it). ``ttl``: a new thread's."""

    async def get_thread(self, thread_id: str) -> Thread | None: ...

    async def search_threads(self, query: ThreadQuery) -> list[Thread]: ...

    async def count_threads(self, query: ThreadQuery) -> int: ...

    async def update_thread(
        self, thread_id: str, metadata: dict[str, Any], now: float, *,
        ttl: ThreadTTL | None = None,
    ) -> Thread | None:
        """Merge ``metadata`` into the thread's (top-level keys replace) and set its ``ttl``
        if given; None if missing."""

    async def expire_threads(self, now: float, limit: int) -> list[str]:
        """Sweep up to ``limit`` threads past their time to live with no active run: delete
        each (``delete``) or keep only its latest checkpoint (``keep_latest``, once per
        update of the thread). The ids swept."""

    async def delete_thread(self, thread_id: str) -> bool:
        """Delete the thread with its runs, steps, events and LangGraph checkpoints; False if
        it did not exist (its checkpoints, if any, are deleted all the same)."""

    async def copy_thread(
        self, source_thread_id: str, target_thread_id: str, now: float, *, owner: str | None
    ) -> bool:
        """A new thread ``target_thread_id`` (owned by ``owner``) with the source's
        metadata, values, pending interrupts and checkpoints, one snapshot of them; False
        if the source does not exist."""

    # --- assistants made through the API ----------------------------------
    async def create_assistant(self, new: AssistantRecord, now: float
                               ) -> tuple[AssistantRecord, bool]:
        """Store ``new`` as version 1 of a new assistant: it and True, or the assistant
        that already has its id and False."""

    async def get_assistant(self, assistant_id: str) -> AssistantRecord | None: ...

    async def search_assistants(
        self, *, owner: str | None, graph_id: str | None, name: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> list[AssistantRecord]:
        """Every assistant matching (``name``: a part of it, any case; ``metadata``: equal
        top-level keys), unsorted."""

    async def update_assistant(
        self, assistant_id: str, owner: str | None,
        change: Callable[[AssistantRecord], AssistantRecord], now: float,
    ) -> AssistantRecord:
        """Store ``change(current)`` as a new version and make it current, in one
        transaction holding the assistant; AssistantNotFound (also for another owner's)."""

    async def set_latest_assistant_version(
        self, assistant_id: str, owner: str | None, version: int, now: float
    ) -> AssistantRecord:
        """Make ``version`` current; AssistantNotFound if it or the assistant is not there."""

    async def assistant_versions(
        self, assistant_id: str, *, metadata: Mapping[str, Any] | None, limit: int,
        offset: int,
    ) -> list[AssistantRecord]:
        """Its versions, newest first."""

    async def delete_assistant(
        self, assistant_id: str, owner: str | None, *, delete_threads: bool,
        threads_matching: Where = None,
    ) -> list[str]:
        """Delete it with its versions (and with ``delete_threads``, its threads whose
        metadata holds one of ``threads_matching``'s documents if given: their ids), unless
        it or one of those threads has an active run (AssistantBusy)."""

    # --- the memory store (items; see runplane.memory) ---------------------
    async def put_item(self, owner: str, namespace: Sequence[str], key: str,
                       value: dict[str, Any], ttl_minutes: float | None, now: float) -> None:
        """Store (or replace) the item of ``owner``'s space."""

    async def get_item(self, owner: str, namespace: Sequence[str], key: str, now: float, *,
                       refresh: bool) -> StoredItem | None:
        """The item unless it expired; with ``refresh``, its time to live starts again."""

    async def delete_item(self, owner: str, namespace: Sequence[str], key: str) -> None: ...

    async def search_items(
        self, owner: str, prefix: Sequence[str], conditions: Mapping[str, Any], limit: int,
        offset: int, now: float, *, refresh: bool, required: Mapping[str, Any] | None = None,
    ) -> list[StoredItem]:
        """Unexpired items under ``prefix`` matching ``conditions`` and ``required`` (both
        as ``item_matches`` takes them), the most recently updated first; with
        ``refresh``, their times to live start again."""

    async def item_namespaces(self, owner: str, now: float) -> list[tuple[str, ...]]:
        """Every namespace holding an unexpired item of ``owner``."""

    async def expire_items(self, now: float) -> int:
        """Delete the items past their time to live; how many."""

    # --- crons --------------------------------------------------------------
    async def create_cron(self, cron: Cron) -> Cron: ...

    async def get_cron(self, cron_id: str) -> Cron | None: ...

    async def update_cron(self, cron_id: str, owner: str | None,
                          change: Callable[[Cron], Cron]) -> Cron | None:
        """Store ``change(current)`` holding the cron; None if not there for ``owner``."""

    async def delete_cron(self, cron_id: str, owner: str | None) -> bool: ...

    async def search_crons(
        self, *, owner: str | None, assistant_id: str | None, thread_id: str | None,
        enabled: bool | None, metadata: Mapping[str, Any] | None,
    ) -> list[Cron]:
        """Every matching cron, oldest first."""

    async def due_crons(self, now: float, limit: int) -> list[Cron]:
        """Enabled crons whose next time is not after ``now``, the most overdue first."""

    async def fire_cron(
        self, cron_id: str, scheduled: float, next_at: float | None, new: NewRun | None,
        now: float, *, on_active: OnActive, create_thread: bool = False,
        own_thread_only: bool = False,
    ) -> Created | None:
        """Move the cron from ``scheduled`` on to ``next_at`` and create its run, in one
        transaction; None if another process fired that time first or the run was refused
        (see ``transactions.fire_cron``)."""

    # --- webhooks (their outbox rows are written by the run's ending) --------
    async def claim_webhooks(self, now: float, until: float, limit: int
                             ) -> list[WebhookDelivery]:
        """Due deliveries, each taken for one attempt until ``until``."""

    async def webhook_attempted(
        self, delivery: WebhookDelivery, error: str | None, now: float, retry_at: float,
        max_attempts: int,
    ) -> None:
        """Record the attempt's outcome (``error`` None: delivered)."""

    async def run_webhooks(self, run_id: str) -> list[WebhookDelivery]:
        """The run's deliveries, oldest first."""

    # --- runs, service side -----------------------------------------------
    async def create_run(
        self, new: NewRun, now: float, *, on_active: OnActive, create_thread: bool = False,
        own_thread_only: bool = False,
    ) -> Created:
        """Insert a pending run and apply the multitask rule in the same transaction.

        ``create_thread`` creates a missing thread in that transaction too (owned by
        ``new.owner``); otherwise a missing thread raises ThreadNotFound. A run on an
        existing thread gets the thread's owner; with ``own_thread_only`` a thread that is
        not ``new.owner``'s raises ThreadNotFound. ThreadBusy (``reject``) writes nothing.
        """

    async def get_run(self, run_id: str) -> Run | None: ...

    async def list_runs(
        self, *, thread_id: str | None, status: RunStatus | None, limit: int, offset: int,
        owner: str | None = None, where: RunFilter = ANY_RUN,
    ) -> list[Run]:
        """Newest first; every filter given must hold (``owner``: that owner's runs only)."""

    async def count_runs(
        self, *, thread_id: str | None, owner: str | None = None, where: RunFilter = ANY_RUN,
    ) -> dict[RunStatus, int]:
        """How many runs of each status ``list_runs`` would find with these filters."""

    async def cancel_runs(
        self, run_id: str, request: CancelRequest, now: float, *, whole_tree: bool
    ) -> Swept | None:
        """Cancel ``run_id`` (pending or running: move it to ``interrupted`` and bump its
        fence; already interrupted: leave it; finished: a conflict that changes nothing) with
        its attached descendants, or (``whole_tree``) every run under its root, in one
        transaction: leaves first (each ``run:cancel`` ten microseconds
        after its children's), each run exactly once. None for an unknown run."""

    async def spawn_run(self, parent: Lease, new: NewRun, now: float) -> Run | None:
        """Create ``new`` as a child of the run ``parent`` holds, in one transaction with
        the parent's fence. A child of that id that exists already is returned as it is
        (a replayed spawn re-attaches). A parent cancelled under this lease gets its
        child created ``interrupted`` (nothing escapes a sweep); a lease otherwise lost
        gets None and nothing is written. The child gets its parent's owner: every run of
        a tree has the root's owner."""

    async def delete_run(self, run_id: str) -> Run:
        """Delete a run that is not active, with its steps and events, and return it as it
        was. RunNotFound for an unknown run; RunConflict (nothing deleted) for a pending or
        running one, which must be cancelled first."""

    async def get_tree(self, root_run_id: str) -> list[Run]:
        """Every run whose root is ``root_run_id``, in creation order."""

    async def resume_run(self, run_id: str, now: float) -> Run:
        """``interrupted`` -> ``pending``; raises RunNotFound or RunConflict."""

    async def run_marks(self, run_ids: list[str]) -> dict[str, tuple[Any, ...]]:
        """A cheap fingerprint per run: (status, lease owner, last event seq). What waiters
        for another process's changes poll (the first two: the run moved; the last: it logged
        an event)."""

    async def get_steps(self, run_id: str) -> list[Step]: ...

    async def get_events(self, run_id: str, *, after_seq: int = 0) -> list[Event]: ...

    # --- runs, worker side ------------------------------------------------
    async def claim_runs(
        self, owner: str, workflows: list[str], limit: int, lease_ttl: float, now: float,
        *, exclude: list[str] | None = None,
    ) -> list[ClaimedRun]:
        """Claim up to ``limit`` pending runs in creation order, one per thread, none of
        ``exclude`` (runs whose earlier attempt this worker is still unwinding)."""

    async def renew_leases(
        self, leases: list[Lease], lease_ttl: float, now: float
    ) -> list[str]:
        """Extend leases still held; returns the run ids whose fence refused the renewal."""

    async def lost_leases(self, leases: list[Lease]) -> list[str]:
        """Read-only: run ids of ``leases`` that are no longer running under that generation."""

    async def release_lease(self, lease: Lease) -> None:
        """The task of a cancelled run has stopped: forget its owner, unless the run was
        claimed again since (then the lease is the new holder's)."""

    async def requeue_run(
        self, lease: Lease, reason: str, now: float, *, in_flight: tuple[int, str] | None = None
    ) -> bool:
        """Fenced ``running`` -> ``pending`` of a run this worker gives up (graceful shutdown,
        a store fault), logging ``step:cancel`` for the step in flight in the same
        transaction unless that step was stored after all (its write failed after the
        commit); the attempt does not count against ``max_attempts``."""

    async def reap_expired(self, now: float) -> list[Reaped]:
        """Re-queue running runs whose lease expired (or end them: attempts, deadline)."""

    async def orphaned_runs(self) -> list[Run]:
        """Active attached children whose parent ended success, error or timeout (their
        parent's worker died before ending them, or the reaper ended the parent)."""

    def append_event(
        self, run_id: str, event: str, data: Any, now: float, *, lease: Lease | None
    ) -> Awaitable[bool]:
        """Append an event; with ``lease`` the write is fenced. ``values`` events also set
        the thread's values. (May return a future: workflows' writes are awaited through
        cancellation, and a future needs no task for that.)"""

    def complete_step(
        self, lease: Lease, index: int, name: str, result: Any, now: float
    ) -> Awaitable[bool]:
        """Store a step's result, advance the step index and log ``step:complete``, atomically."""

    async def record_step_cancel(
        self, lease: Lease, index: int, name: str, reason: str, now: float
    ) -> None:
        """Log ``step:cancel`` for the step in flight when ``lease`` was revoked, unless that
        step was stored after all or the run was claimed again since."""

    async def finish_run(
        self, lease: Lease, status: RunStatus, output: Any, error: str | None, now: float,
        traceback: str | None = None, interrupts: dict[str, Any] | None = None,
    ) -> bool:
        """Fenced move to a terminal status; on success the output becomes the thread's values.
        ``traceback`` is kept with a failed run, as given. The thread's ``interrupts`` become
        ``interrupts``: a graph run that paused leaves them, any other end clears them."""

    # --- LangGraph checkpoints (runplane.graphs.checkpointer) -------------------
    # A write with a lease is fenced like a step's: in its transaction the run must be
    # running under that generation, else nothing is written and the call answers False.
    # Without one it is not fenced (a write outside any run).
    async def put_thread_state(
        self, thread_id: str, checkpoints: Sequence[StoredCheckpoint],
        writes: Mapping[tuple[str, str, str], Sequence[CheckpointWrite]], values: Any,
        interrupts: dict[str, Any] | None, now: float,
    ) -> None:
        """A state edit, all or nothing: the checkpoints (with their writes), pending
        ``writes`` onto stored checkpoints (by thread, namespace, id), the thread's values
        and pending interrupts; ThreadActive while a run is pending or running on
        the thread (decided in the write's transaction), ThreadNotFound without it."""

    async def put_checkpoint(
        self, checkpoint: StoredCheckpoint, now: float, *, lease: Lease | None
    ) -> bool:
        """Store a checkpoint (one of the same thread, namespace and id is replaced)."""

    async def put_checkpoint_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str,
        writes: Sequence[CheckpointWrite], now: float, *, run_id: str | None,
        lease: Lease | None,
    ) -> bool:
        """Store a task's pending writes of a checkpoint, all or none. A write already
        stored (same task and idx) is kept, unless it is a special channel's (idx < 0)."""

    async def get_checkpoint(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> StoredCheckpoint | None:
        """That checkpoint, or (``checkpoint_id`` None) the namespace's newest, with its
        pending writes."""

    async def list_checkpoints(
        self, *, thread_id: str | None, checkpoint_ns: str | None,
        checkpoint_id: str | None = None, metadata: dict[str, Any] | None = None,
        before: str | None = None, limit: int | None = None,
    ) -> list[StoredCheckpoint]:
        """Newest first (checkpoint ids grow with time), with their pending writes; every
        filter given must hold: ``metadata``, each top-level key equal; ``before``, ids
        older than this one."""

    async def delete_checkpoints(self, thread_id: str) -> None:
        """Every checkpoint and write of the thread, in every namespace."""

    async def delete_checkpoints_of_runs(self, run_ids: Sequence[str]) -> None:
        """The checkpoints these runs wrote, with their writes, and the writes they made
        to other checkpoints (a rollback)."""

    async def copy_checkpoints(self, source_thread_id: str, target_thread_id: str) -> None:
        """Every checkpoint and write of the source thread, as the target's too."""

    async def prune_checkpoints(self, thread_ids: Sequence[str], *, keep_latest: bool) -> None:
        """Delete the threads' checkpoints and writes but (``keep_latest``) each
        namespace's newest checkpoint and its writes."""
