"""Group commit for worker writes on a server database.

A worker runs many workflows at once, and each of their writes (a step result,
an event, a completion) is small. Sent one by one, each costs a round trip, a
statement and a commit, and the database server's CPU, not the data, becomes
the limit. A :class:`WriteBatcher` sends the writes that arrived while the
previous batch was in flight as one statement: a write alone is sent at once,
writes under load share one commit.

A batch holds at most one write per run, so a run's writes keep their order and
each statement changes a run's row once; a second write of the same run waits
for the next batch.

A batch the database refused (a statement error: it changed nothing) is sent
again one write at a time, so one bad write fails alone. Any other failure
(a lost connection, a timeout) may have come after the commit: every write of
the batch then fails with it, as a lone write would, and none is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from runplane.errors import StoreClosed

log = logging.getLogger("runplane.store.batch")

A = TypeVar("A")
R = TypeVar("R")

#: A batch statement that failed with one of these is sent again (it changed nothing).
Retryable = tuple[type[BaseException], ...]


class WriteBatcher(Generic[A, R]):
    """Queue ``submit(item)`` calls and send them through ``flush(items) -> results``."""

    def __init__(
        self,
        name: str,
        flush: Callable[[list[A]], Awaitable[list[R]]],
        key: Callable[[A], Hashable],
        *,
        max_batch: int = 500,
        retryable: Retryable = (),
        retries: int = 5,
        refused: Retryable = (),
        drain_timeout: float = 10.0,
    ) -> None:
        """``retryable``: errors after which the batch is sent again whole (it changed
        nothing, e.g. a deadlock); ``refused``: errors that changed nothing and may be one
        write's fault (then each write is sent alone)."""
        self.name = name
        self._flush = flush
        self._key = key
        self._max_batch = max_batch
        self._retryable = retryable
        self._retries = retries
        self._refused = refused
        self._drain_timeout = drain_timeout
        self._queue: list[tuple[A, asyncio.Future[R]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def submit(self, item: A) -> asyncio.Future[R]:
        """The future resolves once the batch holding ``item`` committed (or failed)."""
        if self._closed:
            raise StoreClosed("the store is closed")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"runplane-batch-{self.name}")
        self._wake.set()
        return future

    async def close(self) -> None:
        """Refuse new writes, send those queued (up to ``drain_timeout`` seconds), stop."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None and not task.done():
            self._wake.set()
            _, pending = await asyncio.wait({task}, timeout=self._drain_timeout)
            if pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        queued, self._queue = self._queue, []
        for _, future in queued:
            _settle(future, exc=StoreClosed("the store closed before this write was sent"))

    async def _run(self) -> None:
        while not (self._closed and not self._queue):
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._take()
                try:
                    await self._deliver(batch)
                except asyncio.CancelledError:
                    for _, future in batch:
                        _settle(future, exc=StoreClosed(
                            "the store closed while this write was in flight: it may or may "
                            "not have been stored"))
                    raise

    async def _deliver(self, batch: list[tuple[A, asyncio.Future[R]]]) -> None:
        try:
            results = await self._send([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or not isinstance(exc, self._refused):
                for _, future in batch:
                    _settle(future, exc=exc)
                return
            for entry in batch:  # one write's error must not fail its neighbours
                await self._deliver([entry])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result)

    def _take(self) -> list[tuple[A, asyncio.Future[R]]]:
        batch: list[tuple[A, asyncio.Future[R]]] = []
        later: list[tuple[A, asyncio.Future[R]]] = []
        keys: set[Hashable] = set()
        for entry in self._queue:
            key = self._key(entry[0])
            if len(batch) < self._max_batch and key not in keys:
                keys.add(key)
                batch.append(entry)
            else:
                later.append(entry)
        self._queue = later
        return batch

    async def _send(self, items: list[A]) -> list[R]:
        for attempt in range(self._retries + 1):
            try:
                return await self._flush(items)
            except self._retryable as exc:
                if attempt == self._retries:
                    raise
                log.info("%s batch of %d failed (%s); sending it again",
                         self.name, len(items), exc)
                await asyncio.sleep(0.001 * 2 ** attempt)
        raise AssertionError("unreachable")


def _settle(future: asyncio.Future[R], result: R | None = None, *,
            exc: BaseException | None = None) -> None:
    """Resolve ``future`` unless its writer gave up on it (then nobody reads it)."""
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]
