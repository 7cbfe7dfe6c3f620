"""RunService: every domain rule about runs and threads, over a Store.

HTTP routes, CLI commands and the Python API call these methods and add
nothing but translation. The store makes each decision atomically; the
service picks which decision to ask for, validates input before anything is
written, signals the local worker and waits where asked to.

Who may see what: every method that reads or changes threads or runs takes the
``caller``. An owner's reads (lists, searches, counts, bulk-cancel selections)
are filtered in the store, so paging and counts hold; another owner's thread
or run is not found, exactly like an unknown id. Ownership never changes and
never mixes: a run on a thread is the thread's owner's, a child its parent's,
so a tree, a thread's runs and a multitask sweep each belong to one owner, and
an allowed cancel never reaches another owner's run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar
from urllib.parse import urlsplit

import httpx

from runplane import limits, metrics
from runplane.assistants import Assistant, GraphSource, Registry
from runplane.clock import Clock
from runplane.config import Settings
from runplane.errors import (
    STORE_FAULTS,
    AssistantExists,
    AssistantNotFound,
    BuiltinAssistant,
    ChildCancelled,
    ChildFailed,
    Conflict,
    CronNotFound,
    InvalidInput,
    NotFound,
    NothingToResume,
    RunCancelled,
    RunConflict,
    RunFailed,
    RunNotFound,
    StoreUnavailable,
    ThreadExists,
    ThreadNotFound,
    UnknownWorkflow,
)
from runplane.lifecycle import ENDING_EVENTS
from runplane.models import (
    ASSISTANT_SORT_KEYS,
    COMPARISONS,
    CRON_SORT_KEYS,
    PRUNE_STRATEGIES,
    STREAM_MODES,
    SWEPT_OUTCOMES,
    THREAD_SORT_KEYS,
    AssistantRecord,
    Caller,
    CancelAction,
    CancelOutcome,
    CancelRequest,
    CancelResult,
    Cron,
    Event,
    Lease,
    MultitaskStrategy,
    NewRun,
    Run,
    RunFilter,
    RunNode,
    RunStatus,
    Step,
    StoredItem,
    Thread,
    ThreadQuery,
    ThreadStatus,
    ThreadTTL,
    WebhookDelivery,
    Where,
    is_comparison,
    owner_filter,
    parse_enum,
    to_datetime,
    to_epoch,
)
from runplane.notifier import LocalNotifier, backoff, wait_event
from runplane.schedules import check_schedule, check_timezone, next_fire
from runplane.store.base import Created, OnActive, Store

if TYPE_CHECKING:
    from langgraph.types import StateSnapshot

CANCEL_SCOPES = ("run", "tree")
#: What a bulk cancel may select by status.
BULK_STATUSES = ("pending", "running", "all")


log = logging.getLogger("runplane.service")
T = TypeVar("T")

#: The namespace of the ids of crons' runs (uuid5 of the cron's id and the time).
CRON_RUNS = uuid.UUID("0f6d3a52-8c1e-4a53-9b7e-6a2f1d9c4e21")
#: ``update_cron``'s ``end_time`` when it is not given (None clears the end).
KEEP: Any = object()


def _new_id() -> str:
    return str(uuid.uuid4())


def _handled(caller: Caller | None) -> TypeGuard[Caller]:
    """Whether a project's auth handlers act for ``caller`` (and may have changed what it
    asked)."""
    return caller is not None and caller.handlers is not None


def _run_user(caller: Caller | None) -> dict[str, Any] | None:
    """What a run keeps of the user a project's auth handlers authenticated (its graph
    reads it from ``configurable``: see ``graphs.runner.run_config``)."""
    if not _handled(caller):
        return None
    return {"user": caller.user.stored(), "permissions": list(caller.permissions)}


def _checking(caller: Caller | None) -> Caller | None:
    """``caller`` checking what a cron's runs would be: no run is created now, so the
    ``threads.create_run`` handler is not asked (the cron's own handler was)."""
    if caller is None or "threads" in caller.filters:
        return caller
    return dataclasses.replace(caller, filters={**caller.filters, "threads": None})


def _where(caller: Caller | None, resource: str) -> Where:
    """What ``resource``'s metadata must match for ``caller`` (None: anything)."""
    return None if caller is None else caller.filters.get(resource)


def _page(limit: Any, offset: Any) -> None:
    limits.check_int("limit", limit, 0, limits.MAX_LIMIT)
    limits.check_int("offset", offset, 0, limits.MAX_OFFSET)


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
        registry: Registry,
        settings: Settings,
        *,
        clock: Clock,
        notifier: LocalNotifier,
    ) -> None:
        self._store = store
        self._registry = registry
        self._settings = settings
        self._clock = clock
        self._notifier = notifier
        #: when a workflow's or graph's own assistant was made (what the API shows)
        self._started = clock.now()

    # --- threads -----------------------------------------------------------
    async def create_thread(
        self,
        *,
        thread_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        if_exists: str = "raise",
        ttl: float | dict[str, Any] | None = None,
        caller: Caller | None = None,
    ) -> Thread:
        """A thread id is unique across owners: ``do_nothing`` on an id another owner took
        raises ThreadExists rather than hand that owner's thread over. ``ttl``: minutes, or
        ``{"ttl": minutes, "strategy": "delete" | "keep_latest"}``, as LangGraph takes it:
        that long after its last update the thread is swept (see :meth:`expire_threads`)."""
        limits.check_choice("if_exists", if_exists, ("raise", "do_nothing"))
        metadata = self._metadata(metadata)
        if thread_id:  # none or empty: a new id
            limits.check_id("thread_id", thread_id)
        thread_id = thread_id or _new_id()
        asked: dict[str, Any] = {
            "thread_id": thread_id, "metadata": metadata, "if_exists": if_exists, "ttl": ttl}
        caller = await self._authorize(caller, "threads", "create", asked)
        if _handled(caller):  # what the handler left, checked again
            metadata = self._metadata(asked["metadata"])
        thread = await self._store.create_thread(
            thread_id, metadata, self._clock.now(), if_exists=if_exists,
            owner=None if caller is None else caller.owner, ttl=_thread_ttl(ttl),
        )
        if caller is not None and not caller.sees(thread.owner, "threads", thread.metadata):
            raise ThreadExists(thread_id)
        return thread

    async def get_thread(self, thread_id: str, *, caller: Caller | None = None) -> Thread:
        limits.check_id("thread_id", thread_id)
        caller = await self._authorize(caller, "threads", "read",
                                       {"thread_id": thread_id, "run_id": None})
        thread = await self._store.get_thread(thread_id)
        if thread is None or (caller is not None
                              and not caller.sees(thread.owner, "threads", thread.metadata)):
            raise ThreadNotFound(thread_id)
        return thread

    async def _authorize(self, caller: Caller | None, resource: str, action: str,
                         value: dict[str, Any]) -> Caller | None:
        """``caller`` with what the project's auth handler for ``resource``/``action`` said
        its metadata must match (see :mod:`runplane.auth_handlers`); the handler may change
        ``value``. Once a method per resource: the calls it makes inside reuse the answer;
        a read or search asked again with the same value in one request (a stream's polls)
        reuses it too."""
        if not _handled(caller) or resource in caller.filters:
            return caller
        key = (resource, action, json.dumps(value, sort_keys=True, default=str))
        if action in ("read", "search") and key in caller.decided:  # asked before: polls
            where = caller.decided[key]
        else:
            where = await caller.handlers.authorize(caller, resource, action, value)
            if action in ("read", "search"):
                caller.decided[key] = where
        return dataclasses.replace(caller, filters={**caller.filters, resource: where})

    async def get_state(
        self, thread_id: str, *, checkpoint_id: str | None = None, subgraphs: bool = False,
        caller: Caller | None = None,
    ) -> Thread | StateSnapshot:
        """A graph thread's state, read from its checkpoints (at its latest, or at
        ``checkpoint_id``) as LangGraph's ``StateSnapshot``; a workflow's thread (or one
        whose graph this app does not serve) is its own state: its values."""
        thread = await self.get_thread(thread_id, caller=caller)
        source = self._graph_of(thread)
        if checkpoint_id is not None:
            limits.check_id("checkpoint_id", checkpoint_id)
        if source is None:
            if checkpoint_id is not None:
                raise InvalidInput("checkpoint_id", f"thread {thread_id!r} has no checkpoints")
            return thread
        from runplane.graphs.state import read_state

        return await read_state(source, self._store, thread_id, checkpoint_id=checkpoint_id,
                                subgraphs=subgraphs)

    async def get_history(
        self, thread_id: str, *, limit: int = 10, before: str | None = None,
        metadata: dict[str, Any] | None = None, caller: Caller | None = None,
    ) -> list[Thread | StateSnapshot]:
        """A graph thread's states, newest first (``before``: older than that checkpoint;
        ``metadata``: whose checkpoint metadata holds these keys); a workflow's thread has
        one state, its values."""
        thread = await self.get_thread(thread_id, caller=caller)
        limits.check_int("limit", limit, 1, limits.MAX_LIMIT)
        if before is not None:
            limits.check_id("before", before)
        metadata = self._metadata(metadata)
        source = self._graph_of(thread)
        if source is None:
            return [thread]
        from runplane.graphs.state import read_history

        return list(await read_history(source, self._store, thread_id, limit=limit,
                                       before=before, metadata=metadata or None))

    async def update_state(
        self, thread_id: str, values: Any, *, as_node: str | None = None,
        checkpoint: dict[str, Any] | None = None, checkpoint_id: str | None = None,
        caller: Caller | None = None,
    ) -> dict[str, Any]:
        """Write a new checkpoint of a graph thread, ``values`` applied as if node
        ``as_node`` wrote them, from its latest checkpoint or from ``checkpoint_id`` (or
        ``checkpoint``'s); the new checkpoint's ``configurable``. Refused (ThreadActive)
        while a run is pending or running on the thread, decided in the write's
        transaction: no run can start between the check and the write."""
        caller = await self._authorize(caller, "threads", "update", {"thread_id": thread_id})
        thread = await self.get_thread(thread_id, caller=caller)
        limits.check_json("values", values, limits.MAX_INPUT_BYTES)
        if as_node is not None:
            limits.check_text("as_node", as_node)
        if checkpoint is not None and not isinstance(checkpoint, dict):
            raise InvalidInput("checkpoint", "checkpoint must be an object")
        checkpoint_id = checkpoint_id or (checkpoint or {}).get("checkpoint_id")
        if checkpoint_id is not None:
            limits.check_id("checkpoint_id", checkpoint_id)
        source = self._graph_of(thread)
        if source is None:
            raise InvalidInput("thread_id", f"thread {thread_id!r} has no graph this server "
                               "runs: its state is its values (threads.update sets metadata)")
        from runplane.graphs.state import edit_state

        done = await edit_state(source, self._store, thread_id, values, self._clock.now(),
                                as_node=as_node, checkpoint_id=checkpoint_id)
        return dict(done["configurable"])

    def _graph_of(self, thread: Thread) -> GraphSource | None:
        """The graph whose thread this is, if this app serves it."""
        graph_id = thread.metadata.get("graph_id")
        if not isinstance(graph_id, str):
            return None
        try:
            return self._registry.resolve(graph_id).graph
        except UnknownWorkflow:
            return None

    async def list_threads(
        self, *, limit: int = 10, offset: int = 0, caller: Caller | None = None
    ) -> list[Thread]:
        return await self.search_threads(limit=limit, offset=offset, caller=caller)

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
        caller: Caller | None = None,
    ) -> list[Thread]:
        return await self._store.search_threads(await self._thread_query(
            caller, metadata, status, ids, limit, offset, sort_by, sort_order))

    async def count_threads(
        self, *, metadata: dict[str, Any] | None = None, status: str | None = None,
        caller: Caller | None = None,
    ) -> int:
        return await self._store.count_threads(await self._thread_query(caller, metadata, status))

    async def update_thread(
        self, thread_id: str, *, metadata: dict[str, Any] | None = None,
        ttl: float | dict[str, Any] | None = None, caller: Caller | None = None,
    ) -> Thread:
        """Merge ``metadata`` into the thread's; a ``ttl`` (as in :meth:`create_thread`)
        replaces the thread's."""
        metadata = self._metadata(metadata)
        spec = _thread_ttl(ttl)
        asked: dict[str, Any] = {"thread_id": thread_id, "metadata": metadata}
        caller = await self._authorize(caller, "threads", "update", asked)
        if _handled(caller):  # what the handler left, checked again
            metadata = self._metadata(asked["metadata"])
        await self.get_thread(thread_id, caller=caller)
        thread = await self._store.update_thread(
            thread_id, metadata, self._clock.now(), ttl=spec)
        if thread is None:
            raise ThreadNotFound(thread_id)
        return thread

    async def expire_threads(self, limit: int = 1000) -> list[str]:
        """Sweep the threads past their time to live that no run is using: delete them
        (``delete``) or keep only their latest checkpoint (``keep_latest``). Run by every
        worker's reaper; the ids swept."""
        return await self._store.expire_threads(self._clock.now(), limit)

    async def delete_thread(self, thread_id: str, *, caller: Caller | None = None) -> None:
        """Cancel the thread's active runs (their workers stop as for any cancel), then
        delete the thread with its runs, steps and events."""
        caller = await self._authorize(caller, "threads", "delete",
                                       {"thread_id": thread_id, "run_id": None})
        await self.get_thread(thread_id, caller=caller)
        await self.cancel_many(thread_id=thread_id, status="all", caller=caller,
                               reason="thread deleted", requested_by="thread_delete")
        if not await self._store.delete_thread(thread_id):
            raise ThreadNotFound(thread_id)

    async def next_thread_run(self, thread_id: str, after: str | None, *,
                              caller: Caller | None = None) -> Run | None:
        """The run a thread's stream follows next: the thread's run created right after run
        ``after``; with ``after`` None, its oldest active run. None: nothing to follow yet."""
        runs = await self.list_runs(thread_id, limit=limits.MAX_LIMIT, caller=caller)
        runs.reverse()  # oldest first
        if after is None:
            return next((run for run in runs if run.status.active), None)
        ids = [run.run_id for run in runs]
        if after not in ids:  # deleted meanwhile: the oldest active run, if any
            return next((run for run in runs if run.status.active), None)
        k = ids.index(after) + 1
        return runs[k] if k < len(runs) else None

    async def copy_thread(self, thread_id: str, *, caller: Caller | None = None) -> Thread:
        """A new thread (a new id, the caller's) with this one's metadata, values and
        checkpoints: its history goes on separately from here."""
        source = await self.get_thread(thread_id, caller=caller)
        target = _new_id()
        if caller is not None:  # as LangGraph: read the source, create the copy
            caller = await self._authorize(dataclasses.replace(caller, filters={}), "threads",
                                           "create", {"thread_id": target})
        owner = source.owner if caller is None else caller.owner
        if not await self._store.copy_thread(thread_id, target, self._clock.now(), owner=owner):
            raise ThreadNotFound(thread_id)
        return await self.get_thread(target, caller=caller)

    async def prune_threads(self, thread_ids: list[str], *, strategy: str = "delete",
                            caller: Caller | None = None) -> int:
        """``delete``: delete the threads (their active runs cancelled first, as
        ``delete_thread``); ``keep_latest``: keep each thread but only its latest checkpoint.
        How many of the threads were pruned (unknown ones, or another owner's, are not)."""
        limits.check_choice("strategy", strategy, PRUNE_STRATEGIES)
        ids = limits.check_ids("thread_ids", thread_ids)
        caller = await self._authorize(caller, "threads", "delete", {"thread_ids": ids})
        found = []
        for thread_id in dict.fromkeys(ids):
            with contextlib.suppress(ThreadNotFound):
                found.append((await self.get_thread(thread_id, caller=caller)).thread_id)
        if strategy == "keep_latest":
            await self._store.prune_checkpoints(found, keep_latest=True)
            return len(found)
        pruned = 0
        for thread_id in found:
            with contextlib.suppress(ThreadNotFound):  # deleted meanwhile
                await self.delete_thread(thread_id, caller=caller)
                pruned += 1
        return pruned

    # --- assistants ----------------------------------------------------------
    # A workflow's or graph's own assistant is the code's (version 1, no row, shown to every
    # caller, never changed); one made through the API is a row of the store, in versions,
    # its creator's. A run of one runs its graph with its current version's config and
    # context under the run's own.

    def _builtin(self, code: Assistant) -> AssistantRecord:
        started = to_datetime(self._started)
        return AssistantRecord(code.assistant_id, code.graph_id, code.name, code.description,
                               {}, {}, {"created_by": "system"}, 1, started, started,
                               builtin=True)

    async def _stored(self, assistant_id: str, caller: Caller | None
                      ) -> AssistantRecord | None:
        """The assistant made through the API under this id, if the caller may see it."""
        limits.check_id("assistant_id", assistant_id)
        caller = await self._authorize(caller, "assistants", "read",
                                       {"assistant_id": assistant_id, "metadata": {}})
        stored = await self._store.get_assistant(assistant_id)
        if stored is None or (caller is not None
                              and not caller.sees(stored.owner, "assistants", stored.metadata)):
            return None
        return stored

    async def _check_stored(self, assistant_id: str, caller: Caller | None) -> None:
        """AssistantNotFound unless the caller's auth filter, if any, lets it see the
        assistant (the store checks the owner itself, in the change's transaction)."""
        if _where(caller, "assistants") is not None \
                and await self._stored(assistant_id, caller) is None:
            raise AssistantNotFound(assistant_id)

    async def _resolve(self, assistant_id: str, caller: Caller | None
                       ) -> tuple[Assistant, AssistantRecord | None]:
        """The code an assistant runs, and the assistant if one made through the API (None
        for the code's own); UnknownWorkflow if the caller has no such assistant or its
        graph is not served here."""
        try:
            return self._registry.resolve(assistant_id), None
        except UnknownWorkflow:
            pass
        stored = await self._stored(assistant_id, caller)
        if stored is None:
            raise UnknownWorkflow(assistant_id, [a.graph_id for a in self._registry.all()])
        return self._registry.resolve(stored.graph_id), stored

    async def assistant_code(self, assistant_id: str, *, caller: Caller | None = None
                             ) -> Assistant:
        """The workflow or graph an assistant runs (what its graph and schemas describe)."""
        try:
            return (await self._resolve(assistant_id, caller))[0]
        except UnknownWorkflow:
            raise AssistantNotFound(assistant_id) from None

    async def get_assistant(self, assistant_id: str, *, caller: Caller | None = None
                            ) -> AssistantRecord:
        with contextlib.suppress(UnknownWorkflow):
            code = self._registry.resolve(assistant_id)
            # the code's own assistants are everyone's: a handler may refuse, not filter
            await self._authorize(caller, "assistants", "read",
                                  {"assistant_id": code.assistant_id, "metadata": {}})
            return self._builtin(code)
        stored = await self._stored(assistant_id, caller)
        if stored is None:
            raise AssistantNotFound(assistant_id)
        return stored

    async def create_assistant(
        self,
        graph_id: str,
        *,
        config: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        description: str | None = None,
        assistant_id: str | None = None,
        if_exists: str = "raise",
        caller: Caller | None = None,
    ) -> AssistantRecord:
        """An assistant of ``graph_id`` (a graph, or a workflow, served here) as version 1.
        An id in use answers AssistantExists, or with ``if_exists="do_nothing"`` the
        assistant that has it (if the caller may see it)."""
        limits.check_choice("if_exists", if_exists, ("raise", "do_nothing"))
        code = self._registry.resolve(limits.check_id("graph_id", graph_id))
        if assistant_id:
            limits.check_id("assistant_id", assistant_id)
        asked: dict[str, Any] = {
            "assistant_id": assistant_id, "graph_id": code.graph_id, "config": config,
            "context": context, "metadata": self._metadata(metadata), "if_exists": if_exists,
            "name": name}
        caller = await self._authorize(caller, "assistants", "create", asked)
        metadata = asked["metadata"]
        if assistant_id:
            with contextlib.suppress(UnknownWorkflow):
                builtin = self._builtin(self._registry.resolve(assistant_id))
                if if_exists == "do_nothing":
                    return builtin
                raise AssistantExists(assistant_id)
        now = self._clock.now()
        at = to_datetime(now)
        new = AssistantRecord(
            assistant_id or _new_id(), code.graph_id,
            limits.check_text("name", name) or "Untitled",
            limits.check_text("description", description), _run_config(config),
            _assistant_context(context), self._metadata(metadata), 1, at, at,
            owner=None if caller is None else caller.owner)
        stored, created = await self._store.create_assistant(new, now)
        if not created and (if_exists == "raise" or (caller is not None and not caller.sees(
                stored.owner, "assistants", stored.metadata))):
            raise AssistantExists(new.assistant_id)
        return stored

    async def update_assistant(
        self,
        assistant_id: str,
        *,
        graph_id: str | None = None,
        config: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        description: str | None = None,
        caller: Caller | None = None,
    ) -> AssistantRecord:
        """A new version: what is given replaces the current version's (``metadata``
        merges into it, key by key), the rest is kept; it becomes current."""
        self._changeable(assistant_id, "updated")
        asked: dict[str, Any] = {
            "assistant_id": assistant_id, "graph_id": graph_id, "config": config,
            "context": context, "metadata": metadata or {}, "name": name, "version": None}
        caller = await self._authorize(caller, "assistants", "update", asked)
        metadata = asked["metadata"]
        changes: dict[str, Any] = {}
        if graph_id is not None:
            changes["graph_id"] = self._registry.resolve(
                limits.check_id("graph_id", graph_id)).graph_id
        if config is not None:
            changes["config"] = _run_config(config)
        if context is not None:
            changes["context"] = _assistant_context(context)
        if name is not None:
            changes["name"] = limits.check_text("name", name)
        if description is not None:
            changes["description"] = limits.check_text("description", description)
        added = self._metadata(metadata)

        def change(current: AssistantRecord) -> AssistantRecord:
            if caller is not None and not caller.sees(current.owner, "assistants",
                                                      current.metadata):
                raise AssistantNotFound(assistant_id)
            merged = limits.check_json("metadata", {**current.metadata, **added},
                                       limits.MAX_METADATA_BYTES)
            return current.evolve(metadata=merged, **changes)

        return await self._store.update_assistant(assistant_id, owner_filter(caller), change,
                                                  self._clock.now())

    async def set_latest_assistant_version(
        self, assistant_id: str, version: int, *, caller: Caller | None = None
    ) -> AssistantRecord:
        """Make an earlier (or later) version current again: runs created from now on use
        it."""
        self._changeable(assistant_id, "given another version")
        limits.check_int("version", version, 1, limits.MAX_VERSION)
        caller = await self._authorize(caller, "assistants", "update",
                                       {"assistant_id": assistant_id, "version": version})
        await self._check_stored(assistant_id, caller)
        return await self._store.set_latest_assistant_version(
            assistant_id, owner_filter(caller), version, self._clock.now())

    async def delete_assistant(
        self, assistant_id: str, *, delete_threads: bool = False, caller: Caller | None = None
    ) -> None:
        """Delete an assistant with its versions, refused (AssistantBusy) while one of its
        runs is pending or running; ``delete_threads`` also deletes the caller's threads
        whose metadata names it (refused while one has an active run)."""
        self._changeable(assistant_id, "deleted")
        caller = await self._authorize(caller, "assistants", "delete",
                                       {"assistant_id": assistant_id})
        await self._check_stored(assistant_id, caller)
        if delete_threads:  # the threads handler decides which of them go, as for one
            caller = await self._authorize(caller, "threads", "delete", {
                "thread_id": None, "run_id": None, "assistant_id": assistant_id})
        await self._store.delete_assistant(assistant_id, owner_filter(caller),
                                           delete_threads=bool(delete_threads),
                                           threads_matching=_where(caller, "threads"))

    def _changeable(self, assistant_id: str, doing: str) -> None:
        """Refuse a workflow's or graph's own assistant (the code's) and a bad id."""
        with contextlib.suppress(UnknownWorkflow):
            self._registry.resolve(assistant_id)
            raise BuiltinAssistant(assistant_id, doing)
        limits.check_id("assistant_id", assistant_id)

    async def search_assistants(
        self,
        *,
        graph_id: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str = "created_at",
        sort_order: str = "desc",
        caller: Caller | None = None,
    ) -> list[AssistantRecord]:
        """The code's own assistants and the caller's, by ``graph_id``, a part of ``name``
        (any case) and ``metadata`` (equal top-level keys), sorted, one page."""
        _page(limit, offset)
        limits.check_choice("sort_by", sort_by, ASSISTANT_SORT_KEYS)
        limits.check_choice("sort_order", sort_order, ("asc", "desc"))
        # ties keep the code's own first, in order, then the oldest
        found = await self._matching_assistants(graph_id, name, metadata, caller, limit, offset)
        return _page_of(found, sort_by, sort_order, limit, offset)

    async def count_assistants(
        self,
        *,
        graph_id: str | None = None,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        caller: Caller | None = None,
    ) -> int:
        return len(await self._matching_assistants(graph_id, name, metadata, caller))

    async def _matching_assistants(
        self, graph_id: str | None, name: str | None, metadata: dict[str, Any] | None,
        caller: Caller | None, limit: int = 0, offset: int = 0,
    ) -> list[AssistantRecord]:
        if graph_id is not None:
            limits.check_id("graph_id", graph_id)
        name = limits.check_text("name", name)
        metadata = None if metadata is None else self._metadata(metadata)
        caller = await self._authorize(caller, "assistants", "search", {
            "graph_id": graph_id, "metadata": metadata or {}, "limit": limit,
            "offset": offset})
        builtins = [
            a for a in map(self._builtin, self._registry.all())
            if graph_id in (None, a.graph_id) and (not name or name.lower() in a.name.lower())
            and _has_metadata(a, metadata)
        ]
        stored = await self._store.search_assistants(
            owner=owner_filter(caller), graph_id=graph_id, name=name or None,
            metadata=metadata or None)
        return builtins + [a for a in stored
                           if caller is None or caller.sees(a.owner, "assistants", a.metadata)]

    async def assistant_versions(
        self,
        assistant_id: str,
        *,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        caller: Caller | None = None,
    ) -> list[AssistantRecord]:
        """Its versions, newest first (a workflow's or graph's own assistant has one)."""
        _page(limit, offset)
        metadata = None if metadata is None else self._metadata(metadata)
        caller = await self._authorize(caller, "assistants", "read",
                                       {"assistant_id": assistant_id, "metadata": {}})
        found = await self.get_assistant(assistant_id, caller=caller)
        if found.builtin:
            return [found][offset:offset + limit] if _has_metadata(found, metadata) else []
        versions = await self._store.assistant_versions(
            assistant_id, metadata=metadata or None, limit=limit, offset=offset)
        return [v for v in versions  # as LangGraph: each version by the filter
                if caller is None or caller.sees(v.owner, "assistants", v.metadata)]

    # --- long-term memory (the store of items: runplane.memory) ---------------------------
    # Each owner has a space of its own ("" without API keys): an item is its writer's.

    def _items_owner(self, caller: Caller | None) -> str:
        return "" if caller is None or caller.owner is None else caller.owner

    async def put_item(
        self, namespace: Sequence[str], key: str, value: dict[str, Any], *,
        ttl: float | None = None, index: Any = None, caller: Caller | None = None,
    ) -> None:
        """Store ``value`` under ``namespace`` and ``key`` (replacing what was there), for
        ``ttl`` minutes if given. ``index`` is accepted and has no effect: there is no
        embedding index (semantic search is not served)."""
        path, key, value, minutes = _item(namespace, key, value, index, ttl)
        asked: dict[str, Any] = {
            "namespace": path, "key": key, "value": value, "index": index, "ttl": ttl}
        if await self._ask_store(caller, "put", asked):
            path, key, value, minutes = _item(asked["namespace"], asked["key"], asked["value"],
                                              asked["index"], asked["ttl"])
        await self._store.put_item(self._items_owner(caller), path, key, value, minutes,
                                   self._clock.now())

    async def get_item(
        self, namespace: Sequence[str], key: str, *, refresh_ttl: bool | None = None,
        caller: Caller | None = None,
    ) -> StoredItem | None:
        """The item, or None (also once it expired); a read gives an item with a time to
        live its whole time again unless ``refresh_ttl`` is False."""
        asked = _item_address(namespace, key, refresh_ttl=refresh_ttl)
        if await self._ask_store(caller, "get", asked):
            asked.update(_item_address(asked["namespace"], asked["key"]))
        return await self._store.get_item(
            self._items_owner(caller), asked["namespace"], asked["key"], self._clock.now(),
            refresh=asked["refresh_ttl"] is not False)

    async def delete_item(self, namespace: Sequence[str], key: str, *,
                          caller: Caller | None = None) -> None:
        """Delete the item (nothing to delete is no error)."""
        asked = _item_address(namespace, key)
        if await self._ask_store(caller, "delete", asked):
            asked = _item_address(asked["namespace"], asked["key"])
        await self._store.delete_item(self._items_owner(caller), asked["namespace"],
                                      asked["key"])

    async def search_items(
        self, namespace_prefix: Sequence[str] = (), *, filter: dict[str, Any] | None = None,
        limit: int = 10, offset: int = 0, query: str | None = None,
        refresh_ttl: bool | None = None, caller: Caller | None = None,
    ) -> list[StoredItem]:
        """The items under ``namespace_prefix`` whose value matches ``filter`` (a value for
        equality, or ``{"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte": value}`` per key), most
        recently updated first. A natural-language ``query`` is refused: there is no
        embedding index."""
        asked: dict[str, Any] = {
            "namespace": namespace_prefix, "filter": filter, "limit": limit, "offset": offset,
            "query": query, "refresh_ttl": refresh_ttl}
        prefix, conditions = _item_search(asked)
        required: dict[str, Any] = {}
        if await self._ask_store(caller, "search", asked, required):
            prefix, conditions = _item_search(asked)
        return await self._store.search_items(
            self._items_owner(caller), prefix, conditions, asked["limit"], asked["offset"],
            self._clock.now(), refresh=asked["refresh_ttl"] is not False, required=required)

    async def _ask_store(self, caller: Caller | None, action: str, asked: dict[str, Any],
                         required: dict[str, Any] | None = None) -> bool:
        """Run the project's store handler for ``action`` on ``asked`` (which it may change:
        move an item into a space of the user's, say); True if there is one, so what it
        left is checked again. A search's ``required`` gets the filter it returned, which
        every item must then meet too (as a search's ``filter``)."""
        if not _handled(caller):
            return False
        found = await caller.handlers.decide(caller, "store", action, asked)
        if required is not None and found:
            try:
                required.update(_item_filter(dict(found)))
            except InvalidInput as exc:
                raise TypeError(f"the auth handler for store.search returned a filter the "
                                f"store cannot apply: {exc}") from None
        return True

    async def list_namespaces(
        self, *, prefix: Sequence[str] | None = None, suffix: Sequence[str] | None = None,
        max_depth: int | None = None, limit: int = 100, offset: int = 0,
        caller: Caller | None = None,
    ) -> list[tuple[str, ...]]:
        """The namespaces that hold items, sorted, those starting with ``prefix`` and
        ending with ``suffix`` (``"*"`` matches any one label), cut to ``max_depth``
        labels (and then counted once)."""
        asked: dict[str, Any] = {"namespace": prefix, "suffix": suffix,
                                 "max_depth": max_depth, "limit": limit, "offset": offset}
        start, end = _namespaces_asked(asked)
        if await self._ask_store(caller, "list_namespaces", asked):
            start, end = _namespaces_asked(asked)
        max_depth, limit, offset = asked["max_depth"], asked["limit"], asked["offset"]
        found: set[tuple[str, ...]] = set()
        for path in await self._store.item_namespaces(self._items_owner(caller),
                                                      self._clock.now()):
            if (start is None or _path_matches(path, start)) and (
                    end is None or _path_matches(path[::-1], end[::-1])):
                found.add(path if max_depth is None else path[:max_depth])
        return sorted(found)[offset:offset + limit]

    async def expire_items(self) -> int:
        """Delete the items past their time to live (the reaper's); how many."""
        return await self._store.expire_items(self._clock.now())

    # --- webhooks --------------------------------------------------------------
    # A run created with a webhook has its end POSTed there: the outbox row is written by
    # the statement that ends the run (a trigger of each store: every path, one
    # transaction), and every worker delivers what is due, with retries and backoff.

    def _webhook(self, url: Any) -> str:
        """An http(s) URL whose host the settings allow (``webhook_hosts``; none: any)."""
        text = limits.check_text("webhook", url, 2048) or ""
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput("webhook", f"a webhook is an http:// or https:// URL, got "
                               f"{text!r}")
        allowed = {h.lower() for h in self._settings.webhook_hosts}
        if allowed and parts.hostname.lower() not in allowed:
            raise InvalidInput("webhook", f"webhooks may not go to {parts.hostname!r} (the "
                               "hosts allowed: RUNPLANE_WEBHOOK_HOSTS)")
        return text

    async def run_webhooks(self, run_id: str, *, thread_id: str | None = None,
                           caller: Caller | None = None) -> list[WebhookDelivery]:
        """The deliveries of the run's ends to its webhook: pending, delivered or failed,
        with their attempts and last error."""
        await self.get_run(run_id, thread_id=thread_id, caller=caller)
        return await self._store.run_webhooks(run_id)

    async def deliver_webhooks(self, limit: int = 20) -> int:
        """POST the due ends of runs to their webhooks (the workers' duty): the run as the
        API shows it when delivered, with the ``status`` it ended with and its ``values``
        (its output). A 2xx answer delivers it; else it
        is tried again after 1, 2, 4, ... s (at most 5 min) until ``webhook_attempts``
        were made, then it is ``failed`` with its last error. At least once: a worker that
        dies after the POST and before recording it leaves it to be sent again. How many
        were attempted."""
        s = self._settings
        now = self._clock.now()
        claimed = await self._store.claim_webhooks(now, now + 2 * s.webhook_timeout + 5, limit)
        if not claimed:
            return 0
        from runplane.server.wire import run_body  # the run as the API shows it

        async def attempt(http: httpx.AsyncClient, delivery: WebhookDelivery) -> None:
            run = await self._store.get_run(delivery.run_id)
            error = await _post(http, delivery.url, None if run is None else {
                **run_body(run), "status": delivery.run_status, "values": run.output})
            at = self._clock.now()
            await self._store.webhook_attempted(
                delivery, error, at, at + min(2.0 ** (delivery.attempts - 1), 300.0),
                s.webhook_attempts if run is not None else 0)
            if error is not None:
                log.warning("webhook of run %s (attempt %d) to %s: %s", delivery.run_id,
                            delivery.attempts, delivery.url, error)

        # at once: every attempt of the batch ends within its lease (one timeout)
        async with httpx.AsyncClient(timeout=s.webhook_timeout) as http:
            await asyncio.gather(*(attempt(http, d) for d in claimed))
        return len(claimed)

    # --- crons ---------------------------------------------------------------
    # A cron creates a run of its assistant at each time of its schedule. Every worker's
    # ``fire_crons`` fires what is due; the run's id is made of the cron's id and the
    # time, and firing moves the cron on in the run's transaction, so each time makes one
    # run whichever process fires it. A time missed while no worker ran is fired once,
    # late; the times in between are skipped.

    async def create_cron(
        self,
        assistant_id: str,
        *,
        schedule: str,
        thread_id: str | None = None,
        input: Any = None,
        metadata: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        interrupt_before: list[str] | str | None = None,
        interrupt_after: list[str] | str | None = None,
        multitask_strategy: str | None = None,
        stream_mode: list[str] | None = None,
        stream_subgraphs: bool | None = None,
        durability: str | None = None,
        end_time: datetime | str | None = None,
        enabled: bool = True,
        timezone: str | None = None,
        webhook: str | None = None,
        on_run_completed: str | None = None,
        caller: Caller | None = None,
    ) -> Cron:
        """A cron of ``assistant_id`` on ``thread_id`` (or a thread of its own per run, for
        a graph): its runs get the input and settings given, checked now as a run's are."""
        schedule = check_schedule(schedule, self._clock.now())
        timezone = check_timezone(timezone)
        _on_run_completed(on_run_completed)
        payload: dict[str, Any] = {k: v for k, v in (
            ("input", input), ("config", config), ("context", context), ("webhook", webhook),
            ("interrupt_before", interrupt_before), ("interrupt_after", interrupt_after),
            ("multitask_strategy", multitask_strategy), ("stream_mode", stream_mode),
            ("stream_subgraphs", stream_subgraphs), ("durability", durability),
        ) if v is not None}
        asked: dict[str, Any] = {
            "payload": {"assistant_id": assistant_id, **payload}, "schedule": schedule,
            "cron_id": None, "thread_id": thread_id, "user_id": None, "end_time": end_time,
            "metadata": self._metadata(metadata)}
        caller = await self._authorize(caller, "crons", "create", asked)
        metadata = self._metadata(asked["metadata"])
        if thread_id is not None:
            caller = await self._authorize(caller, "threads", "read",
                                           {"thread_id": thread_id, "run_id": None})
            await self.get_thread(thread_id, caller=caller)
        await self._prepare_run(thread_id, assistant_id, metadata=metadata,
                                caller=_checking(caller), **payload)  # what a run of it
        # would refuse, refused now
        now = self._clock.now()
        end = _end_time(end_time)
        at = to_datetime(now)
        if (user := _run_user(caller)) is not None:  # its runs' graphs read their user
            payload["auth"] = user
        cron = Cron(_new_id(), assistant_id, thread_id, schedule, timezone, payload, metadata,
                    to_datetime(end), bool(enabled), None, None if caller is None
                    else caller.owner, at, at)
        return await self._store.create_cron(cron.evolve(next_run_at=_next_run(cron, now)))

    async def update_cron(
        self,
        cron_id: str,
        *,
        schedule: str | None = None,
        end_time: Any = KEEP,
        input: Any = None,
        metadata: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        interrupt_before: list[str] | str | None = None,
        interrupt_after: list[str] | str | None = None,
        stream_mode: list[str] | None = None,
        stream_subgraphs: bool | None = None,
        durability: str | None = None,
        enabled: bool | None = None,
        timezone: str | None = None,
        webhook: str | None = None,
        on_run_completed: str | None = None,
        caller: Caller | None = None,
    ) -> Cron:
        """What is given replaces the cron's (``end_time=None`` clears its end); its next
        time is worked out again from now."""
        limits.check_id("cron_id", cron_id)
        _on_run_completed(on_run_completed)
        changes: dict[str, Any] = {}
        if schedule is not None:
            changes["schedule"] = check_schedule(schedule, self._clock.now())
        if timezone is not None:
            changes["timezone"] = check_timezone(timezone)
        if enabled is not None:
            changes["enabled"] = bool(enabled)
        if end_time is not KEEP:
            changes["end_time"] = to_datetime(_end_time(end_time))
        given: dict[str, Any] = {k: v for k, v in (
            ("input", input), ("config", config), ("context", context), ("webhook", webhook),
            ("interrupt_before", interrupt_before), ("interrupt_after", interrupt_after),
            ("stream_mode", stream_mode), ("stream_subgraphs", stream_subgraphs),
            ("durability", durability)) if v is not None}
        metadata = None if metadata is None else self._metadata(metadata)
        asked: dict[str, Any] = {"cron_id": cron_id, "payload": given, "schedule": schedule}
        if metadata is not None:  # as LangGraph sends it: only when given
            asked["metadata"] = metadata
        caller = await self._authorize(caller, "crons", "update", asked)
        metadata = None if asked.get("metadata") is None else self._metadata(asked["metadata"])
        current = await self._store.get_cron(cron_id)
        if current is None or (caller is not None
                               and not caller.sees(current.owner, "crons", current.metadata)):
            raise CronNotFound(cron_id)
        owner = owner_filter(caller)
        payload = {k: v for k, v in current.payload.items() if k != "auth"} | given
        await self._prepare_run(current.thread_id, current.assistant_id,
                                caller=_checking(caller),
                                metadata=metadata or current.metadata, **payload)
        now = self._clock.now()

        def change(cron: Cron) -> Cron:
            if caller is not None and not caller.sees(cron.owner, "crons", cron.metadata):
                raise CronNotFound(cron_id)
            changed = cron.evolve(payload={**cron.payload, **given},
                                  metadata=cron.metadata if metadata is None else metadata,
                                  updated_at=to_datetime(now), **changes)
            if not changes:  # its times stand: a due one is still fired
                return changed
            return changed.evolve(next_run_at=_next_run(changed, now))

        updated = await self._store.update_cron(cron_id, owner, change)
        if updated is None:
            raise CronNotFound(cron_id)
        return updated

    async def delete_cron(self, cron_id: str, *, caller: Caller | None = None) -> None:
        """Delete the cron (its runs are kept)."""
        limits.check_id("cron_id", cron_id)
        caller = await self._authorize(caller, "crons", "delete", {"cron_id": cron_id})
        if caller is not None and caller.filters.get("crons") is not None:
            current = await self._store.get_cron(cron_id)
            if current is None or not caller.sees(current.owner, "crons", current.metadata):
                raise CronNotFound(cron_id)
        if not await self._store.delete_cron(cron_id, owner_filter(caller)):
            raise CronNotFound(cron_id)

    async def search_crons(
        self,
        *,
        assistant_id: str | None = None,
        thread_id: str | None = None,
        enabled: bool | None = None,
        metadata: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str = "created_at",
        sort_order: str = "desc",
        caller: Caller | None = None,
    ) -> list[Cron]:
        _page(limit, offset)
        limits.check_choice("sort_by", sort_by, CRON_SORT_KEYS)
        limits.check_choice("sort_order", sort_order, ("asc", "desc"))
        found = await self._matching_crons(assistant_id, thread_id, enabled, metadata, caller,
                                           limit, offset)
        attribute = "next_run_at" if sort_by == "next_run_date" else sort_by
        return _page_of(found, attribute, sort_order, limit, offset)

    async def count_crons(
        self,
        *,
        assistant_id: str | None = None,
        thread_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        caller: Caller | None = None,
    ) -> int:
        return len(await self._matching_crons(assistant_id, thread_id, None, metadata, caller))

    async def _matching_crons(
        self, assistant_id: str | None, thread_id: str | None, enabled: bool | None,
        metadata: dict[str, Any] | None, caller: Caller | None, limit: int = 0,
        offset: int = 0,
    ) -> list[Cron]:
        for field, value in (("assistant_id", assistant_id), ("thread_id", thread_id)):
            if value is not None:
                limits.check_id(field, value)
        metadata = None if metadata is None else self._metadata(metadata)
        caller = await self._authorize(caller, "crons", "search", {
            "assistant_id": assistant_id, "thread_id": thread_id, "limit": limit,
            "offset": offset, "metadata": metadata or {}})
        found = await self._store.search_crons(
            owner=owner_filter(caller), assistant_id=assistant_id, thread_id=thread_id,
            enabled=enabled, metadata=metadata)
        return [c for c in found
                if caller is None or caller.sees(c.owner, "crons", c.metadata)]

    async def fire_crons(self, limit: int = 100) -> list[Run]:
        """Fire the crons that are due (the workers' duty): a run each, unless another
        process fired that time first; the runs created. One cron's trouble does not
        keep the others from firing."""
        now = self._clock.now()
        fired: list[Run] = []
        for cron in await self._store.due_crons(now, limit):
            try:
                run = await self._fire(cron, now)
            except STORE_FAULTS:
                raise  # the duty is tried again at its next turn
            except Exception:
                log.exception("cron %s: firing failed; tried again at the next turn",
                              cron.cron_id)
                continue
            if run is not None:
                fired.append(run)
        return fired

    async def _fire(self, cron: Cron, now: float) -> Run | None:
        """Fire the cron's due time: its run, created as its owner's (checked as the
        admin: its owner was checked when it was made). An assistant this worker does not
        serve leaves the time to a worker that does; a thread or assistant gone spends
        it without a run."""
        assert cron.next_run_at is not None
        scheduled = cron.next_run_at.timestamp()
        later = to_epoch(_next_run(cron, max(now, scheduled)))
        payload = dict(cron.payload)
        user = payload.pop("auth", None)  # the user the project's handlers said made it
        try:
            prepared = await self._prepare_run(
                cron.thread_id, cron.assistant_id, caller=None,
                run_id=str(uuid.uuid5(CRON_RUNS, f"{cron.cron_id}@{scheduled!r}")),
                metadata={**cron.metadata, "cron_id": cron.cron_id}, **payload)
        except UnknownWorkflow:
            return None  # another worker's, or gone: not this worker's to spend
        except (InvalidInput, NotFound, Conflict) as exc:
            log.warning("cron %s: no run at %s: %s", cron.cron_id, cron.next_run_at, exc)
            await self._store.fire_cron(cron.cron_id, scheduled, later, None, now,
                                        on_active="enqueue")
            return None
        kwargs = prepared.new.kwargs if user is None else {**prepared.new.kwargs, "auth": user}
        prepared = dataclasses.replace(
            prepared, new=dataclasses.replace(prepared.new, owner=cron.owner, kwargs=kwargs))
        created = await self._store.fire_cron(
            cron.cron_id, scheduled, later, prepared.new, now, on_active=prepared.on_active,
            create_thread=prepared.create_thread, own_thread_only=False)
        if created is None:
            return None
        self._created(created)
        return created.run

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
        config: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        stream_mode: list[str] | None = None,
        stream_subgraphs: bool = False,
        durability: str | None = None,
        checkpoint: dict[str, Any] | None = None,
        checkpoint_id: str | None = None,
        command: dict[str, Any] | None = None,
        interrupt_before: list[str] | str | None = None,
        interrupt_after: list[str] | str | None = None,
        after_seconds: float | None = None,
        webhook: str | None = None,
        caller: Caller | None = None,
    ) -> Run:
        """Validate everything, then insert the run and apply the multitask rule atomically.

        The run is its thread's owner's; an owner may start runs only on its own threads
        (``if_not_exists="create"`` creates the thread as the caller's). A graph's run
        takes ``config`` (merged under the run's identity), ``context``, the stream modes
        to log, ``stream_subgraphs`` and ``durability`` (default ``sync``: see
        :mod:`runplane.graphs.runner`); without a thread it gets one of its own, as on the
        LangGraph server, and a thread that has none gets the graph's ``graph_id`` and
        ``assistant_id`` in its metadata. A ``checkpoint``/``checkpoint_id`` may name the
        thread's latest checkpoint (or carry null ids): the run starts from there, as any
        run does; an earlier checkpoint of the thread forks it: the run goes on from there,
        its checkpoints a branch beside the later ones.
        A graph's run may carry a ``command`` instead of input (``resume`` a thread waiting
        at an interrupt, ``update`` its state, ``goto`` nodes) and breakpoints
        (``interrupt_before``/``interrupt_after``: node names or ``"*"``). A run with
        ``after_seconds`` is pending until then: no worker claims it before its time."""
        prepared = await self._prepare_run(
            thread_id, assistant_id, input, multitask_strategy=multitask_strategy,
            metadata=metadata, timeout=timeout, max_attempts=max_attempts,
            if_not_exists=if_not_exists, run_id=run_id, config=config, context=context,
            stream_mode=stream_mode, stream_subgraphs=stream_subgraphs, durability=durability,
            checkpoint=checkpoint, checkpoint_id=checkpoint_id, command=command,
            interrupt_before=interrupt_before, interrupt_after=interrupt_after,
            after_seconds=after_seconds, webhook=webhook, caller=caller)
        return await self._insert_run(prepared)

    async def create_runs(self, payloads: list[dict[str, Any]], *,
                          caller: Caller | None = None) -> list[Run]:
        """Thread-less runs, each as ``create_run(None, **payload)``: every payload is
        checked before any run is created, so one bad payload creates none."""
        limits.check_int("payloads", len(payloads), 1, limits.MAX_LIMIT)
        prepared = []
        for k, payload in enumerate(payloads):
            try:
                prepared.append(await self._prepare_run(None, caller=caller, **payload))
            except InvalidInput as exc:
                raise InvalidInput(f"{k}.{exc.field}", f"run {k}: {exc}") from None
        return [await self._insert_run(p) for p in prepared]

    async def _prepare_run(
        self, thread_id: str | None, assistant_id: str, input: Any = None, *,
        multitask_strategy: str = "enqueue", metadata: dict[str, Any] | None = None,
        timeout: float | None = None, max_attempts: int | None = None,
        if_not_exists: str = "reject", run_id: str | None = None,
        config: dict[str, Any] | None = None, context: dict[str, Any] | None = None,
        stream_mode: list[str] | None = None, stream_subgraphs: bool = False,
        durability: str | None = None, checkpoint: dict[str, Any] | None = None,
        checkpoint_id: str | None = None, command: dict[str, Any] | None = None,
        interrupt_before: list[str] | str | None = None,
        interrupt_after: list[str] | str | None = None, after_seconds: float | None = None,
        webhook: str | None = None, caller: Caller | None = None,
    ) -> _PreparedRun:
        """Everything ``create_run`` checks, and the run it would insert (no write)."""
        metadata = self._metadata(metadata)
        asked: dict[str, Any] = {
            "thread_id": thread_id, "assistant_id": assistant_id, "run_id": run_id,
            "status": "pending", "metadata": metadata,
            "prevent_insert_if_inflight": multitask_strategy == "reject",
            "multitask_strategy": multitask_strategy, "if_not_exists": if_not_exists,
            "after_seconds": after_seconds, "kwargs": {
                "input": input, "config": config, "context": context, "command": command,
                "webhook": webhook}}
        caller = await self._authorize(caller, "threads", "create_run", asked)
        if _handled(caller):  # what the handler left, checked again
            metadata = self._metadata(asked["metadata"])
        if thread_id is not None and caller is not None \
                and caller.filters.get("threads") is not None:
            thread = await self._store.get_thread(limits.check_id("thread_id", thread_id))
            if thread is not None and not caller.sees(thread.owner, "threads", thread.metadata):
                raise ThreadNotFound(thread_id)
        assistant, stored = await self._resolve(assistant_id, caller)
        if stored is not None:
            config, context = _under(stored.config, config), _under(stored.context, context)
        kwargs = _graph_kwargs(assistant, config, context, stream_mode, stream_subgraphs,
                               durability)
        if webhook is not None:  # its end is POSTed there (see deliver_webhooks)
            kwargs["webhook"] = self._webhook(webhook)
        if (user := _run_user(caller)) is not None:  # its graph reads its user
            kwargs["auth"] = user
        if assistant.graph is not None:
            kwargs.update(_hitl_kwargs(command, interrupt_before, interrupt_after))
            if "resume" in kwargs.get("command", {}):
                thread = None if thread_id is None else await self._store.get_thread(thread_id)
                if thread is None or thread.interrupts is None:
                    raise NothingToResume(thread_id)
        else:
            kwargs.update(_answer_kwargs(assistant_id, input, command, interrupt_before,
                                         interrupt_after))
            if "command" in kwargs and thread_id is None:
                raise NothingToResume(None)
        fork = await self._fork_point(thread_id, checkpoint, checkpoint_id)
        if fork is not None:
            if assistant.graph is None:
                raise InvalidInput("checkpoint_id", "only a graph's run starts from a checkpoint")
            kwargs["checkpoint_id"] = fork
        new_thread = assistant.graph is not None and thread_id is None
        if new_thread:
            thread_id, if_not_exists = _new_id(), "create"
        strategy = parse_enum(MultitaskStrategy, multitask_strategy, "multitask_strategy")
        limits.check_choice("if_not_exists", if_not_exists, ("reject", "create"))
        limits.check_json("input", input, limits.MAX_INPUT_BYTES)
        timeout = limits.check_timeout("timeout", timeout)
        delay = limits.check_timeout("after_seconds", after_seconds or None)
        attempts = self._settings.max_attempts if max_attempts is None else max_attempts
        limits.check_int("max_attempts", attempts, 1, limits.MAX_ATTEMPTS)
        if thread_id is not None:
            limits.check_id("thread_id", thread_id)
        if run_id:  # none or empty: a new id
            limits.check_id("run_id", run_id)
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
        # an assistant made through the API names the run; the workflow it runs is the code's
        named = assistant.assistant_id if stored is None else stored.assistant_id
        return _PreparedRun(
            NewRun(
                run_id=run_id,
                thread_id=thread_id,
                assistant_id=named,
                input=input,
                metadata=metadata,
                multitask_strategy=strategy,
                max_attempts=attempts,
                timeout=timeout,
                root_run_id=run_id,
                owner=None if caller is None else caller.owner,
                kwargs=kwargs,
                not_before=None if delay is None else now + delay,
                takes_up_pause=assistant.graph is None and "command" in kwargs,
                workflow=None if stored is None else assistant.assistant_id,
                thread_tags=None if assistant.graph is None or thread_id is None else {
                    "graph_id": assistant.graph_id, "assistant_id": named},
                new_thread=new_thread,
            ),
            assistant, now, on_active, if_not_exists == "create",
            owner_filter(caller) is not None)

    async def _insert_run(self, prepared: _PreparedRun) -> Run:
        """Insert a prepared run and apply the multitask rule atomically."""
        p = prepared
        created = await self._store.create_run(
            p.new, p.now, on_active=p.on_active, create_thread=p.create_thread,
            own_thread_only=p.own_thread_only)
        self._created(created)
        return created.run

    def _created(self, created: Created) -> None:
        """What follows a run's creation: the signals."""
        for cancelled in created.cancelled:
            metrics.count_cancel(CancelOutcome.CANCELLED)
            self._notifier.run_cancelled(cancelled.run_id, cancelled.cancelled_generation)
        self._notifier.runs_pending()

    async def _fork_point(self, thread_id: str | None, checkpoint: dict[str, Any] | None,
                          checkpoint_id: str | None) -> str | None:
        """The checkpoint a run names to start from: None for the thread's latest (or null
        ids), else an earlier checkpoint of the thread, which the run forks from."""
        if checkpoint is not None and not isinstance(checkpoint, dict):
            raise InvalidInput("checkpoint", "checkpoint must be an object")
        named = checkpoint_id or (checkpoint or {}).get("checkpoint_id")
        if named is None:
            return None
        field = "checkpoint_id" if checkpoint_id else "checkpoint"
        if not isinstance(named, str):
            raise InvalidInput(field, "a checkpoint id is a string")
        limits.check_id(field, named)
        found = None if thread_id is None else await self._store.get_checkpoint(
            thread_id, "", named)
        if found is None:
            raise InvalidInput(field, f"checkpoint {named!r} is not one of the thread's")
        head = await self._store.get_checkpoint(found.thread_id, "", None)
        return None if head is not None and head.checkpoint_id == named else named

    async def get_run(
        self, run_id: str, *, thread_id: str | None = None, caller: Caller | None = None
    ) -> Run:
        if thread_id is not None:
            limits.check_id("thread_id", thread_id)
        limits.check_id("run_id", run_id)
        caller = await self._authorize(caller, "threads", "read",
                                       {"thread_id": thread_id, "run_id": run_id})
        run = await self._store.get_run(run_id)
        if run is None or (thread_id is not None and run.thread_id != thread_id) \
                or (caller is not None and not caller.sees(run.owner)) \
                or not await self._run_admitted(run, caller):
            raise RunNotFound(run_id)
        return run

    async def _run_admitted(self, run: Run, caller: Caller | None) -> bool:
        """Whether the caller's auth filter on threads, if any, lets it see the run: its
        thread's metadata must match (a thread-less run's own)."""
        if _where(caller, "threads") is None:
            return True
        assert caller is not None
        thread = None if run.thread_id is None else await self._store.get_thread(run.thread_id)
        return caller.sees(run.owner, "threads",
                           run.metadata if thread is None else thread.metadata)

    async def list_runs(
        self,
        thread_id: str | None = None,
        *,
        status: str | None = None,
        limit: int = 10,
        offset: int = 0,
        assistant_id: str | None = None,
        id_prefix: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        caller: Caller | None = None,
    ) -> list[Run]:
        """Newest first; every filter given must hold (``id_prefix``: the start of the run
        id; ``created_before`` excluded)."""
        wanted = None if status is None else parse_enum(RunStatus, status, "status")
        _page(limit, offset)
        caller = await self._authorize(caller, "threads", "search",
                                       {"thread_id": thread_id, "metadata": {}})
        where = await self._run_filter(thread_id, assistant_id, id_prefix, created_after,
                                       created_before, caller)
        return await self._store.list_runs(
            thread_id=thread_id, status=wanted, limit=limit, offset=offset,
            owner=owner_filter(caller), where=where,
        )

    async def count_runs(
        self,
        thread_id: str | None = None,
        *,
        assistant_id: str | None = None,
        id_prefix: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        caller: Caller | None = None,
    ) -> dict[str, int]:
        """How many runs of each status (every status named) ``list_runs`` finds with these
        filters."""
        caller = await self._authorize(caller, "threads", "search",
                                       {"thread_id": thread_id, "metadata": {}})
        where = await self._run_filter(thread_id, assistant_id, id_prefix, created_after,
                                       created_before, caller)
        counts = await self._store.count_runs(thread_id=thread_id, owner=owner_filter(caller),
                                              where=where)
        return {status.value: counts.get(status, 0) for status in RunStatus}

    async def _run_filter(
        self, thread_id: str | None, assistant_id: str | None, id_prefix: str | None,
        created_after: datetime | None, created_before: datetime | None,
        caller: Caller | None,
    ) -> RunFilter:
        if thread_id is not None:
            await self.get_thread(thread_id, caller=caller)
        for field, value in (("assistant_id", assistant_id), ("id_prefix", id_prefix)):
            if value is not None:
                limits.check_id(field, value)
        return RunFilter(assistant_id, id_prefix or None,
                         None if created_after is None else created_after.timestamp(),
                         None if created_before is None else created_before.timestamp(),
                         _where(caller, "threads"))

    async def delete_run(
        self, run_id: str, *, thread_id: str | None = None, caller: Caller | None = None
    ) -> Run:
        """Only a run that is not active: a pending or running one must be cancelled first."""
        caller = await self._authorize(caller, "threads", "delete",
                                       {"thread_id": thread_id, "run_id": run_id})
        await self.get_run(run_id, thread_id=thread_id, caller=caller)
        return await self._store.delete_run(run_id)

    async def steps(self, run_id: str, *, caller: Caller | None = None) -> list[Step]:
        await self.get_run(run_id, caller=caller)
        return await self._store.get_steps(run_id)

    async def events(
        self, run_id: str, *, after_seq: int = 0, caller: Caller | None = None
    ) -> list[Event]:
        limits.check_int("after_seq", after_seq, 0, limits.MAX_SEQ)
        await self.get_run(run_id, caller=caller)
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
        scope: str = "run",
        caller: Caller | None = None,
    ) -> CancelResult:
        """Cancel the run with its attached descendants (``scope="run"``) or every run under
        its root (``scope="tree"``), leaves first, in one transaction.

        Idempotent: a second cancel of an interrupted run answers ``already_interrupted``
        with the first request's reason and time. A finished run raises RunConflict (a tree
        only when every run of it finished). A run cancel that leaves other runs of its
        tree active says how many in ``remaining_active_in_tree``. A caller may cancel its own
        runs only; the sweep then stays within them (a tree has one owner)."""
        request = CancelRequest(
            action=parse_enum(CancelAction, action, "action"),
            reason=limits.check_text("reason", reason),
            requested_by=limits.check_text("requested_by", requested_by),
        )
        limits.check_id("run_id", run_id)
        limits.check_choice("scope", scope, CANCEL_SCOPES)
        caller = await self._authorize(caller, "threads", "update", {
            "thread_id": thread_id, "run_id": run_id, "action": request.action.value})
        if thread_id is not None or caller is not None:
            try:
                await self.get_run(run_id, thread_id=thread_id, caller=caller)
            except RunNotFound:
                metrics.count_cancel(CancelOutcome.NOT_FOUND)
                raise
        swept = await self._store.cancel_runs(
            run_id, request, self._clock.now(), whole_tree=scope == "tree")
        if swept is None:
            metrics.count_cancel(CancelOutcome.NOT_FOUND)
            raise RunNotFound(run_id)
        for done in swept.runs:
            metrics.count_cancel(done.outcome)
            if done.outcome is CancelOutcome.CANCELLED:  # leaves first, as the sweep wrote them
                self._notifier.run_cancelled(done.run.run_id, done.run.cancelled_generation)
        tally = Counter(done.outcome for done in swept.runs)
        counts = {outcome.count_key: tally[outcome] for outcome in SWEPT_OUTCOMES}
        target = swept.target
        if scope == "tree":
            if tally[CancelOutcome.CANCELLED] == tally[CancelOutcome.ALREADY_INTERRUPTED] == 0:
                raise RunConflict(
                    run_id, target.run.status.value,
                    f"every run of the tree of {run_id!r} already ended; nothing to cancel")
            outcome = (CancelOutcome.CANCELLED if tally[CancelOutcome.CANCELLED]
                       else CancelOutcome.ALREADY_INTERRUPTED)
        elif target.outcome is CancelOutcome.ALREADY_FINISHED:
            raise RunConflict(
                run_id,
                target.run.status.value,
                f"run {run_id!r} already ended with status {target.run.status.value!r}; "
                "only pending or running runs can be cancelled",
            )
        else:
            outcome = target.outcome
        run = target.run
        if wait:
            for done in swept.runs:
                settled = await self.wait(done.run.run_id, _settled)
                if done.run.run_id == run_id:
                    run = settled
        remaining = swept.remaining_active if scope == "run" and swept.remaining_active else None
        return CancelResult(outcome, run, stopped=_settled(run, self._clock.now()), scope=scope,
                            root_run_id=swept.root_run_id, remaining_active_in_tree=remaining,
                            counts=counts)

    async def cancel_many(
        self,
        *,
        run_ids: list[str] | None = None,
        thread_id: str | None = None,
        status: str | None = None,
        action: str = "interrupt",
        reason: str | None = None,
        requested_by: str | None = None,
        caller: Caller | None = None,
    ) -> list[tuple[str, CancelOutcome]]:
        """Cancel each run named or selected (``status``: pending, running or all active ones,
        of ``thread_id`` if given, of the caller's), by the rules of :meth:`cancel`. Answers
        (run_id, outcome) per run: any :class:`CancelOutcome`, ``not_found`` for another
        owner's run too."""
        parse_enum(CancelAction, action, "action")
        limits.check_text("reason", reason)
        if run_ids is not None:
            run_ids = limits.check_ids("run_ids", run_ids)
        if run_ids is None and thread_id is None and status is None:
            raise InvalidInput("run_ids", "name the runs to cancel: run_ids, thread_id or status")
        if status is not None:
            limits.check_choice("status", status, BULK_STATUSES)
        caller = await self._authorize(caller, "threads", "update",
                                       {"thread_id": thread_id, "action": action})
        if thread_id is not None:
            await self.get_thread(thread_id, caller=caller)
        if run_ids is None:
            run_ids = await self._active_run_ids(thread_id, status or "all", owner_filter(caller))
        outcomes = []
        for run_id in dict.fromkeys(run_ids):
            try:
                result = await self.cancel(run_id, action=action, reason=reason,
                                           requested_by=requested_by, thread_id=thread_id,
                                           caller=caller)
                outcomes.append((run_id, result.outcome))
            except RunNotFound:
                outcomes.append((run_id, CancelOutcome.NOT_FOUND))
            except RunConflict:
                outcomes.append((run_id, CancelOutcome.ALREADY_FINISHED))
        return outcomes

    async def _active_run_ids(
        self, thread_id: str | None, status: str, owner: str | None
    ) -> list[str]:
        wanted = [RunStatus.PENDING, RunStatus.RUNNING] if status == "all" else \
            [RunStatus(status)]
        run_ids: list[str] = []
        for one in wanted:  # a snapshot first: cancelling moves runs out of the filter
            offset = 0
            while page := await self._store.list_runs(
                thread_id=thread_id, status=one, limit=500, offset=offset, owner=owner
            ):
                run_ids += [r.run_id for r in page]
                offset += len(page)
        return run_ids

    # --- run trees -------------------------------------------------------------
    async def spawn(
        self, parent: Lease, root_run_id: str, workflow: str, input: Any, *,
        child_id: str, detached: bool,
    ) -> Run | None:
        """Start ``workflow`` as a child of the run ``parent`` holds (None: that lease is
        lost). A detached child roots a tree of its own: cancelling the parent's tree
        leaves it running."""
        assistant = self._registry.resolve(workflow)
        limits.check_json("input", input, limits.MAX_INPUT_BYTES)
        limits.check_id("child_id", child_id)
        run = await self._store.spawn_run(parent, NewRun(
            run_id=child_id, thread_id=None, assistant_id=assistant.assistant_id, input=input,
            metadata={}, multitask_strategy=MultitaskStrategy.ENQUEUE,
            max_attempts=self._settings.max_attempts, timeout=None,
            root_run_id=child_id if detached else root_run_id,
            parent_run_id=parent.run_id,
        ), self._clock.now())
        if run is not None:
            self._notifier.runs_pending()
        return run

    async def end_children(self, run_id: str, status: RunStatus) -> list[str]:
        """Cancel the attached children a run left active when it ended: they belong to
        it and would otherwise run on unobserved (detach a child to let it outlive its
        parent). Returns the ids of the children cancelled."""
        run = await self.get_run(run_id)
        ended = []
        for child in await self._store.get_tree(run.root_run_id):
            if child.parent_run_id != run_id or not child.status.active:
                continue
            with contextlib.suppress(RunConflict, RunNotFound):  # it ended meanwhile
                await self.cancel(child.run_id, reason=f"parent run {run_id} ended {status}",
                                  requested_by="cascade")
                ended.append(child.run_id)
        return ended

    async def end_orphans(self) -> list[str]:
        """What :meth:`end_children` missed: children of parents whose worker died right
        after finishing them, or that the reaper ended. Run by every worker's reaper."""
        ended = []
        for child in await self._store.orphaned_runs():
            parent = await self._store.get_run(child.parent_run_id or "")
            if parent is None:
                continue
            with contextlib.suppress(RunConflict, RunNotFound):
                await self.cancel(child.run_id, requested_by="cascade",
                                  reason=f"parent run {parent.run_id} ended {parent.status}")
                ended.append(child.run_id)
        return ended

    async def child_result(self, run_id: str) -> Any:
        """The output of a child once it settled; ChildCancelled or ChildFailed otherwise."""
        try:
            return await self.join(run_id)
        except RunCancelled as exc:
            raise ChildCancelled(run_id, exc.run.status.value, exc.run.cancel_reason) from None
        except RunFailed as exc:
            raise ChildFailed(run_id, exc.run.status.value, exc.run.error) from None

    async def tree(self, run_id: str, *, caller: Caller | None = None) -> RunNode:
        """The tree ``run_id`` belongs to, from its root: attached children only (all the
        root's owner's: children inherit their parent's owner)."""
        run = await self.get_run(run_id, caller=caller)
        runs = await self._store.get_tree(run.root_run_id)
        nodes = {r.run_id: RunNode(r.run_id, r.assistant_id, r.status, r.parent_run_id, [], r)
                 for r in runs}
        for node in nodes.values():
            parent = nodes.get(node.parent_run_id) if node.parent_run_id else None
            if parent is not None and node.run_id != run.root_run_id:
                parent.children.append(node)
        return nodes[run.root_run_id]

    async def resume(self, run_id: str, *, caller: Caller | None = None) -> Run:
        limits.check_id("run_id", run_id)
        if caller is not None:
            caller = await self._authorize(caller, "threads", "update",
                                           {"thread_id": None, "run_id": run_id})
            await self.get_run(run_id, caller=caller)
        run = await self._store.resume_run(run_id, self._clock.now())
        self._notifier.runs_pending()
        return run

    async def join(
        self, run_id: str, *, thread_id: str | None = None, caller: Caller | None = None
    ) -> Any:
        """Wait until the run ended and its task stopped; return its output or raise why not."""
        run = await self.settled(run_id, thread_id=thread_id, caller=caller)
        if run.status is RunStatus.SUCCESS:
            return run.output
        if run.status is RunStatus.INTERRUPTED:
            raise RunCancelled(run)
        raise RunFailed(run)

    async def settled(
        self, run_id: str, *, thread_id: str | None = None, caller: Caller | None = None
    ) -> Run:
        """The run once it ended and its task stopped, whatever the outcome (RunNotFound at
        once for a run that is not ``thread_id``'s, or not the caller's)."""
        if thread_id is not None or caller is not None:
            await self.get_run(run_id, thread_id=thread_id, caller=caller)
        return await self.wait(run_id, _settled)

    async def stream(
        self, run_id: str, *, after_seq: int = 0, idle: float | None = None,
        caller: Caller | None = None,
    ) -> AsyncIterator[Event | None]:
        """The run's event log from ``after_seq`` on, followed live; ends after the event
        that ended the run (a cancel ends it too, unless the run was resumed since).
        With ``idle``, yields None after each ``idle`` seconds without an event (a tick for
        keep-alives).

        A store that stops answering does not end the stream: reads are tried again (backing
        off, at most a second apart) until it is back, with the same idle ticks meanwhile,
        and the stream goes on from the last event it gave."""
        after_seq = min(max(after_seq, 0), limits.MAX_SEQ)  # past any log, still a database integer
        checked, failures = False, 0
        with self._notifier.watch(run_id, events=True) as logged:
            while True:
                logged.clear()
                try:
                    if not checked:  # RunNotFound for an unknown run (or another owner's)
                        checked = bool(await self.get_run(run_id, caller=caller))
                    events = await self._store.get_events(run_id, after_seq=after_seq)
                    # Nothing new, or the run may have ended: ask the run itself. Events a
                    # stopping worker logs after the end (step:cancel, lease:lost) follow.
                    ended = False
                    if not events or any(e.event in ENDING_EVENTS for e in events):
                        run = await self._store.get_run(run_id)
                        if run is None or run.status.terminal:
                            events += await self._store.get_events(
                                run_id, after_seq=events[-1].seq if events else after_seq)
                            ended = True
                    failures = 0
                except StoreUnavailable:
                    failures += 1
                    await asyncio.sleep(min(backoff(0.05, failures), idle or 1.0))
                    if idle is not None:
                        yield None
                    continue
                for event in events:
                    yield event
                    after_seq = event.seq
                if ended:
                    return
                if not events:
                    try:
                        async with asyncio.timeout(idle):
                            await logged.wait()
                    except TimeoutError:
                        yield None

    async def wait(self, run_id: str, until: Callable[[Run, float], bool]) -> Run:
        """Re-read the run until ``until(run, now)``: woken by this process's changes,
        polling for other processes'. A store that stops answering is waited out (the run
        exists: a client answered 503 now would retry, and create a second run)."""
        failures = 0
        with self._notifier.watch(run_id) as changed:
            while True:
                changed.clear()
                try:
                    run = await self.get_run(run_id)
                except StoreUnavailable:
                    failures += 1
                    await asyncio.sleep(backoff(0.05, failures))
                    continue
                failures = 0
                now = self._clock.now()
                if until(run, now):
                    return run
                # Nobody writes when a dead worker's lease runs out: wake up then by ourselves.
                expiry = None if run.lease_expires_at is None else \
                    max(0.0, run.lease_expires_at.timestamp() - now) + self._settings.poll_interval
                await wait_event(changed, expiry)

    async def _thread_query(
        self,
        caller: Caller | None,
        metadata: dict[str, Any] | None,
        status: str | None,
        ids: list[str] | None = None,
        limit: int = 10,
        offset: int = 0,
        sort_by: str = "created_at",
        sort_order: str = "desc",
    ) -> ThreadQuery:
        limits.check_choice("sort_by", sort_by, THREAD_SORT_KEYS)
        limits.check_choice("sort_order", sort_order, ("asc", "desc"))
        _page(limit, offset)
        metadata = self._metadata(metadata)
        caller = await self._authorize(caller, "threads", "search", {
            "metadata": metadata, "values": {}, "status": status, "limit": limit,
            "offset": offset, "ids": ids, "thread_id": None})
        return ThreadQuery(
            metadata=metadata,
            status=None if status is None else parse_enum(ThreadStatus, status, "status"),
            ids=None if ids is None else limits.check_ids("ids", ids), limit=limit,
            offset=offset, sort_by=sort_by, descending=sort_order == "desc",
            owner=owner_filter(caller), matching=_where(caller, "threads"),
        )

    @staticmethod
    def _metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
        if metadata is None:
            return {}
        if not isinstance(metadata, dict):
            raise InvalidInput(
                "metadata", f"metadata must be a JSON object, got {type(metadata).__name__}")
        return limits.check_json("metadata", metadata, limits.MAX_METADATA_BYTES)


