"""``Runplane``: the Python API. Composes store, service and worker; adds no rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, cast

from runplane.assistants import GraphSource, Registry, default_assistant_id
from runplane.clock import Clock, SystemClock
from runplane.config import Settings
from runplane.hooks import Hooks
from runplane.notifier import LocalNotifier
from runplane.service import RunService
from runplane.store import Store, open_store
from runplane.worker import Worker, Workflow


class Operations:
    """The open app's :class:`RunService` methods under short names (``OPERATIONS``: short
    name -> service method). Each attribute IS the bound service method, with its signature
    and docstring, so the Python API offers whatever the service offers and cannot drift."""

    OPERATIONS: Mapping[str, str] = MappingProxyType({})

    def __init__(self, service: Callable[[], RunService]) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        if name not in self.OPERATIONS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(self._service(), self.OPERATIONS[name])  # raises unless the app is open

    def __dir__(self) -> list[str]:
        return sorted(self.OPERATIONS)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {', '.join(sorted(self.OPERATIONS))}>"


class Threads(Operations):
    """``app.threads``."""

    OPERATIONS = MappingProxyType({
        "create": "create_thread",
        "get": "get_thread",
        "list": "list_threads",
        "search": "search_threads",
        "count": "count_threads",
        "update": "update_thread",
        "delete": "delete_thread",
        "get_state": "get_state",
        "get_history": "get_history",
        "update_state": "update_state",
        "copy": "copy_thread",
        "prune": "prune_threads",
    })


class Runs(Operations):
    """``app.runs``."""

    OPERATIONS = MappingProxyType({
        "create": "create_run",
        "create_batch": "create_runs",
        "get": "get_run",
        "list": "list_runs",
        "count": "count_runs",
        "join": "join",
        "settled": "settled",
        "cancel": "cancel",
        "cancel_many": "cancel_many",
        "resume": "resume",
        "delete": "delete_run",
        "steps": "steps",
        "events": "events",
        "tree": "tree",
        "stream": "stream",
        "webhooks": "run_webhooks",
    })


class Assistants(Operations):
    """``app.assistants``: the assistants made through the API, beside the workflows' and
    graphs' own (``app.registry``)."""

    OPERATIONS = MappingProxyType({
        "create": "create_assistant",
        "get": "get_assistant",
        "update": "update_assistant",
        "delete": "delete_assistant",
        "search": "search_assistants",
        "count": "count_assistants",
        "versions": "assistant_versions",
        "set_latest": "set_latest_assistant_version",
        "code": "assistant_code",
    })


class Memory(Operations):
    """``app.memory``: the long-term memory store (what a graph's ``get_store()`` and a
    workflow's ``ctx.store`` read and write; see :mod:`runplane.memory`)."""

    OPERATIONS = MappingProxyType({
        "put": "put_item",
        "get": "get_item",
        "delete": "delete_item",
        "search": "search_items",
        "namespaces": "list_namespaces",
    })


class Crons(Operations):
    """``app.crons``: runs created on a schedule (see ``RunService.create_cron``)."""

    OPERATIONS = MappingProxyType({
        "create": "create_cron",
        "update": "update_cron",
        "delete": "delete_cron",
        "search": "search_crons",
        "count": "count_crons",
    })


class Runplane:
    """A runplane application: registered workflows, a store and (optionally) a worker.

    ``database`` defaults to ``RUNPLANE_DATABASE_URL``, else ``sqlite:///./runplane.db``.
    Other keyword arguments override the matching ``RUNPLANE_*`` variables (``worker``:
    ``RUNPLANE_WORKER``, default True): see :class:`runplane.config.Settings`.
    """

    def __init__(
        self,
        database: str | None = None,
        *,
        worker: bool | None = None,
        concurrency: int | None = None,
        poll_interval: float | None = None,
        lease_ttl: float | None = None,
        heartbeat_interval: float | None = None,
        reap_interval: float | None = None,
        cron_interval: float | None = None,
        webhook_interval: float | None = None,
        webhook_timeout: float | None = None,
        webhook_attempts: int | None = None,
        webhook_hosts: tuple[str, ...] | None = None,
        max_attempts: int | None = None,
        worker_id: str | None = None,
        shutdown_grace: float | None = None,
        clock: Clock | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.settings = Settings.load(
            database_url=database,
            worker=worker,
            concurrency=concurrency,
            poll_interval=poll_interval,
            lease_ttl=lease_ttl,
            heartbeat_interval=heartbeat_interval,
            reap_interval=reap_interval,
            cron_interval=cron_interval,
            webhook_interval=webhook_interval,
            webhook_timeout=webhook_timeout,
            webhook_attempts=webhook_attempts,
            webhook_hosts=webhook_hosts,
            max_attempts=max_attempts,
            shutdown_grace=shutdown_grace,
            worker_id=worker_id,
        )
        self.clock = clock or SystemClock()
        self.hooks = hooks or Hooks()
        self.workflows: dict[str, Workflow] = {}
        #: LangGraph graphs served, by graph id (see :meth:`add_graph`)
        self.graphs: dict[str, GraphSource] = {}
        self.registry = Registry(self.workflows, self.graphs)
        self.assistants = Assistants(lambda: self.service)
        self.memory = Memory(lambda: self.service)
        self.crons = Crons(lambda: self.service)
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
        current = {f: getattr(self.settings, f) for f in self.settings.__slots__}
        self.settings = Settings.load(**{**current, **overrides})

    @property
    def run_worker(self) -> bool:
        return self.settings.worker

    @property
    def shutdown_grace(self) -> float:
        return self.settings.shutdown_grace

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

    def add_graph(self, graph_id: str, graph: GraphSource | object) -> None:
        """Serve a LangGraph graph as the assistant ``graph_id``: each of its runs is a
        runplane run (see :mod:`runplane.graphs.runner`), under the LangGraph server's
        assistant id (:func:`runplane.assistants.default_assistant_id`). ``graph`` is what
        a ``langgraph.json`` may name (a compiled graph, a ``StateGraph``, a factory: see
        :mod:`runplane.graphs.sources`) or a source already made."""
        from runplane.graphs.runner import graph_workflow  # LangGraph only when serving one
        from runplane.graphs.sources import GraphSource as Source

        if not graph_id or not isinstance(graph_id, str):
            raise ValueError("a graph needs a non-empty string id")
        if graph_id in self.graphs or graph_id in self.workflows:
            raise ValueError(f"an assistant {graph_id!r} is already registered")
        source = cast(GraphSource, graph) if hasattr(graph, "build") \
            else Source.classify(graph_id, graph_id, graph)
        self.graphs[graph_id] = source
        self.workflows[default_assistant_id(graph_id)] = graph_workflow(source, lambda: self.store)

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
            await store.listen(notifier)
        except BaseException:
            await store.close()
            raise
        self._notifier = notifier
        self._store = store
        self._service = RunService(
            store, self.registry, self.settings, clock=self.clock, notifier=notifier
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
