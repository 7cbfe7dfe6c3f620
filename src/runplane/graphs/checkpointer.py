"""The fenced LangGraph checkpointer: a graph's checkpoints in runplane's own store.

:class:`RunplaneSaver` keeps checkpoints and pending writes in the store's
``lg_checkpoints`` and ``lg_writes`` tables, through the store's own connection and
transactions (SQLite's writer thread, PostgreSQL's asyncpg pool): no second driver, no
second writer on the SQLite file. A checkpoint is kept whole, as the graph's serializer
wrote it; its metadata as JSON, which ``alist(filter=...)`` reads.

A saver bound to a run's lease fences every write it makes: in the write's transaction
the run must still be ``running`` under that lease generation, else nothing is stored.
A refused write stops the run, reported as cancelled or lease lost as for a refused step
write. LangGraph runs its checkpoint writes in tasks of its own: ``aput`` is awaited
after each super-step only under ``durability="sync"`` (runplane's default for graph
runs: a refusal stops the graph before its next super-step), and ``aput_writes`` is
never awaited until the graph ends. So a refusal does not rely on the graph to notice:
the saver's writes go through the run's :meth:`runplane.context.Context.fenced_write`,
which classifies the refusal, sets the run's stop reason and cancels the run's task,
as the worker does when it hears of a cancel.

A saver without a lease writes unfenced (a thread's state edited outside any run).
Only the async methods exist: the sync twins raise NotImplementedError.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from runplane.clock import Clock, SystemClock
from runplane.context import FenceRefused
from runplane.models import PRUNE_STRATEGIES, CheckpointWrite, Lease, StoredCheckpoint
from runplane.store.base import Store

if TYPE_CHECKING:
    from runplane.context import Context

#: What a fenced write goes through: the run's ``Context.fenced_write`` (it raises
#: FenceRefused or StoreFailed, counts refused writes and stops the run).
Fenced = Callable[[str, Awaitable[bool]], Awaitable[None]]

#: The kind of write a refusal is counted under (``runplane_refused_writes_total``).
KIND = "checkpoint"



class RunplaneSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer over a runplane :class:`~runplane.store.base.Store`."""

    def __init__(
        self, store: Store, *, lease: Lease | None = None, fenced: Fenced | None = None,
        clock: Clock | None = None, serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._store = store
        self._lease = lease
        self._fenced = fenced
        self._clock = clock or SystemClock()

    @classmethod
    def for_run(cls, store: Store, ctx: Context, *, clock: Clock | None = None
                ) -> RunplaneSaver:
        """The saver of the run ``ctx`` is running: every write fenced by its lease."""
        return cls(store, lease=ctx.lease, fenced=ctx.fenced_write, clock=clock)

    # --- writes -------------------------------------------------------------
    async def aput(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        stored = self._row(config, checkpoint, metadata)
        await self._write(self._store.put_checkpoint(stored, self._clock.now(),
                                                     lease=self._lease))
        return _config(stored.thread_id, stored.checkpoint_ns, stored.checkpoint_id)

    def _row(self, config: RunnableConfig, checkpoint: Checkpoint,
             metadata: CheckpointMetadata) -> StoredCheckpoint:
        kept = get_checkpoint_metadata(config, metadata)
        kind, blob = self.serde.dumps_typed(checkpoint)
        return StoredCheckpoint(
            thread_id=_thread(config), checkpoint_ns=_namespace(config),
            checkpoint_id=checkpoint["id"],
            parent_checkpoint_id=get_checkpoint_id(config) or None,
            run_id=self._run_id(config, kept), type=kind, checkpoint=blob,
            metadata=json.dumps(kept, ensure_ascii=False, default=repr))

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
        task_path: str = "",
    ) -> None:
        checkpoint_id, stored = self._write_rows(config, writes, task_id, task_path)
        await self._write(self._store.put_checkpoint_writes(
            _thread(config), _namespace(config), checkpoint_id, stored, self._clock.now(),
            run_id=self._run_id(config, {}), lease=self._lease))

    def _write_rows(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
        task_path: str,
    ) -> tuple[str, list[CheckpointWrite]]:
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id is None:
            raise ValueError("aput_writes: the config names no checkpoint_id")
        return checkpoint_id, [
            CheckpointWrite(task_id, WRITES_IDX_MAP.get(channel, idx), channel,
                            *self.serde.dumps_typed(value), task_path=task_path)
            for idx, (channel, value) in enumerate(writes)
        ]

    async def _write(self, write: Awaitable[bool]) -> None:
        if self._fenced is not None:
            await self._fenced(KIND, write)
        elif not await write:
            assert self._lease is not None  # unfenced writes are never refused
            raise FenceRefused(f"run {self._lease.run_id}: {KIND} write refused")

    def _run_id(self, config: RunnableConfig, metadata: CheckpointMetadata) -> str | None:
        """The run a write belongs to (what ``adelete_for_runs`` deletes): the lease's, or
        the one the config or the metadata names."""
        if self._lease is not None:
            return self._lease.run_id
        run_id = (metadata.get("run_id") or config.get("configurable", {}).get("run_id")
                  or (config.get("metadata") or {}).get("run_id"))
        return None if run_id is None else str(run_id)

    # --- reads --------------------------------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        stored = await self._store.get_checkpoint(
            _thread(config), _namespace(config), get_checkpoint_id(config) or None)
        return None if stored is None else self._tuple(stored)

    async def alist(
        self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None, limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        configurable = (config or {}).get("configurable") or {}
        thread_id = configurable.get("thread_id")
        found = await self._store.list_checkpoints(
            thread_id=None if thread_id is None else str(thread_id),
            checkpoint_ns=configurable.get("checkpoint_ns"),
            checkpoint_id=configurable.get("checkpoint_id") or None,
            metadata=filter or None,
            before=None if before is None else get_checkpoint_id(before) or None,
            limit=limit)
        for stored in found:
            yield self._tuple(stored)

    def _tuple(self, stored: StoredCheckpoint) -> CheckpointTuple:
        parent = stored.parent_checkpoint_id
        return CheckpointTuple(
            config=_config(stored.thread_id, stored.checkpoint_ns, stored.checkpoint_id),
            checkpoint=self.serde.loads_typed((stored.type, stored.checkpoint)),
            metadata=json.loads(stored.metadata),
            parent_config=None if parent is None else
            _config(stored.thread_id, stored.checkpoint_ns, parent),
            pending_writes=[(w.task_id, w.channel, self.serde.loads_typed((w.type, w.value)))
                            for w in stored.writes],
        )

    # --- threads and runs ---------------------------------------------------
    async def adelete_thread(self, thread_id: str) -> None:
        await self._store.delete_checkpoints(str(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        if run_ids:
            await self._store.delete_checkpoints_of_runs([str(r) for r in run_ids])

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._store.copy_checkpoints(str(source_thread_id), str(target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest`` keeps each namespace's newest checkpoint (and its writes) only:
        a graph with DeltaChannel state needs the ancestors it reads, keep no such graph's
        threads pruned this way."""
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(f"unknown prune strategy {strategy!r}; expected one of "
                             f"{', '.join(PRUNE_STRATEGIES)}")
        if thread_ids:
            await self._store.prune_checkpoints([str(t) for t in thread_ids],
                                                keep_latest=strategy == "keep_latest")

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Versions as LangGraph's own savers write them: a counter, then a random tie
        breaker (so two branches of one thread do not mistake each other's versions)."""
        number = 0 if current is None else int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"

    # --- the sync twins -------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        raise _sync("get_tuple")

    def list(
        self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None, limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        raise _sync("list")

    def put(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        raise _sync("put")

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
        task_path: str = "",
    ) -> None:
        raise _sync("put_writes")

    def delete_thread(self, thread_id: str) -> None:
        raise _sync("delete_thread")

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        raise _sync("delete_for_runs")

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        raise _sync("copy_thread")

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        raise _sync("prune")


class HeldSaver(RunplaneSaver):
    """A saver whose writes are held, not written: reads go to the store, with what it
    holds laid over them, until its owner commits everything it holds in one transaction
    (a state edit: its checkpoints and pending writes stand or fall together, beside the
    decision to allow the edit at all)."""

    def __init__(self, store: Store, *, clock: Clock | None = None) -> None:
        super().__init__(store, clock=clock)
        self.checkpoints: list[StoredCheckpoint] = []
        #: pending writes onto checkpoints already stored: (thread, namespace, id) -> writes
        self.writes: dict[tuple[str, str, str], list[CheckpointWrite]] = {}

    async def aput(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        stored = self._row(config, checkpoint, metadata)
        self.checkpoints.append(stored)
        return _config(stored.thread_id, stored.checkpoint_ns, stored.checkpoint_id)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
        task_path: str = "",
    ) -> None:
        checkpoint_id, stored = self._write_rows(config, writes, task_id, task_path)
        key = (_thread(config), _namespace(config), checkpoint_id)
        for k, held in enumerate(self.checkpoints):
            if (held.thread_id, held.checkpoint_ns, held.checkpoint_id) == key:
                self.checkpoints[k] = dataclasses.replace(
                    held, writes=(*held.writes, *stored))
                return
        self.writes.setdefault(key, []).extend(stored)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        wanted = get_checkpoint_id(config)
        for held in reversed(self.checkpoints):
            if held.thread_id == _thread(config) and held.checkpoint_ns == \
                    _namespace(config) and wanted in (None, held.checkpoint_id):
                return self._tuple(held)
        stored = await self._store.get_checkpoint(
            _thread(config), _namespace(config), wanted or None)
        if stored is None:
            return None
        extra = self.writes.get((stored.thread_id, stored.checkpoint_ns, stored.checkpoint_id))
        return self._tuple(stored if not extra else
                           dataclasses.replace(stored, writes=(*stored.writes, *extra)))


def _sync(method: str) -> NotImplementedError:
    return NotImplementedError(
        f"RunplaneSaver.{method}: runplane's checkpointer is async only; use a{method} "
        "(run the graph with ainvoke/astream, read its state with aget_state)")


def _thread(config: RunnableConfig) -> str:
    return str(config["configurable"]["thread_id"])


def _namespace(config: RunnableConfig) -> str:
    return str(config["configurable"].get("checkpoint_ns") or "")


def _config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns,
                             "checkpoint_id": checkpoint_id}}