#: How a graph's run may keep its checkpoints (LangGraph's ``Durability``).
DURABILITY = ("sync", "async", "exit")


@dataclass(frozen=True, slots=True)
class _PreparedRun:
    """A run ``create_run`` checked and will insert."""

    new: NewRun
    assistant: Assistant
    now: float
    on_active: OnActive
    create_thread: bool
    own_thread_only: bool


def _graph_kwargs(
    assistant: Assistant, config: dict[str, Any] | None, context: dict[str, Any] | None,
    stream_mode: list[str] | None, stream_subgraphs: bool, durability: str | None,
) -> dict[str, Any]:
    """How a graph's run is to run, checked; a workflow's run takes its config and context
    alone (``Context.config``, ``Context.context``), kept only when there are some."""
    if assistant.graph is None:
        kept = {"config": _run_config(config),
                "context": limits.check_json("context", context, limits.MAX_METADATA_BYTES)}
        return {k: v for k, v in kept.items() if v}
    kwargs: dict[str, Any] = {
        "config": _run_config(config),
        "context": limits.check_json("context", context, limits.MAX_METADATA_BYTES),
        "stream_mode": [limits.check_choice("stream_mode", m, STREAM_MODES)
                        for m in stream_mode or ["values"]],
        "stream_subgraphs": bool(stream_subgraphs),
        "durability": limits.check_choice("durability", durability or "sync", DURABILITY),
    }
    return kwargs


