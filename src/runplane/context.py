"""What a workflow sees of its run: durable steps, streamed events, cancellation."""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar, overload

from runplane import limits, metrics
from runplane.clock import Clock
from runplane.errors import (
    STORE_FAULTS,
    InvalidInput,
    NonDeterministicReplay,
    StepResultNotSerializable,
    UnstorableValue,
)
from runplane.hooks import Hooks
from runplane.lifecycle import RESERVED_PREFIXES, EventName
from runplane.models import ANSWER_STEP, Caller, ClaimedRun, Lease, RunStatus, Step
from runplane.store.base import Store

if TYPE_CHECKING:
    from runplane.memory import OwnersStore
    from runplane.service import RunService

log = logging.getLogger("runplane.worker")

T = TypeVar("T")

StopReason = Literal["cancelled", "lease_lost", "timeout", "shutdown", "store_unavailable"]


class SpawnRefused(Exception):
    """The parent's lease was lost before its child could be created."""


class Paused(BaseException):
    """``ctx.interrupt`` ends the run here: a BaseException, so that a workflow's
    ``except Exception`` cannot swallow the pause and go on without the answer."""

    def __init__(self, asked: list[dict[str, Any]]) -> None:
        super().__init__(f"paused for an answer (interrupt {asked[0]['id']})")
        #: The run's output: its pending interrupt, as a graph run's output shows its own.
        self.output = {"__interrupt__": asked}


class ChildHandle:
    """A spawned child run: ``await handle`` (any number of times, e.g. in ``gather``)
    returns its output or raises ChildCancelled / ChildFailed."""

    def __init__(self, run_id: str, runs: RunService, ctx: Context) -> None:
        self.run_id = run_id
        self._runs = runs
        self._ctx = ctx

    def __await__(self) -> Generator[Any, None, Any]:
        return self._result().__await__()

    async def _result(self) -> Any:
        try:
            return await self._runs.child_result(self.run_id)
        except STORE_FAULTS as exc:  # the parent's attempt stops, as for a failed write
            raise self._ctx.store_failed("child read", exc) from exc

    def __repr__(self) -> str:
        return f"ChildHandle({self.run_id!r})"


class FenceRefused(asyncio.CancelledError):
    """A worker write met the fence: the run was cancelled or its lease passed on."""


class StoreFailed(asyncio.CancelledError):
    """A worker write (or read) for the run failed because the store did not answer.

    Not the workflow's failure: like FenceRefused it is a CancelledError, so a workflow's
    ``except Exception`` cannot swallow it; the attempt stops and the worker hands the run
    back, to resume after its last completed step.
    """


