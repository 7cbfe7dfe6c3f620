"""Signals between the parts of one process: "runs are pending", "run X changed / was cancelled".

A signal only shortens a wait. Other processes' changes reach this one as the
store can push them: PostgreSQL names them (NOTIFY: runs pending, run X
cancelled, run X moved, run X logged, the same producer methods as this
process's own); SQLite can tell only that another process committed, and calls
``changed()``: the poller reads the marks at once and the worker re-reads its
leases and the queue. Behind both, one poller per process: while anyone waits
on runs, it reads a cheap mark of each watched run (status, lease owner, last
event seq) every poll interval and wakes the watchers of the runs whose mark
moved: every watcher when the run moved out of ``pending``/``running`` (it
ended, or released its lease after), only event watchers (streams) when it just
logged an event or moved on while still active (a claim: what a waiter for the
run's end need not re-read the run for). The poll interval therefore bounds only
what no signal covers, and a lost or missing signal delays an effect but never
breaks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Iterator
from contextlib import contextmanager

from runplane.errors import StoreClosed, StoreUnavailable
from runplane.models import RunStatus

log = logging.getLogger("runplane.notifier")

#: Rest after reading marks, as a multiple of the time the read took.
_PACE = 4.0

#: The statuses of a run that has not ended (a mark's first field).
_ACTIVE = frozenset(s.value for s in RunStatus if s.active)

#: run id -> (status, lease owner, ..., last event seq): see Store.run_marks
Marks = Callable[[list[str]], Awaitable[dict[str, tuple[Hashable, ...]]]]


class LocalNotifier:
    def __init__(self, marks: Marks, poll_interval: float) -> None:
        self._marks = marks
        self._poll_interval = poll_interval
        self._run_watchers: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._event_watchers: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._on_pending: list[Callable[[], None]] = []
        self._on_cancel: list[Callable[[str, int | None], None]] = []
        self._on_change: list[Callable[[], None]] = []
        self._changed = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None

    # producers
    def runs_pending(self) -> None:
        for callback in self._on_pending:
            callback()

    def run_cancelled(self, run_id: str, generation: int | None) -> None:
        """``generation``: the lease generation the cancel revoked (None: it was pending)."""
        for callback in self._on_cancel:
            callback(run_id, generation)
        self.run_changed(run_id)

    def run_changed(self, run_id: str) -> None:
        for event in self._run_watchers.get(run_id, ()):
            event.set()
        self.run_logged(run_id)

    def changed(self) -> None:
        """Another process committed something this one cannot name: re-read what you
        wait on now rather than at the next poll."""
        for callback in self._on_change:
            callback()
        self._changed.set()

    def run_logged(self, run_id: str) -> None:
        """``run_id`` appended to its event log (without moving otherwise)."""
        for event in self._event_watchers.get(run_id, ()):
            event.set()

    # consumers
    def subscribe(
        self,
        *,
        on_pending: Callable[[], None],
        on_cancel: Callable[[str, int | None], None],
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._on_pending.append(on_pending)
        self._on_cancel.append(on_cancel)
        if on_change is not None:
            self._on_change.append(on_change)

    @contextmanager
    def watch(self, run_id: str, *, events: bool = False) -> Iterator[asyncio.Event]:
        """An event set whenever ``run_id`` changes (with ``events``, also whenever it logs
        an event); enter it before reading the run. A change only the poller finds (another
        process's, unsignalled) sets it once the run is no longer pending or running,
        unless ``events``."""
        registry = self._event_watchers if events else self._run_watchers
        event = asyncio.Event()
        registry[run_id].add(event)
        if self._poller is None or self._poller.done():
            self._changed.clear()  # older changes: the watcher reads the run after this
            self._poller = asyncio.create_task(self._poll(), name="runplane-run-poller")
        try:
            yield event
        finally:
            watchers = registry[run_id]
            watchers.discard(event)
            if not watchers:
                del registry[run_id]

    async def close(self) -> None:
        """Stop polling and wake every waiter, so that it re-reads (and meets a closed store)."""
        for registry in (self._run_watchers, self._event_watchers):
            for watchers in registry.values():
                for event in watchers:
                    event.set()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    async def _poll(self) -> None:
        seen: dict[str, tuple[Hashable, ...]] = {}
        rest = 0.0
        away = False  # the store was unavailable at the last read
        loop = asyncio.get_running_loop()
        while self._run_watchers or self._event_watchers:
            await asyncio.sleep(rest)
            await wait_event(self._changed, self._poll_interval - rest)
            started = loop.time()
            try:
                marks = await self._marks(list({*self._run_watchers, *self._event_watchers}))
            except StoreClosed:
                return
            except StoreUnavailable as exc:  # once per outage, not once per poll
                if not away:
                    log.warning("polling watched runs: %s; retrying until it is back", exc)
                away = True
                continue
            except Exception:
                log.exception("polling watched runs failed; retrying")
                continue
            finally:
                # A read costs with the runs watched, and others may commit all the time:
                # rest a few times as long as it took, so that reading marks takes at most
                # a fifth of this process (never resting past the poll interval).
                rest = min(self._poll_interval, _PACE * (loop.time() - started))
            away = False
            for run_id, mark in marks.items():
                before = seen.get(run_id)
                if (before is None or before[:-1] != mark[:-1]) and mark[0] not in _ACTIVE:
                    self.run_changed(run_id)
                elif before != mark:
                    self.run_logged(run_id)
            seen = marks


async def wait_event(event: asyncio.Event, timeout: float | None) -> None:
    """Wait for ``event`` at most ``timeout`` seconds, then clear it."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        pass
    event.clear()


def backoff(base: float, failures: int = 1) -> float:
    """Seconds to wait after ``failures`` failed tries of a store that does not answer:
    doubling from ``base``, at most 1."""
    return min(1.0, base * 2 ** min(failures, 10))