def _has_metadata(assistant: AssistantRecord, wanted: dict[str, Any] | None) -> bool:
    return all(assistant.metadata.get(k) == v for k, v in (wanted or {}).items())


def _assistant_context(context: Any) -> dict[str, Any]:
    """An assistant's static context: an object (merged under each run's own)."""
    context = limits.check_json("context", context or {}, limits.MAX_METADATA_BYTES)
    if not isinstance(context, dict):
        raise InvalidInput("context", "context must be an object")
    return context


def _under(base: dict[str, Any], given: Any) -> Any:
    """A run's ``config`` or ``context`` over its assistant's: the run's keys win, and its
    ``configurable`` keys over the assistant's (anything but an object is the run's alone,
    refused or taken as it is by the checks after)."""
    if not base or given is None:
        return given if given is not None else base
    if not isinstance(given, dict):
        return given
    merged = {**base, **given}
    if isinstance(base.get("configurable"), dict) and isinstance(given.get("configurable"), dict):
        merged["configurable"] = {**base["configurable"], **given["configurable"]}
    return merged


def _item(namespace: Any, key: Any, value: Any, index: Any, ttl: Any
          ) -> tuple[tuple[str, ...], str, dict[str, Any], float | None]:
    """A put item's namespace, key, value and minutes to live, checked."""
    path = _namespace("namespace", namespace)
    if path[0] == "langgraph":
        raise InvalidInput("namespace", "the root label 'langgraph' is reserved")
    limits.check_id("key", key)
    if not isinstance(value, dict):
        raise InvalidInput("value", f"value must be an object, got {type(value).__name__}")
    value = limits.check_json("value", value, limits.MAX_INPUT_BYTES)
    if index not in (None, False) and not (
            isinstance(index, list) and all(isinstance(f, str) for f in index)):
        raise InvalidInput("index", "index is false or a list of field paths")
    return path, key, value, None if ttl is None else _minutes("ttl", ttl)


