"""RunService: every domain rule about runs and threads, over a Store.

HTTP routes, CLI commands and the Python API call these methods and add
nothing but translation. The store makes each decision atomically; the
service picks which decision to ask for, validates input before anything is
written, signals the local worker and waits where asked to.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any

from runplane import metrics
from runplane.clock import Clock
from runplane.config import Settings
from runplane.errors import (
    RunCancelled,
    RunConflict,
    RunFailed,
    RunNotFound,
    ThreadNotFound,
    UnknownWorkflow,
)
from runplane.models import (
    THREAD_SORT_KEYS,
    CancelAction,
    CancelRequest,
    CancelResult,
    Event,
    MultitaskStrategy,
    NewRun,
    Run,
    RunStatus,
    Step,
    Thread,
    ThreadQuery,
    ThreadStatus,
    parse_enum,
)
from runplane.notifier import LocalNotifier, wait_event
from runplane.store.base import OnActive, Store

#: Events after which a run is over, unless it is resumed later.
ENDING_EVENTS = frozenset({"run:complete", "run:fail", "run:timeout", "run:cancel"})
#: What a bulk cancel may select by status.
BULK_STATUSES = ("pending", "running", "all")


def _new_id() -> str:
    return str(uuid.uuid4())


def _require_json(value: Any, what: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {exc}") from None


def _settled(run: Run, now: float) -> bool:
    """Terminal, and no worker still runs its task (released, or its lease ran out)."""
    if run.status.active:
        return False
    if run.lease_owner is None:
        return True
    return run.lease_expires_at is not None and run.lease_expires_at.timestamp() < now


class RunService:
    def __init__(
        self,
        store: Store,
        workflows: Collection[str],
        settings: Settings,
        *,
        clock: Clock,
        notifier: LocalNotifier,
    ) -> None:
        self._store = store
        self._workflows = workflows
        self._settings = settings
        self._clock = clock
        self._notifier = notifier

    # --- threads -----------------------------------------------------------
    async def create_thread(
        self,
        *,
        thread_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        if_exists: str = "raise",
    ) -> Thread:
        if if_exists not in ("raise", "do_nothing"):
            raise ValueError(f"invalid if_exists {if_exists!r}; allowed values: 'raise', "
                             "'do_nothing'")
        metadata = self._metadata(metadata)
        return await self._store.create_thread(
            thread_id or _new_id(), metadata, self._clock.now(), if_exists=if_exists
        )

    async def get_thread(self, thread_id: str) -> Thread:
        thread = await self._store.get_thread(thread_id)
        if thread is None:
            raise ThreadNotFound(thread_id)
        return thread

    async def list_threads(self, *, limit: int = 10, offset: int = 0) -> list[Thread]:
        return await self._store.search_threads(ThreadQuery(limit=limit, offset=offset))

    async def search_threads(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        status: str | None = None,
        ids: list[str] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str = "created_at",
        sort_order: str = "desc",
    ) -> list[Thread]:
        return await self._store.search_threads(self._thread_query(
            metadata, status, ids, limit, offset, sort_by, sort_order))

    async def count_threads(
        self, *, metadata: dict[str, Any] | None = None, status: str | None = None
    ) -> int:
        return await self._store.count_threads(self._thread_query(metadata, status))

    async def update_thread(self, thread_id: str, *, metadata: dict[str, Any] | None) -> Thread:
        thread = await self._store.update_thread(
            thread_id, self._metadata(metadata), self._clock.now())
        if thread is None:
            raise ThreadNotFound(thread_id)
        return thread

    async def delete_thread(self, thread_id: str) -> None:
        """Cancel the thread's active runs (their workers stop as for any cancel), then
        delete the thread with its runs, steps and events."""
        await self.get_thread(thread_id)
        await self.cancel_many(thread_id=thread_id, status="all",
                               reason="thread deleted", requested_by="thread_delete")
        if not await self._store.delete_thread(thread_id):
            raise ThreadNotFound(thread_id)

    # --- runs --------------------------------------------------------------
    async def create_run(
        self,
        thread_id: str | None,
        assistant_id: str,
        input: Any = None,
        *,
        multitask_strategy: str = "enqueue",
        metadata: dict[str, Any] | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
        if_not_exists: str = "reject",
        run_id: str | None = None,
    ) -> Run:
        """Validate everything, then insert the run and apply the multitask rule atomically."""
        if assistant_id not in self._workflows:
            raise UnknownWorkflow(assistant_id, list(self._workflows))
        strategy = parse_enum(MultitaskStrategy, multitask_strategy, "multitask_strategy")
        if if_not_exists not in ("reject", "create"):
            raise ValueError(f"invalid if_not_exists {if_not_exists!r}; allowed values: "
                             "'reject', 'create'")
        _require_json(input, "input")
        metadata = self._metadata(metadata)
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        attempts = self._settings.max_attempts if max_attempts is None else max_attempts
        if attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {attempts}")
        now = self._clock.now()
        run_id = run_id or _new_id()
        on_active: OnActive
        if strategy is MultitaskStrategy.REJECT:
            on_active = "reject"
        elif strategy is MultitaskStrategy.ENQUEUE:
            on_active = "enqueue"
        else:
            on_active = CancelRequest(
                action=CancelAction(strategy.value),
                reason=f"superseded by run {run_id} (multitask_strategy={strategy.value})",
                requested_by="multitask",
            )
        created = await self._store.create_run(
            NewRun(
                run_id=run_id,
                thread_id=thread_id,
                assistant_id=assistant_id,
                input=input,
                metadata=metadata,
                multitask_strategy=strategy,
                max_attempts=attempts,
                timeout=timeout,
                root_run_id=run_id,
            ),
            now,
            on_active=on_active,
            create_thread=if_not_exists == "create",
        )
        for cancelled in created.cancelled:
            metrics.CANCEL_REQUESTS.labels("cancelled").inc()
            self._notifier.run_cancelled(cancelled.run_id, cancelled.cancelled_generation)
        self._notifier.runs_pending()
        return created.run

    async def get_run(self, run_id: str, *, thread_id: str | None = None) -> Run:
        run = await self._store.get_run(run_id)
        if run is None or (thread_id is not None and run.thread_id != thread_id):
            raise RunNotFound(run_id)
        return run

    async def list_runs(
        self,
        thread_id: str | None = None,
        *,
        status: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[Run]:
        wanted = None if status is None else parse_enum(RunStatus, status, "status")
        if thread_id is not None:
            await self.get_thread(thread_id)
        return await self._store.list_runs(
            thread_id=thread_id, status=wanted, limit=limit, offset=offset
        )

    async def delete_run(self, run_id: str, *, thread_id: str | None = None) -> Run:
        """Only a run that is not active: a pending or running one must be cancelled first."""
        await self.get_run(run_id, thread_id=thread_id)
        return await self._store.delete_run(run_id)

    async def steps(self, run_id: str) -> list[Step]:
        await self.get_run(run_id)
        return await self._store.get_steps(run_id)

    async def events(self, run_id: str, *, after_seq: int = 0) -> list[Event]:
        await self.get_run(run_id)
        return await self._store.get_events(run_id, after_seq=after_seq)

    async def cancel(
        self,
        run_id: str,
        *,
        action: str = "interrupt",
        wait: bool = False,
        reason: str | None = None,
        requested_by: str | None = None,
        thread_id: str | None = None,
    ) -> CancelResult:
        """Idempotent: a second cancel of an interrupted run answers ``already_interrupted``
        with the first request's reason and time. Finished runs raise RunConflict."""
        request = CancelRequest(
            action=parse_enum(CancelAction, action, "action"),
            reason=reason,
            requested_by=requested_by,
        )
        if thread_id is not None:
            try:
                await self.get_run(run_id, thread_id=thread_id)
            except RunNotFound:
                metrics.CANCEL_REQUESTS.labels("not_found").inc()
                raise
        result = await self._store.cancel_run(run_id, request, self._clock.now())
        if result is None:
            metrics.CANCEL_REQUESTS.labels("not_found").inc()
            raise RunNotFound(run_id)
        metrics.CANCEL_REQUESTS.labels(result.outcome).inc()
        if result.outcome == "conflict":
            raise RunConflict(
                run_id,
                result.run.status.value,
                f"run {run_id!r} already ended with status {result.run.status.value!r}; "
                "only pending or running runs can be cancelled",
            )
        if result.outcome == "cancelled":
            self._notifier.run_cancelled(run_id, result.run.cancelled_generation)
        run = result.run
        if wait:
            run = await self.wait(run_id, _settled)
        return CancelResult(result.outcome, run, stopped=_settled(run, self._clock.now()))

    async def cancel_many(
        self,
        *,
        run_ids: list[str] | None = None,
        thread_id: str | None = None,
        status: str | None = None,
        action: str = "interrupt",
        reason: str | None = None,
        requested_by: str | None = None,
    ) -> list[tuple[str, str]]:
        """Cancel each run named or selected (``status``: pending, running or all active ones,
        of ``thread_id`` if given), by the rules of :meth:`cancel`. Answers (run_id, outcome)
        per run: cancelled, already_interrupted, conflict or not_found."""
        parse_enum(CancelAction, action, "action")
        if run_ids is None and thread_id is None and status is None:
            raise ValueError("name the runs to cancel: run_ids, thread_id or status")
        if status is not None and status not in BULK_STATUSES:
            raise ValueError(f"invalid status {status!r}; allowed values: "
                             f"{', '.join(map(repr, BULK_STATUSES))}")
        if thread_id is not None:
            await self.get_thread(thread_id)
        if run_ids is None:
            run_ids = await self._active_run_ids(thread_id, status or "all")
        outcomes = []
        for run_id in dict.fromkeys(run_ids):
            try:
                result = await self.cancel(run_id, action=action, reason=reason,
                                           requested_by=requested_by, thread_id=thread_id)
                outcomes.append((run_id, result.outcome))
            except RunNotFound:
                outcomes.append((run_id, "not_found"))
            except RunConflict:
                outcomes.append((run_id, "conflict"))
        return outcomes

    async def _active_run_ids(self, thread_id: str | None, status: str) -> list[str]:
        wanted = [RunStatus.PENDING, RunStatus.RUNNING] if status == "all" else \
            [RunStatus(status)]
        run_ids: list[str] = []
        for one in wanted:  # a snapshot first: cancelling moves runs out of the filter
            offset = 0
            while page := await self._store.list_runs(
                thread_id=thread_id, status=one, limit=500, offset=offset
            ):
                run_ids += [r.run_id for r in page]
                offset += len(page)
        return run_ids

    async def resume(self, run_id: str) -> Run:
        run = await self._store.resume_run(run_id, self._clock.now())
        self._notifier.runs_pending()
        return run

    async def join(self, run_id: str) -> Any:
        """Wait until the run ended and its task stopped; return its output or raise why not."""
        run = await self.wait(run_id, _settled)
        if run.status is RunStatus.SUCCESS:
            return run.output
        if run.status is RunStatus.INTERRUPTED:
            raise RunCancelled(run)
        raise RunFailed(run)

    async def settled(self, run_id: str) -> Run:
        """The run once it ended and its task stopped, whatever the outcome."""
        return await self.wait(run_id, _settled)

    async def stream(
        self, run_id: str, *, after_seq: int = 0, idle: float | None = None
    ) -> AsyncIterator[Event | None]:
        """The run's event log from ``after_seq`` on, followed live; ends after the event
        that ended the run (a cancel ends it too, unless the run was resumed since).
        With ``idle``, yields None after each ``idle`` seconds without an event (a tick for
        keep-alives)."""
        await self.get_run(run_id)
        with self._notifier.watch(run_id, events=True) as logged:
            while True:
                logged.clear()
                events = await self._store.get_events(run_id, after_seq=after_seq)
                for event in events:
                    yield event
                    after_seq = event.seq
                if events and events[-1].event in ENDING_EVENTS:
                    run = await self._store.get_run(run_id)
                    if run is None or run.status.terminal:
                        return
                if not events:
                    try:
                        async with asyncio.timeout(idle):
                            await logged.wait()
                    except TimeoutError:
                        yield None

    async def wait(self, run_id: str, until: Callable[[Run, float], bool]) -> Run:
        """Re-read the run until ``until(run, now)``: woken by this process's changes,
        polling for other processes'."""
        with self._notifier.watch(run_id) as changed:
            while True:
                changed.clear()
                run = await self.get_run(run_id)
                now = self._clock.now()
                if until(run, now):
                    return run
                # Nobody writes when a dead worker's lease runs out: wake up then by ourselves.
                expiry = None if run.lease_expires_at is None else \
                    max(0.0, run.lease_expires_at.timestamp() - now) + self._settings.poll_interval
                await wait_event(changed, expiry)

    @staticmethod
    def _thread_query(
        metadata: dict[str, Any] | None,
        status: str | None,
        ids: list[str] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str = "created_at",
        sort_order: str = "desc",
    ) -> ThreadQuery:
        if sort_by not in THREAD_SORT_KEYS:
            raise ValueError(f"invalid sort_by {sort_by!r}; allowed values: "
                             f"{', '.join(map(repr, THREAD_SORT_KEYS))}")
        if sort_order not in ("asc", "desc"):
            raise ValueError(f"invalid sort_order {sort_order!r}; allowed values: 'asc', 'desc'")
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")
        return ThreadQuery(
            metadata=RunService._metadata(metadata),
            status=None if status is None else parse_enum(ThreadStatus, status, "status"),
            ids=ids, limit=limit, offset=offset, sort_by=sort_by,
            descending=sort_order == "desc",
        )

    @staticmethod
    def _metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
        if metadata is None:
            return {}
        if not isinstance(metadata, dict):
            raise ValueError(f"metadata must be a JSON object, got {type(metadata).__name__}")
        _require_json(metadata, "metadata")
        return metadata
