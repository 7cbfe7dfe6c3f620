"""The :class:`~runplane.store.base.Store` protocol, written once for both databases.

Every call is one function of :mod:`runplane.store.transactions` run by the dialect,
in a transaction (``_write``) or as plain reads (``_read``). A dialect supplies those
two, its thread search (the one statement built at run time), the workflow writes
(``append_event``, ``complete_step``, ``finish_run``: PostgreSQL batches them into
single statements, SQLite writes them one at a time) and whatever else it does its
own way (PostgreSQL's batched thread-less creations and claims).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from runplane.models import (
    ANY_RUN,
    AssistantRecord,
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
)
from runplane.store import transactions as txs
from runplane.store.base import Created, OnActive, Reaped, Swept
from runplane.store.transactions import Tx

T = TypeVar("T")
Work = Callable[[Tx], Coroutine[Any, Any, T]]


class SQLStore(ABC):
    """The store calls over a dialect's transactions (subclassed by each dialect)."""

    @abstractmethod
    def _write(self, work: Work[T]) -> Awaitable[T]:
        """Run ``work`` in one transaction."""

    @abstractmethod
    def _read(self, work: Work[T]) -> Awaitable[T]:
        """Run ``work``, which only reads."""

    # threads
    async def create_thread(
        self, thread_id: str, metadata: dict[str, Any], now: float, *, if_exists: str,
        owner: str | None = None, ttl: ThreadTTL | None = None,
    ) -> Thread:
        return await self._write(
            lambda tx: txs.create_thread(tx, thread_id, metadata, now, if_exists, owner, ttl))

    async def get_thread(self, thread_id: str) -> Thread | None:
        return await self._read(lambda tx: txs.get_thread(tx, thread_id))

    async def update_thread(
        self, thread_id: str, metadata: dict[str, Any], now: float, *,
        ttl: ThreadTTL | None = None,
    ) -> Thread | None:
        return await self._write(
            lambda tx: txs.update_thread(tx, thread_id, metadata, now, ttl))

    async def expire_threads(self, now: float, limit: int) -> list[str]:
        return await self._write(lambda tx: txs.expire_threads(tx, now, limit))

    async def delete_thread(self, thread_id: str) -> bool:
        return await self._write(lambda tx: txs.delete_thread(tx, thread_id))

    async def copy_thread(
        self, source_thread_id: str, target_thread_id: str, now: float, *, owner: str | None
    ) -> bool:
        return await self._write(lambda tx: txs.copy_thread(
            tx, source_thread_id, target_thread_id, now, owner))

    # assistants made through the API
    async def create_assistant(self, new: AssistantRecord, now: float
                               ) -> tuple[AssistantRecord, bool]:
        return await self._write(lambda tx: txs.create_assistant(tx, new, now))

    async def get_assistant(self, assistant_id: str) -> AssistantRecord | None:
        return await self._read(lambda tx: txs.get_assistant(tx, assistant_id))

    async def search_assistants(
        self, *, owner: str | None, graph_id: str | None, name: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> list[AssistantRecord]:
        return await self._read(lambda tx: txs.search_assistants(
            tx, owner, graph_id, name, metadata))

    async def update_assistant(
        self, assistant_id: str, owner: str | None,
        change: Callable[[AssistantRecord], AssistantRecord], now: float,
    ) -> AssistantRecord:
        return await self._write(lambda tx: txs.update_assistant(
            tx, assistant_id, owner, change, now))

    async def set_latest_assistant_version(
        self, assistant_id: str, owner: str | None, version: int, now: float
    ) -> AssistantRecord:
        return await self._write(lambda tx: txs.set_latest_assistant_version(
            tx, assistant_id, owner, version, now))

    async def assistant_versions(
        self, assistant_id: str, *, metadata: Mapping[str, Any] | None, limit: int,
        offset: int,
    ) -> list[AssistantRecord]:
        return await self._read(lambda tx: txs.assistant_versions(
            tx, assistant_id, metadata, limit, offset))

    async def delete_assistant(
        self, assistant_id: str, owner: str | None, *, delete_threads: bool,
        threads_matching: Where = None,
    ) -> list[str]:
        return await self._write(lambda tx: txs.delete_assistant(
            tx, assistant_id, owner, delete_threads, threads_matching))

    # the memory store (items)
    async def put_item(self, owner: str, namespace: Sequence[str], key: str,
                       value: dict[str, Any], ttl_minutes: float | None, now: float) -> None:
        await self._write(lambda tx: txs.put_item(tx, owner, namespace, key, value,
                                                  ttl_minutes, now))

    async def get_item(self, owner: str, namespace: Sequence[str], key: str, now: float, *,
                       refresh: bool) -> StoredItem | None:
        run = self._write if refresh else self._read
        return await run(lambda tx: txs.get_item(tx, owner, namespace, key, now, refresh))

    async def delete_item(self, owner: str, namespace: Sequence[str], key: str) -> None:
        await self._write(lambda tx: txs.delete_item(tx, owner, namespace, key))

    async def search_items(
        self, owner: str, prefix: Sequence[str], conditions: Mapping[str, Any], limit: int,
        offset: int, now: float, *, refresh: bool, required: Mapping[str, Any] | None = None,
    ) -> list[StoredItem]:
        run = self._write if refresh else self._read
        return await run(lambda tx: txs.search_items(tx, owner, prefix, conditions, limit,
                                                     offset, now, refresh, required))

    async def item_namespaces(self, owner: str, now: float) -> list[tuple[str, ...]]:
        return await self._read(lambda tx: txs.item_namespaces(tx, owner, now))

    async def expire_items(self, now: float) -> int:
        return await self._write(lambda tx: txs.expire_items(tx, now))

    # crons
    async def create_cron(self, cron: Cron) -> Cron:
        return await self._write(lambda tx: txs.insert_cron(tx, cron))

    async def get_cron(self, cron_id: str) -> Cron | None:
        return await self._read(lambda tx: txs.get_cron(tx, cron_id))

    async def update_cron(self, cron_id: str, owner: str | None,
                          change: Callable[[Cron], Cron]) -> Cron | None:
        return await self._write(lambda tx: txs.update_cron(tx, cron_id, owner, change))

    async def delete_cron(self, cron_id: str, owner: str | None) -> bool:
        return await self._write(lambda tx: txs.delete_cron(tx, cron_id, owner))

    async def search_crons(
        self, *, owner: str | None, assistant_id: str | None, thread_id: str | None,
        enabled: bool | None, metadata: Mapping[str, Any] | None,
    ) -> list[Cron]:
        return await self._read(lambda tx: txs.search_crons(
            tx, owner, assistant_id, thread_id, enabled, metadata))

    async def due_crons(self, now: float, limit: int) -> list[Cron]:
        return await self._read(lambda tx: txs.due_crons(tx, now, limit))

    async def fire_cron(
        self, cron_id: str, scheduled: float, next_at: float | None, new: NewRun | None,
        now: float, *, on_active: OnActive, create_thread: bool = False,
        own_thread_only: bool = False,
    ) -> Created | None:
        return await self._write(lambda tx: txs.fire_cron(
            tx, cron_id, scheduled, next_at, new, now, on_active, create_thread,
            own_thread_only))

    # webhooks
    async def claim_webhooks(self, now: float, until: float, limit: int
                             ) -> list[WebhookDelivery]:
        return await self._write(lambda tx: txs.claim_webhooks(tx, now, until, limit))

    async def webhook_attempted(
        self, delivery: WebhookDelivery, error: str | None, now: float, retry_at: float,
        max_attempts: int,
    ) -> None:
        await self._write(lambda tx: txs.webhook_attempted(tx, delivery, error, now,
                                                           retry_at, max_attempts))

    async def run_webhooks(self, run_id: str) -> list[WebhookDelivery]:
        return await self._read(lambda tx: txs.run_webhooks(tx, run_id))

    # runs, service side
    async def create_run(
        self, new: NewRun, now: float, *, on_active: OnActive, create_thread: bool = False,
        own_thread_only: bool = False,
    ) -> Created:
        return await self._write(lambda tx: txs.create_run(
            tx, new, now, on_active, create_thread, own_thread_only))

    async def get_run(self, run_id: str) -> Run | None:
        return await self._read(lambda tx: txs.get_run(tx, run_id))

    async def list_runs(
        self, *, thread_id: str | None, status: RunStatus | None, limit: int, offset: int,
        owner: str | None = None, where: RunFilter = ANY_RUN,
    ) -> list[Run]:
        return await self._read(
            lambda tx: txs.list_runs(tx, thread_id, status, limit, offset, owner, where))

    async def count_runs(
        self, *, thread_id: str | None, owner: str | None = None, where: RunFilter = ANY_RUN,
    ) -> dict[RunStatus, int]:
        return await self._read(lambda tx: txs.count_runs(tx, thread_id, owner, where))

    async def cancel_runs(
        self, run_id: str, request: CancelRequest, now: float, *, whole_tree: bool
    ) -> Swept | None:
        return await self._write(
            lambda tx: txs.sweep(tx, run_id, request, now, whole_tree=whole_tree))

    async def spawn_run(self, parent: Lease, new: NewRun, now: float) -> Run | None:
        return await self._write(lambda tx: txs.spawn(tx, parent, new, now))

    async def get_tree(self, root_run_id: str) -> list[Run]:
        return await self._read(lambda tx: txs.get_tree(tx, root_run_id))

    async def orphaned_runs(self) -> list[Run]:
        return await self._read(txs.orphaned_runs)

    async def delete_run(self, run_id: str) -> Run:
        return await self._write(lambda tx: txs.delete_run(tx, run_id))

    async def resume_run(self, run_id: str, now: float) -> Run:
        return await self._write(lambda tx: txs.resume(tx, run_id, now))

    async def run_marks(self, run_ids: list[str]) -> dict[str, tuple[Any, ...]]:
        return await self._read(lambda tx: txs.run_marks(tx, run_ids))

    async def get_steps(self, run_id: str) -> list[Step]:
        return await self._read(lambda tx: txs.get_steps(tx, run_id))

    async def get_events(self, run_id: str, *, after_seq: int = 0) -> list[Event]:
        return await self._read(lambda tx: txs.get_events(tx, run_id, after_seq))

    # runs, worker side
    async def claim_runs(
        self, owner: str, workflows: list[str], limit: int, lease_ttl: float, now: float,
        *, exclude: list[str] | None = None,
    ) -> list[ClaimedRun]:
        return await self._write(lambda tx: txs.claim_one_by_one(
            tx, owner, workflows, limit, now + lease_ttl, now, exclude or []))

    async def renew_leases(self, leases: list[Lease], lease_ttl: float, now: float) -> list[str]:
        return await self._write(lambda tx: txs.renew_leases(tx, leases, now + lease_ttl))

    async def lost_leases(self, leases: list[Lease]) -> list[str]:
        return await self._read(lambda tx: txs.lost_leases(tx, leases))

    async def release_lease(self, lease: Lease) -> None:
        await self._write(lambda tx: txs.release_lease(tx, lease))

    async def requeue_run(
        self, lease: Lease, reason: str, now: float, *, in_flight: tuple[int, str] | None = None
    ) -> bool:
        return await self._write(lambda tx: txs.requeue(tx, lease, reason, now, in_flight))

    async def reap_expired(self, now: float) -> list[Reaped]:
        return await self._write(lambda tx: txs.reap(tx, now))

    async def record_step_cancel(
        self, lease: Lease, index: int, name: str, reason: str, now: float
    ) -> None:
        await self._write(
            lambda tx: txs.record_step_cancel(tx, lease, index, name, reason, now))

    # LangGraph checkpoints
    async def put_checkpoint(
        self, checkpoint: StoredCheckpoint, now: float, *, lease: Lease | None
    ) -> bool:
        return await self._write(lambda tx: txs.put_checkpoint(tx, checkpoint, lease, now))

    async def put_checkpoint_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str,
        writes: Sequence[CheckpointWrite], now: float, *, run_id: str | None,
        lease: Lease | None,
    ) -> bool:
        return await self._write(lambda tx: txs.put_checkpoint_writes(
            tx, thread_id, checkpoint_ns, checkpoint_id, writes, run_id, lease, now))

    async def put_thread_state(
        self, thread_id: str, checkpoints: Sequence[StoredCheckpoint],
        writes: Mapping[tuple[str, str, str], Sequence[CheckpointWrite]], values: Any,
        interrupts: dict[str, Any] | None, now: float,
    ) -> None:
        await self._write(lambda tx: txs.put_thread_state(
            tx, thread_id, checkpoints, writes, values, interrupts, now))

    async def get_checkpoint(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> StoredCheckpoint | None:
        return await self._read(
            lambda tx: txs.get_checkpoint(tx, thread_id, checkpoint_ns, checkpoint_id))

    async def list_checkpoints(
        self, *, thread_id: str | None, checkpoint_ns: str | None,
        checkpoint_id: str | None = None, metadata: dict[str, Any] | None = None,
        before: str | None = None, limit: int | None = None,
    ) -> list[StoredCheckpoint]:
        return await self._read(lambda tx: txs.list_checkpoints(
            tx, thread_id, checkpoint_ns, checkpoint_id, metadata, before, limit))

    async def delete_checkpoints(self, thread_id: str) -> None:
        await self._write(lambda tx: txs.delete_checkpoints(tx, thread_id))

    async def delete_checkpoints_of_runs(self, run_ids: Sequence[str]) -> None:
        await self._write(lambda tx: txs.delete_checkpoints_of_runs(tx, list(run_ids)))

    async def copy_checkpoints(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._write(
            lambda tx: txs.copy_checkpoints(tx, source_thread_id, target_thread_id))

    async def prune_checkpoints(self, thread_ids: Sequence[str], *, keep_latest: bool) -> None:
        await self._write(lambda tx: txs.prune_checkpoints(tx, list(thread_ids), keep_latest))