def _item_address(namespace: Any, key: Any, **more: Any) -> dict[str, Any]:
    """An item's namespace and key, checked, with ``more`` of a request's fields."""
    return {"namespace": _namespace("namespace", namespace),
            "key": limits.check_id("key", key), **more}


def _item_search(asked: Mapping[str, Any]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """A search's namespace prefix and conditions, checked (its page too)."""
    _page(asked["limit"], asked["offset"])
    if asked["query"] is not None:
        raise InvalidInput("query", "semantic search is not served: runplane keeps no "
                           "embedding index (search by namespace_prefix and filter)")
    return (_namespace("namespace_prefix", asked["namespace"], empty=True),
            _item_filter(asked["filter"]))


def _namespaces_asked(asked: Mapping[str, Any]
                      ) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """A namespace listing's prefix and suffix, checked (its depth and page too)."""
    _page(asked["limit"], asked["offset"])
    if asked["max_depth"] is not None:
        limits.check_int("max_depth", asked["max_depth"], 1, limits.MAX_JSON_DEPTH)
    prefix, suffix = asked["namespace"], asked["suffix"]
    return (None if prefix is None else _namespace("prefix", prefix, wildcards=True),
            None if suffix is None else _namespace("suffix", suffix, wildcards=True))


def _namespace(field: str, value: Any, *, empty: bool = False,
               wildcards: bool = False) -> tuple[str, ...]:
    """A namespace of the memory store: a list of labels (non-empty text without '.', the
    separator they are stored with); ``empty`` allows none (every namespace), ``wildcards``
    a ``"*"`` label matching any one."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidInput(field, f"{field} must be a list of labels")
    if not value and not empty:
        raise InvalidInput(field, f"{field} must have at least one label")
    if len(value) > limits.MAX_JSON_DEPTH:
        raise InvalidInput(field, f"{field} has more than {limits.MAX_JSON_DEPTH} labels")
    for label in value:
        if not isinstance(label, str) or not label:
            raise InvalidInput(field, f"{field}: a label is a non-empty string")
        limits.check_id(field, label)
        if "." in label:
            raise InvalidInput(field, f"{field}: a label cannot hold '.' ({label!r})")
        if label == "*" and not wildcards:
            raise InvalidInput(field, f"{field}: '*' is a wildcard, not a label")
    return tuple(value)


def _path_matches(path: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """``path`` starts with ``pattern`` (whose ``"*"`` matches any one label)."""
    return len(path) >= len(pattern) and all(
        want in ("*", have) for have, want in zip(path, pattern, strict=False))


def _item_filter(conditions: Any) -> dict[str, Any]:
    """A store search's ``filter``: per top-level key, a value or comparisons."""
    if conditions is None:
        return {}
    if not isinstance(conditions, dict):
        raise InvalidInput("filter", "filter must be an object")
    conditions = limits.check_json("filter", conditions, limits.MAX_METADATA_BYTES)
    for key, condition in conditions.items():
        if is_comparison(condition) and (unknown := set(condition) - set(COMPARISONS)):
            raise InvalidInput("filter", f"filter.{key}: unknown comparison "
                               f"{', '.join(sorted(unknown))} (known: "
                               f"{', '.join(COMPARISONS)})")
    return conditions


def _minutes(field: str, minutes: Any) -> float:
    """A time to live in minutes: positive, at most MAX_TIMEOUT_SECONDS."""
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or \
            not math.isfinite(minutes) or not 0 < minutes <= limits.MAX_TIMEOUT_SECONDS / 60:
        raise InvalidInput(field, f"{field} must be a positive number of minutes, at most "
                           f"{limits.MAX_TIMEOUT_SECONDS // 60}, got {minutes!r}")
    return float(minutes)


async def _post(http: httpx.AsyncClient, url: str, payload: Any) -> str | None:
    """POST ``payload`` (None: the run is gone); None if answered 2xx, else why not."""
    if payload is None:
        return "the run was deleted"
    try:
        answer = await http.post(url, json=payload)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:2000]
    return None if answer.is_success else f"answered HTTP {answer.status_code}"


