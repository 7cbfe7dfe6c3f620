"""RunService: every domain rule about runs and threads, over a Store.

HTTP routes, CLI commands and the Python API call these methods and add
nothing but translation. The store makes each decision atomically; the
service picks which decision to ask for, validates input before anything is
written, signals the local worker and waits where asked to.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection
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
    parse_enum,
)
from runplane.notifier import LocalNotifier, wait_event
from runplane.store.base import OnActive, Store


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
        return await self._store.list_threads(limit=limit, offset=offset)

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
        return await self._store.list_runs(
            thread_id=thread_id, status=wanted, limit=limit, offset=offset
        )

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
    def _metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
        if metadata is None:
            return {}
        if not isinstance(metadata, dict):
            raise ValueError(f"metadata must be a JSON object, got {type(metadata).__name__}")
        _require_json(metadata, "metadata")
        return metadata