async def uncancellable(awaitable: Awaitable[T]) -> T:
    """Finish ``awaitable`` even if the caller is cancelled meanwhile, then honour the cancel.

    Used for a write (or a test hook standing between two writes), so that
    cancelling the task never leaves us unsure whether the write happened.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


async def classify_refusal(store: Store, lease: Lease) -> StopReason | None:
    """A fenced write was refused: was this lease revoked by a cancel, or did another
    worker take the run? ``None``: the store says this lease still holds."""
    run = await store.get_run(lease.run_id)
    if run is None:
        return "lease_lost"
    if run.cancelled_generation == lease.generation:
        return "cancelled"
    if run.status is RunStatus.RUNNING and run.lease_generation == lease.generation:
        return None
    return "lease_lost"


def _storable(call: str, check: Callable[..., Any], *args: Any) -> None:
    """Run a check of :mod:`runplane.limits` on what the workflow's ``call`` hands over,
    before anything is written: a refusal raises there, naming the call and the spot."""
    try:
        check(*args)
    except InvalidInput as exc:
        raise UnstorableValue(exc.field, f"{call}: {exc}") from None


class Context:
    """Passed to every workflow as its first argument."""

    def __init__(
        self, claimed: ClaimedRun, *, store: Store, clock: Clock, hooks: Hooks,
        logged: Callable[[str], None] | None = None, runs: RunService | None = None,
    ) -> None:
        run = claimed.run
        self.run_id = run.run_id
        self.root_run_id = run.root_run_id
        #: children spawned after the last cancel of this run are new ones, not re-attached
        self._spawn_epoch = run.cancelled_generation or 0
        self._runs = runs
        #: True once this attempt spawned (or re-attached to) an attached child
        self.spawned_attached = False
        self.thread_id = run.thread_id
        #: whose run this is: its store space (``store``), its children's owner
        self.owner = run.owner
        self._memory: OwnersStore | None = None
        self.assistant_id = run.assistant_id
        self.attempt = run.attempt
        self.metadata = run.metadata
        #: How a graph run is to run (see :mod:`runplane.graphs.runner`).
        self.kwargs = run.kwargs
        #: The run's ``config`` and ``context``: its assistant's (one made through the API)
        #: under the run's own.
        self.config: dict[str, Any] = run.kwargs.get("config") or {}
        self.context: Any = run.kwargs.get("context") or {}
        self.lease = claimed.lease
        self._replay: list[Step] = claimed.steps
        self._next_index = 0
        self._store = store
        self._clock = clock
        self._hooks = hooks
        #: told of every event this run logged: wakes this process's streams at once
        self._logged = logged
        #: Why the worker stopped this run, once it did.
        self.stop_reason: StopReason | None = None
        #: The step whose function is running and whose result is not yet stored.
        self.in_flight: tuple[int, str] | None = None
        #: The task running the workflow (the worker sets it): what ``fenced_write`` stops.
        self.task: asyncio.Task[Any] | None = None
        #: The worker is shutting down: a workflow that can stop at a clean point soon may
        #: stop there (``stop_for_shutdown``) rather than be stopped when the grace ends.
        self.draining = False
        self._on_drain: list[Callable[[], None]] = []
        #: A run that paused (``interrupt``; a graph's interrupt or breakpoint) sets its
        #: thread's pending interrupts here; the run's end writes them to the thread.
        self.thread_interrupts: dict[str, Any] | None = None

    def on_drain(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the worker starts shutting down (at once if it has)."""
        self._on_drain.append(callback)
        if self.draining:
            callback()

    def drain(self) -> None:
        """The worker starts shutting down (called by the worker)."""
        if not self.draining:
            self.draining = True
            for callback in self._on_drain:
                callback()

    def stop_for_shutdown(self) -> NoReturn:
        """Stop the run here, at a clean point, because the worker shuts down: it is handed
        back to the queue and goes on elsewhere, as after the grace."""
        if self.stop_reason is None:
            self.stop_reason = "shutdown"
        raise asyncio.CancelledError(f"run {self.run_id} handed back: the worker shuts down")

    @property
    def cancelled(self) -> bool:
        """True once the worker learnt that this run was cancelled (or must stop)."""
        return self.stop_reason is not None

    @property
    def replaying(self) -> bool:
        return self._next_index < len(self._replay)

    @overload
    async def step(
        self, name: str, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T: ...
    @overload
    async def step(self, name: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...
    async def step(
        self, name: str, fn: Callable[..., T | Awaitable[T]], *args: Any, **kwargs: Any
    ) -> T:
        """Run ``fn`` once for this run and store its result; on resume return the stored result.

        A result still in flight when the run is cancelled is discarded, never
        stored as completed. A result no store could keep (see
        :func:`runplane.limits.check_result`) fails the step like an exception would.
        """
        _storable(f"ctx.step({name!r})", limits.check_text, "name", name)
        if self.in_flight is not None:
            raise RuntimeError(
                f"ctx.step({name!r}) called while step {self.in_flight[1]!r} is still running: "
                "the steps of one run are a sequence and must not overlap"
            )
        index, stored = self._next(name)
        if stored is not None:
            return stored.result
        self._raise_if_stopped()
        self.in_flight = (index, name)
        await self._fenced("event", self._store.append_event(
            self.run_id, EventName.STEP_START, {"name": name, "index": index}, self._clock.now(),
            lease=self.lease))
        try:
            result = await self._call(fn, args, kwargs)
            try:
                limits.check_result("result", result)
            except InvalidInput as exc:
                raise StepResultNotSerializable(name, exc) from exc
        except Exception as exc:
            await self._step_failed(index, name, exc)
            raise
        cancelled_meanwhile = False
        if self._hooks.after_step_fn is not None:
            # A hook is a gap, not an await point of its own: a cancel arriving in it meets
            # the fence of the write below, as it would in the instant it stands for.
            try:
                await uncancellable(self._hooks.after_step_fn(self.run_id, index, name))
            except asyncio.CancelledError:
                cancelled_meanwhile = True
        try:
            await self._fenced("step", self._store.complete_step(
                self.lease, index, name, result, self._clock.now()))
        except Exception as exc:  # not a fault, not the fence: the store refused the result
            await self._step_failed(index, name, exc)
            raise
        self.in_flight = None
        if cancelled_meanwhile:
            raise asyncio.CancelledError(f"run {self.run_id} stopped: {self.stop_reason}")
        return result

    def _next(self, name: str) -> tuple[int, Step | None]:
        """The index of the next step, and its stored result on replay."""
        index = self._next_index
        self._next_index += 1
        if index >= len(self._replay):
            return index, None
        stored = self._replay[index]
        if stored.name != name:
            raise NonDeterministicReplay(index, stored.name, name)
        return index, stored

    async def interrupt(self, value: Any = None) -> Any:
        """Pause the run until someone answers ``value``; return the answer.

        The run ends here, ``success`` with ``{"__interrupt__": [{"value", "id"}]}``, and
        its thread becomes ``interrupted``: no worker holds the run while it waits. A run
        created on the thread with ``command={"resume": answer}`` calls the workflow again
        with this run's input, its completed steps replayed from their stored results (not
        re-run), and this call returns ``answer`` there. Only a run on a thread can pause.
        """
        _storable("ctx.interrupt", limits.check_result, "value", value)
        if self.thread_id is None:
            raise RuntimeError("ctx.interrupt: a run without a thread cannot pause, as no "
                               "run could resume it (create the run on a thread)")
        if self.in_flight is not None:
            raise RuntimeError(f"ctx.interrupt called while step {self.in_flight[1]!r} is "
                               "still running")
        index, stored = self._next(ANSWER_STEP)
        if stored is not None:
            return stored.result
        self._raise_if_stopped()
        asked = [{"value": value,
                  "id": uuid.uuid5(uuid.NAMESPACE_URL, f"runplane:{self.run_id}:{index}").hex}]
        self.thread_interrupts = {self.run_id: asked}
        raise Paused(asked)

    async def _step_failed(self, index: int, name: str, exc: Exception) -> None:
        """Only completed steps take an index: a failed one runs again on resume."""
        self.in_flight = None
        self._next_index = index
        await self._fenced("event", self._store.append_event(
            self.run_id, EventName.STEP_FAIL,
            {"name": name, "index": index,
             "error": limits.storable_text(f"{type(exc).__name__}: {exc}")},
            self._clock.now(), lease=self.lease))

    async def spawn(self, workflow: str, input: Any = None, *, detached: bool = False
                    ) -> ChildHandle:
        """Start ``workflow`` as a child run; ``await`` the handle for its output.

        Durable like a step: on resume the parent re-attaches to the same child instead of
        starting a second one. An attached child (the default) is cancelled with its parent
        and belongs to its tree; a ``detached`` one roots a tree of its own.
        """
        if self._runs is None:
            raise RuntimeError("this context cannot spawn runs (no run service)")
        _storable(f"ctx.spawn({workflow!r})", limits.check_json, "input", input,
                 limits.MAX_INPUT_BYTES)
        runs = self._runs
        child_id = str(uuid.uuid5(uuid.NAMESPACE_URL,
                                  f"runplane:{self.run_id}:{self._spawn_epoch}:{self._next_index}"))

        async def start() -> dict[str, str]:
            try:
                run = await runs.spawn(self.lease, self.root_run_id, workflow, input,
                                       child_id=child_id, detached=detached)
            except STORE_FAULTS as exc:  # not the step's failure: stop the attempt
                raise self.store_failed("spawn", exc) from exc
            if run is None:
                raise SpawnRefused(f"run {self.run_id} no longer holds its lease")
            return {"run_id": run.run_id}

        self.spawned_attached |= not detached
        started = await self.step(f"spawn:{workflow}", start)
        return ChildHandle(started["run_id"], runs, self)

    @property
    def store(self) -> OwnersStore:
        """The long-term memory store (LangGraph's ``BaseStore``) of the run's owner, as a
        graph's nodes get it: ``await ctx.store.aput(("notes",), "k", {"text": "..."})``.
        Its writes are not steps: a retried attempt writes again (an item's put replaces)."""
        if self._memory is None:
            if self._runs is None:
                raise RuntimeError("this context has no store (no run service)")
            from runplane.memory import OwnersStore

            caller = None if self.owner is None else Caller(self.owner)
            self._memory = OwnersStore(self._runs, caller, asyncio.get_running_loop())
        return self._memory

    async def emit(self, mode: str, data: Any) -> None:
        """Append an event named ``mode`` to the run's log (``values`` also sets thread values).

        While a resumed run replays its completed steps, emits are skipped: they
        were written on the earlier attempt. Emits after the last completed step
        are written again (at least once: the earlier attempt may have stopped
        before them). ``data`` no store could keep raises UnstorableValue here.
        """
        if not isinstance(mode, str) or not mode or mode.startswith(RESERVED_PREFIXES):
            raise ValueError(
                f"invalid emit mode {mode!r}: a non-empty name not starting with "
                f"{', '.join(RESERVED_PREFIXES)} (those are lifecycle events)"
            )
        call = f"ctx.emit({mode!r})"
        _storable(call, limits.check_id, "mode", mode)
        _storable(call, limits.check_result, "data", data)  # on replay too: the same outcome
        if self.replaying:
            return
        self._raise_if_stopped()
        await self._fenced("event", self._store.append_event(
            self.run_id, mode, data, self._clock.now(), lease=self.lease))

    @staticmethod
    async def _call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if inspect.iscoroutinefunction(fn):
            return await fn(*args, **kwargs)
        result = await asyncio.to_thread(fn, *args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    def _raise_if_stopped(self) -> None:
        if self.stop_reason is not None:
            raise asyncio.CancelledError(f"run {self.run_id} stopped: {self.stop_reason}")

    def store_failed(self, what: str, exc: BaseException) -> StoreFailed:
        """The store failed a write (or read) of this run: stop the attempt, whatever the
        workflow does with the exception, and let the worker hand the run back."""
        if self.stop_reason is None:
            self.stop_reason = "store_unavailable"
        log.warning("run %s: %s failed, the store did not answer (%s: %s)",
                    self.run_id, what, type(exc).__name__, exc)
        return StoreFailed(f"run {self.run_id}: {what} failed: {exc}")

    async def fenced_write(self, kind: str, write: Awaitable[bool], *, logs: bool = False
                           ) -> None:
        """A fenced write of this run made outside the run's own task, which may never
        await it: LangGraph writes checkpoints in tasks of its own and hears of their
        failure only when the graph ends. A refusal (or the store failing the write)
        raises as in the run's task and also cancels the run's task, once, as the worker's
        stop does; the worker then reports the run as for a refused step write. ``logs``:
        the write appends to the run's event log (its streams are woken)."""
        try:
            await self._fenced(kind, write, logs=logs)
        except (FenceRefused, StoreFailed):
            task = self.task
            if task is not None and task is not asyncio.current_task() and not task.done() \
                    and not task.cancelling():
                task.cancel()
            raise

    async def _fenced(self, kind: str, write: Awaitable[bool], *, logs: bool = True) -> None:
        try:
            if await uncancellable(write):
                if logs and self._logged is not None:
                    self._logged(self.run_id)
                return
            metrics.REFUSED_WRITES.labels(kind).inc()
            reason = await classify_refusal(self._store, self.lease)
        except STORE_FAULTS as exc:  # maybe stored, maybe not: the next attempt replays
            raise self.store_failed(f"{kind} write", exc) from exc
        if reason is None:
            raise RuntimeError(
                f"run {self.run_id}: {kind} write refused while this worker holds the run"
            )
        if self.stop_reason is None:
            self.stop_reason = reason
        log.info("run %s: %s write refused (%s)", self.run_id, kind, self.stop_reason)
        raise FenceRefused(f"run {self.run_id} {self.stop_reason}")