def _on_run_completed(on_run_completed: Any) -> None:
    """What becomes of a thread-less cron run's thread: kept (deleting it is not served)."""
    limits.check_choice("on_run_completed", on_run_completed or "keep", ("keep",))


def _end_time(end_time: Any) -> float | None:
    """A cron's end: a datetime, or its ISO 8601 text (with a time zone)."""
    if end_time is None:
        return None
    if isinstance(end_time, str):
        try:
            end_time = datetime.fromisoformat(end_time)
        except ValueError:
            raise InvalidInput("end_time", f"end_time must be an ISO 8601 date and time, got "
                               f"{end_time!r}") from None
    if not isinstance(end_time, datetime):
        raise InvalidInput("end_time", "end_time must be a date and time")
    if end_time.tzinfo is None:  # as LangGraph's server reads it
        end_time = end_time.replace(tzinfo=UTC)
    try:
        return to_datetime(end_time.timestamp()).timestamp()
    except (ValueError, OverflowError, OSError):
        raise InvalidInput("end_time", f"end_time is out of range: {end_time}") from None


def _next_run(cron: Cron, after: float) -> datetime | None:
    """The cron's first time after ``after``; None past its end (or its schedule's)."""
    at = next_fire(cron.schedule, cron.timezone, after)
    if at is None or (cron.end_time is not None and at > cron.end_time.timestamp()):
        return None
    return to_datetime(at)


