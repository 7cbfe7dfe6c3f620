"""``Runplane``: the Python API. Composes store, service and worker; adds no rules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

from runplane.clock import Clock, SystemClock
from runplane.config import Settings
from runplane.hooks import Hooks
from runplane.models import CancelResult, Event, Run, RunNode, Step, Thread
from runplane.notifier import LocalNotifier
from runplane.service import RunService
from runplane.store import Store, open_store
from runplane.worker import Worker, Workflow


class Threads:
    """``app.threads``: thin adapter over :class:`RunService`."""

    def __init__(self, service: Callable[[], RunService]) -> None:
        self._service = service

    async def create(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        thread_id: str | None = None,
        if_exists: str = "raise",
    ) -> Thread:
        return await self._service().create_thread(
            thread_id=thread_id, metadata=metadata, if_exists=if_exists
        )

    async def get(self, thread_id: str) -> Thread:
        return await self._service().get_thread(thread_id)

    async def list(self, *, limit: int = 10, offset: int = 0) -> list[Thread]:
        return await self._service().list_threads(limit=limit, offset=offset)

    async def search(
        self,
        *,
        metadata: dict[str, Any] | None = None,
        status: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[Thread]:
        return await self._service().search_threads(
            metadata=metadata, status=status, limit=limit, offset=offset)

    async def update(self, thread_id: str, *, metadata: dict[str, Any]) -> Thread:
        return await self._service().update_thread(thread_id, metadata=metadata)

    async def delete(self, thread_id: str) -> None:
        await self._service().delete_thread(thread_id)


class Runs:
    """``app.runs``: thin adapter over :class:`RunService`."""

    def __init__(self, service: Callable[[], RunService]) -> None:
        self._service = service

    async def create(
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
    ) -> Run:
        return await self._service().create_run(
            thread_id,
            assistant_id,
            input,
            multitask_strategy=multitask_strategy,
            metadata=metadata,
            timeout=timeout,
            max_attempts=max_attempts,
            if_not_exists=if_not_exists,
        )

    async def get(self, run_id: str) -> Run:
        return await self._service().get_run(run_id)

    async def list(
        self,
        thread_id: str | None = None,
        *,
        status: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[Run]:
        return await self._service().list_runs(
            thread_id, status=status, limit=limit, offset=offset
        )

    async def join(self, run_id: str) -> Any:
        return await self._service().join(run_id)

    async def cancel(
        self,
        run_id: str,
        *,
        action: str = "interrupt",
        wait: bool = False,
        reason: str | None = None,
        requested_by: str | None = None,
        scope: str = "run",
    ) -> CancelResult:
        """``scope="run"``: the run and its attached descendants; ``"tree"``: every run
        under its root, leaves first."""
        return await self._service().cancel(
            run_id, action=action, wait=wait, reason=reason, requested_by=requested_by,
            scope=scope,
        )

    async def tree(self, run_id: str) -> RunNode:
        """The root node of the tree ``run_id`` belongs to (``.children`` nested)."""
        return await self._service().tree(run_id)

    async def cancel_many(
        self,
        *,
        run_ids: list[str] | None = None,
        thread_id: str | None = None,
        status: str | None = None,
        action: str = "interrupt",
    ) -> list[tuple[str, str]]:
        return await self._service().cancel_many(
            run_ids=run_ids, thread_id=thread_id, status=status, action=action)

    async def resume(self, run_id: str) -> Run:
        return await self._service().resume(run_id)

    async def delete(self, run_id: str) -> Run:
        return await self._service().delete_run(run_id)

    def stream(self, run_id: str, *, after_seq: int = 0) -> AsyncIterator[Event | None]:
        return self._service().stream(run_id, after_seq=after_seq)

    async def steps(self, run_id: str) -> list[Step]:
        return await self._service().steps(run_id)

    async def events(self, run_id: str, *, after_seq: int = 0) -> list[Event]:
        return await self._service().events(run_id, after_seq=after_seq)


class Runplane:
    """A runplane application: registered workflows, a store and (optionally) a worker.

    ``database`` defaults to ``RUNPLANE_DATABASE_URL``, else ``sqlite:///./runplane.db``.
    Other keyword arguments override the matching ``RUNPLANE_*`` variables.
    """

    def __init__(
        self,
        database: str | None = None,
        *,
        worker: bool = True,
        concurrency: int | None = None,
        poll_interval: float | None = None,
        lease_ttl: float | None = None,
        heartbeat_interval: float | None = None,
        reap_interval: float | None = None,
        max_attempts: int | None = None,
        worker_id: str | None = None,
        shutdown_grace: float = 10.0,
        clock: Clock | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.settings = Settings.load(
            database_url=database,
            concurrency=concurrency,
            poll_interval=poll_interval,
            lease_ttl=lease_ttl,
            heartbeat_interval=heartbeat_interval,
            reap_interval=reap_interval,
            max_attempts=max_attempts,
            worker_id=worker_id,
        )
        self.run_worker = worker
        self.shutdown_grace = shutdown_grace
        self.clock = clock or SystemClock()
        self.hooks = hooks or Hooks()
        self.workflows: dict[str, Workflow] = {}
        self.threads = Threads(lambda: self.service)
        self.runs = Runs(lambda: self.service)
        self._store: Store | None = None
        self._service: RunService | None = None
        self._worker: Worker | None = None
        self._notifier: LocalNotifier | None = None

    def reconfigure(self, **overrides: Any) -> None:
        """Override settings (e.g. ``database_url``, ``concurrency``) before ``open()``: how
        the CLI applies ``--database`` and friends to an app it imported."""
        if self._store is not None:
            raise RuntimeError("reconfigure() must be called before the app is opened")
        if "shutdown_grace" in overrides:
            self.shutdown_grace = overrides.pop("shutdown_grace")
        if "worker" in overrides:
            self.run_worker = overrides.pop("worker")
        current = {f: getattr(self.settings, f) for f in self.settings.__slots__}
        self.settings = Settings.load(**{**current, **overrides})

    def workflow(self, name: str) -> Callable[[Workflow], Workflow]:
        """Register ``async def fn(ctx, input) -> output`` under ``name`` (its assistant_id)."""
        if not name or not isinstance(name, str):
            raise ValueError("a workflow needs a non-empty string name")

        def register(fn: Workflow) -> Workflow:
            if name in self.workflows:
                raise ValueError(f"workflow {name!r} is already registered")
            self.workflows[name] = fn
            return fn

        return register

    @property
    def service(self) -> RunService:
        if self._service is None:
            raise RuntimeError("Runplane is not open; use 'async with app:' or 'await app.open()'")
        return self._service

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("Runplane is not open; use 'async with app:' or 'await app.open()'")
        return self._store

    @property
    def worker(self) -> Worker | None:
        return self._worker

    async def open(self) -> None:
        """Open the store (applying migrations) and start the embedded worker."""
        if self._store is not None:
            return
        store = open_store(self.settings.database_url)
        notifier = LocalNotifier(store.run_marks, self.settings.poll_interval)
        try:
            await store.open()
            await store.listen(notifier.runs_pending, notifier.run_cancelled, notifier.changed)
        except BaseException:
            await store.close()
            raise
        self._notifier = notifier
        self._store = store
        self._service = RunService(
            store, self.workflows, self.settings, clock=self.clock, notifier=notifier
        )
        if self.run_worker:
            self._worker = Worker(
                store, self.workflows, self.settings,
                clock=self.clock, notifier=notifier, hooks=self.hooks, runs=self._service,
            )
            await self._worker.start()

    async def close(self) -> None:
        """Stop the worker (running runs get ``shutdown_grace`` seconds, then are handed
        back to the queue to resume elsewhere) and close the store."""
        if self._worker is not None:
            await self._worker.stop(self.shutdown_grace)
            self._worker = None
        if self._store is not None:
            await self._store.close()
            self._store = None
            self._service = None
        if self._notifier is not None:  # wakes waiters, which now meet StoreClosed
            await self._notifier.close()
            self._notifier = None

    async def __aenter__(self) -> Runplane:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