def _page_of(found: list[T], attribute: str, sort_order: str, limit: int, offset: int
             ) -> list[T]:
    """One page of ``found`` sorted by ``attribute`` (None after any value, ascending):
    stable, also when reversed, so ties keep the order they came in."""
    found.sort(key=lambda x: (getattr(x, attribute) is None, getattr(x, attribute)),
               reverse=sort_order == "desc")
    return found[offset:offset + limit]


def _thread_ttl(ttl: Any) -> ThreadTTL | None:
    """A thread's ``ttl`` as the SDK sends it: minutes, or ``{"ttl": minutes, "strategy"}``
    (strategy ``delete`` by default)."""
    if ttl is None:
        return None
    spec = ttl if isinstance(ttl, dict) else {"ttl": ttl}
    if unknown := set(spec) - {"ttl", "strategy"}:
        raise InvalidInput("ttl", f"ttl takes 'ttl' (minutes) and 'strategy', not "
                           f"{', '.join(map(repr, sorted(unknown)))}")
    minutes = _minutes("ttl", spec.get("ttl"))
    strategy = limits.check_choice("ttl.strategy", spec.get("strategy", "delete"),
                                   PRUNE_STRATEGIES)
    return ThreadTTL(strategy, minutes)


def _answer_kwargs(assistant_id: str, input: Any, command: Any, interrupt_before: Any,
                   interrupt_after: Any) -> dict[str, Any]:
    """A workflow's run takes ``command`` with ``resume`` alone: it answers the pause of
    its thread (see ``Context.interrupt``) and goes on with the paused run's input."""
    if given := [name for name, value in (("interrupt_before", interrupt_before),
                                          ("interrupt_after", interrupt_after))
                 if value is not None]:
        raise InvalidInput(given[0], f"{', '.join(given)}: only a graph's run takes them; "
                           f"{assistant_id!r} is a workflow")
    if command is None:
        return {}
    command = limits.check_json("command", command, limits.MAX_INPUT_BYTES)
    if not isinstance(command, dict) or set(command) != {"resume"}:
        raise InvalidInput("command", f"a workflow's run takes command={{'resume': value}} "
                           f"only (update and goto are a graph's); {assistant_id!r} is a "
                           "workflow")
    if input is not None:
        raise InvalidInput("input", "a run that resumes a paused workflow takes no input: it "
                           "goes on with the input of the run that paused")
    return {"command": command}


def _hitl_kwargs(command: Any, interrupt_before: Any, interrupt_after: Any) -> dict[str, Any]:
    """A graph run's ``command`` and breakpoints, checked (the runner builds LangGraph's
    ``Command`` from them)."""
    kwargs: dict[str, Any] = {}
    if command is not None:
        command = limits.check_json("command", command, limits.MAX_INPUT_BYTES)
        if not isinstance(command, dict) or not command or \
                set(command) - {"resume", "update", "goto"}:
            raise InvalidInput("command", "command must be an object with at least one of "
                               "resume, update, goto")
        goto = command.get("goto")
        targets = goto if isinstance(goto, list) else [goto]
        if goto is not None and not all(
                isinstance(t, str) or (isinstance(t, dict) and isinstance(t.get("node"), str))
                for t in targets):
            raise InvalidInput("command.goto", "command.goto must be a node name, a "
                               "{node, input} object (a Send) or a list of them")
        update = command.get("update")
        pairs = isinstance(update, list) and all(
            isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
            for pair in update)
        if update is not None and not (isinstance(update, dict) or pairs):
            raise InvalidInput("command.update", "command.update must be an object or a list "
                               "of [key, value] pairs")
        kwargs["command"] = command
    for name, nodes in (("interrupt_before", interrupt_before),
                        ("interrupt_after", interrupt_after)):
        if nodes is None:
            continue
        if nodes != "*" and not (isinstance(nodes, list)
                                 and all(isinstance(n, str) for n in nodes)):
            raise InvalidInput(name, f"{name} must be a list of node names or \"*\"")
        kwargs[name] = nodes
    return kwargs


#: The keys of a run's ``config`` LangGraph reads, and what each must be.
_CONFIG_KEYS: dict[str, tuple[type, ...]] = {
    "configurable": (dict,), "metadata": (dict,), "tags": (list,), "run_name": (str,),
    "recursion_limit": (int,), "max_concurrency": (int, type(None)),
}


def _run_config(config: Any) -> dict[str, Any]:
    """A graph run's ``config``, refused here rather than by the graph mid-run: an object
    whose keys LangGraph reads have the types it expects."""
    config = limits.check_json("config", config or {}, limits.MAX_METADATA_BYTES)
    if not isinstance(config, dict):
        raise InvalidInput("config", "config must be an object")
    for key, kinds in _CONFIG_KEYS.items():
        value = config.get(key)
        if key in config and (not isinstance(value, kinds) or isinstance(value, bool)):
            raise InvalidInput(f"config.{key}", f"config.{key} must be "
                               f"{' or '.join(k.__name__ for k in kinds)}, "
                               f"got {type(value).__name__}")
    if "recursion_limit" in config and config["recursion_limit"] < 1:
        raise InvalidInput("config.recursion_limit", "config.recursion_limit must be >= 1")
    if not all(isinstance(tag, str) for tag in config.get("tags", [])):
        raise InvalidInput("config.tags", "config.tags must be strings")
    return config
