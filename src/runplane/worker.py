"""The worker: claims pending runs, keeps their leases, runs workflows, stops them when told.

Every decision about a run's state is a fenced store write; what the worker
keeps in memory (tasks, leases) is only what it needs to act on its own runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runplane import limits, metrics
from runplane.clock import Clock
from runplane.config import Settings
from runplane.context import Context, Paused, StopReason, classify_refusal, uncancellable
from runplane.errors import STORE_FAULTS, InvalidInput, StoreUnavailable
from runplane.hooks import Hooks
from runplane.lifecycle import EventName
from runplane.models import ClaimedRun, Lease, RunStatus
from runplane.notifier import LocalNotifier, backoff, wait_event
from runplane.store.base import Store

if TYPE_CHECKING:
    from runplane.service import RunService

log = logging.getLogger("runplane.worker")

#: ``async def fn(ctx, input) -> output``: a coroutine function, as its run is a task.
Workflow = Callable[[Context, Any], Coroutine[Any, Any, Any]]


@dataclass(slots=True)
class _Held:
    ctx: Context
    task: asyncio.Task[Any] | None = None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


#: The most of a traceback kept with a run: its end, where the exception was raised.
TRACEBACK_LIMIT = 16 * 1024


def format_traceback(task: asyncio.Task[Any]) -> str | None:
    """Where a finished ``task`` raised (for a cancelled one: where it was waiting when
    cancelled), at most :data:`TRACEBACK_LIMIT` characters; None if it returned."""
    try:
        task.result()
        return None
    except BaseException as exc:  # the workflow's own, re-raised here
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    if len(text) <= TRACEBACK_LIMIT:
        return text
    kept = text[-TRACEBACK_LIMIT:]
    kept = kept[kept.find("\n") + 1:]  # from a whole line on
    return f"[traceback cut: its first {len(text) - len(kept)} characters are not kept]\n{kept}"


class Worker:
    def __init__(
        self,
        store: Store,
        workflows: dict[str, Workflow],
        settings: Settings,
        *,
        clock: Clock,
        notifier: LocalNotifier,
        hooks: Hooks,
        runs: RunService | None = None,
    ) -> None:
        self._runs = runs
        self._store = store
        self._workflows = workflows
        self._settings = settings
        self._clock = clock
        self._notifier = notifier
        self._hooks = hooks
        self._held: dict[str, _Held] = {}
        self._supervisors: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        #: another process committed: look for lost leases now (see LocalNotifier.changed)
        self._changed = asyncio.Event()
        self._claim_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._watch_task: asyncio.Task[None] | None = None
        #: the webhook deliveries under way: a task of their own, so that a slow receiver
        #: holds up neither heartbeats nor cancels
        self._delivering: asyncio.Task[None] | None = None

    #: The worker stopped claiming and asked its runs to drain (it is shutting down).
    draining = False

    @property
    def worker_id(self) -> str:
        return self._settings.worker_id

    @property
    def active_runs(self) -> list[str]:
        return list(self._held)

    async def start(self) -> None:
        self._notifier.subscribe(on_pending=self._wake.set, on_cancel=self._on_cancel,
                                 on_change=self._on_change)
        self._claim_task = asyncio.create_task(self._claim_loop(), name="runplane-claim")
        self._watch_task = asyncio.create_task(self._watch_loop(), name="runplane-watch")

    async def stop(self, grace: float) -> None:
        """Stop claiming; give running runs ``grace`` seconds, then hand the rest back."""
        if self._claim_task is None:
            return
        self._stopping = True  # a claim in flight completes: its runs are handed back below
        self._wake.set()
        await self._claim_task
        for handle in list(self._held.values()):
            handle.ctx.drain()  # who can stop at a clean point before the grace ends, may
        self.draining = True
        if self._supervisors and grace > 0:
            await asyncio.wait(set(self._supervisors), timeout=grace)
        for handle in list(self._held.values()):
            self._stop(handle, "shutdown")
        if self._supervisors:
            await asyncio.wait(set(self._supervisors))
        assert self._watch_task is not None
        for task in (self._watch_task, self._delivering):
            if task is not None:  # a delivery cut short is attempted again (at least once)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._claim_task = None

    # --- claiming ----------------------------------------------------------
    async def _claim_loop(self) -> None:
        names = sorted(self._workflows)
        s = self._settings
        failures = 0
        while not self._stopping:
            self._wake.clear()
            free = s.concurrency - len(self._held)
            if free > 0 and names:
                try:
                    # a run whose earlier attempt still unwinds here waits for it to end
                    claimed = await self._store.claim_runs(
                        s.worker_id, names, free, s.lease_ttl, self._clock.now(),
                        exclude=list(self._held),
                    )
                    failures = 0
                except STORE_FAULTS as exc:
                    # A claim whose answer was lost may have committed: those runs stay
                    # ``running`` under this worker's name until their lease expires.
                    failures += 1
                    log.warning("claiming runs failed, the store did not answer (%s); "
                                "retrying", exc)
                    claimed = []
                    await asyncio.sleep(backoff(s.poll_interval, failures))
                except Exception:
                    log.exception("claiming runs failed; retrying")
                    claimed = []
                for item in claimed:
                    if self._stopping:  # the claim was in flight when stop() began
                        with contextlib.suppress(*STORE_FAULTS):  # else its lease expires
                            await self._hand_back(item.lease, None, "worker_shutdown")
                    else:
                        self._spawn(item)
            await wait_event(self._wake, s.poll_interval)

    def _spawn(self, claimed: ClaimedRun) -> None:
        handle = _Held(Context(claimed, store=self._store, clock=self._clock, hooks=self._hooks,
                               logged=self._notifier.run_logged, runs=self._runs))
        self._held[claimed.run.run_id] = handle
        self._notifier.run_changed(claimed.run.run_id)  # pending -> running, run:start logged
        supervisor = asyncio.create_task(self._supervise(claimed, handle))
        self._supervisors.add(supervisor)
        supervisor.add_done_callback(self._supervisors.discard)

    # --- noticing cancels, heartbeats, crash recovery -------------------------
    def _on_cancel(self, run_id: str, generation: int | None) -> None:
        handle = self._held.get(run_id)
        # A late signal about an earlier attempt must not stop the attempt running now.
        if handle is not None and handle.ctx.lease.generation == generation:
            self._stop(handle, "cancelled")

    def _on_change(self) -> None:
        """Another process committed something: a run may be pending, a lease lost."""
        self._wake.set()
        self._changed.set()

    def _stop(self, handle: _Held, reason: StopReason) -> None:
        """Cancel the run's task once: a second cancel would interrupt its cleanup code."""
        if handle.ctx.stop_reason is not None:
            return
        handle.ctx.stop_reason = reason
        if handle.task is not None and not handle.task.done():
            handle.task.cancel()

    async def _stop_lost(self, run_ids: list[str]) -> None:
        """The store says these runs are no longer ours: tell cancel from lease loss."""
        for run_id in run_ids:
            handle = self._held.get(run_id)
            if handle is None or handle.ctx.stop_reason is not None:
                continue
            reason = await classify_refusal(self._store, handle.ctx.lease)
            if reason is not None:
                self._stop(handle, reason)

    def _live_leases(self) -> list[Lease]:
        """Leases still ours: runs stopping for a timeout, a shutdown or a store fault keep
        theirs (and their heartbeat) until the task is over and the run handed back."""
        return [
            h.ctx.lease
            for h in self._held.values()
            if h.ctx.stop_reason in (None, "timeout", "shutdown", "store_unavailable")
        ]

    async def _watch_loop(self) -> None:
        """Periodic duties: notice runs no longer ours (cancel written by another process:
        at once when the store says another process committed), renew leases, reap runs of
        dead workers, fire the crons and deliver the webhooks that are due."""
        s = self._settings
        duties = [
            (s.poll_interval, self._poll_lost),
            (s.heartbeat_interval, self._heartbeat),
            (s.reap_interval, self.reap),
            (s.cron_interval, self.fire_crons),
            (s.webhook_interval, self.deliver_webhooks),
        ]
        due = [time.monotonic() + interval for interval, _ in duties]
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(due) - time.monotonic())):
                    await self._changed.wait()
            if self._changed.is_set():
                self._changed.clear()
                due[0] = time.monotonic()
            for k, (interval, duty) in enumerate(duties):
                if time.monotonic() < due[k]:
                    continue
                due[k] = time.monotonic() + interval
                try:
                    await duty()
                except STORE_FAULTS as exc:
                    log.warning("worker duty %s failed, the store did not answer (%s); "
                                "retrying", duty.__name__, exc)
                except Exception:
                    log.exception("worker duty %s failed; retrying", duty.__name__)

    async def _poll_lost(self) -> None:
        leases = self._live_leases()
        if leases:
            await self._stop_lost(await self._store.lost_leases(leases))

    async def _heartbeat(self) -> None:
        leases = self._live_leases()
        if leases:
            refused = await self._store.renew_leases(leases, self._settings.lease_ttl,
                                                     self._clock.now())
            metrics.REFUSED_WRITES.labels("heartbeat").inc(len(refused))
            await self._stop_lost(refused)

    async def reap(self) -> None:
        """Re-queue runs whose worker stopped renewing its lease; end orphaned children;
        sweep threads past their time to live."""
        reaped = await self._store.reap_expired(self._clock.now())
        for item in reaped:
            log.warning("run %s: lease expired, now %s", item.run_id, item.status)
            self._notifier.run_changed(item.run_id)
        if any(item.status is RunStatus.PENDING for item in reaped):
            self._wake.set()
        if self._runs is not None:
            await self._runs.end_orphans()
            for thread_id in await self._runs.expire_threads():
                log.info("thread %s: swept, past its time to live", thread_id)
            if expired := await self._runs.expire_items():
                log.info("memory store: %d item(s) deleted, past their time to live", expired)

    async def fire_crons(self) -> None:
        """Create the runs of the crons that are due (every worker does: each time of a
        cron makes one run, whichever fires it)."""
        if self._runs is not None:
            for run in await self._runs.fire_crons():
                log.info("cron %s: run %s created", run.metadata.get("cron_id"), run.run_id)

    async def deliver_webhooks(self) -> None:
        """POST the ends of runs to their webhooks (every worker does; each delivery is
        taken by one for each attempt), in a task of their own: one batch at a time."""
        if self._runs is None or (self._delivering and not self._delivering.done()):
            return
        self._delivering = asyncio.create_task(self._deliver(self._runs),
                                               name="runplane-webhooks")

    @staticmethod
    async def _deliver(runs: RunService) -> None:
        try:
            await runs.deliver_webhooks()
        except STORE_FAULTS as exc:
            log.warning("webhook deliveries failed, the store did not answer (%s); "
                        "retrying", exc)
        except Exception:
            log.exception("webhook deliveries failed; retrying")

    # --- running one run ---------------------------------------------------
    async def _supervise(self, claimed: ClaimedRun, handle: _Held) -> None:
        run = claimed.run
        ctx = handle.ctx
        try:
            if self._hooks.after_claim is not None:
                await uncancellable(self._hooks.after_claim(run.run_id))
            workflow = self._workflows[run.workflow]
            handle.task = ctx.task = asyncio.create_task(workflow(ctx, run.input),
                                                         name=f"run-{run.run_id}")
            if ctx.stop_reason is not None:
                handle.task.cancel()
            timeout = None
            if run.deadline_at is not None:
                timeout = max(0.0, run.deadline_at.timestamp() - self._clock.now())
            done, _ = await asyncio.wait({handle.task}, timeout=timeout)
            if not done:
                self._stop(handle, "timeout")
                await asyncio.wait({handle.task})
            await self._settle(handle, run.timeout)
        except STORE_FAULTS as exc:
            log.warning("run %s: the store did not answer while settling the run (%s); its "
                        "lease, if still held, expires and the reaper takes it from there",
                        run.run_id, exc)
        except Exception:
            log.exception("run %s: worker failed while settling the run", run.run_id)
        finally:
            del self._held[run.run_id]
            self._wake.set()
            self._notifier.run_changed(run.run_id)

    async def _settle(self, handle: _Held, timeout: float | None) -> None:
        ctx, task = handle.ctx, handle.task
        assert task is not None
        if ctx.stop_reason is not None and not task.cancelled() and (exc := task.exception()):
            log.warning("run %s: workflow raised while stopping (%s): %s", ctx.run_id,
                        ctx.stop_reason, _describe(exc))
        if ctx.stop_reason in ("cancelled", "lease_lost"):
            await self._abandon(ctx, ctx.stop_reason)
            return
        if ctx.stop_reason == "shutdown":
            await self._give_back(ctx, "worker_shutdown")
            return
        if ctx.stop_reason == "store_unavailable" or (
            ctx.stop_reason is None and not task.cancelled()
            and isinstance(task.exception(), STORE_FAULTS)
        ):  # the store failed the run, not the workflow: never the run's outcome
            await self._give_back(ctx, "store_unavailable")
            return
        output: Any = None
        error: str | None = None
        trace = format_traceback(task)
        if ctx.stop_reason == "timeout":
            status, error = RunStatus.TIMEOUT, f"run exceeded its timeout of {timeout}s"
            trace = f"{error}; the workflow was stopped here:\n{trace or '(it returned)'}"
        elif task.cancelled():
            status, error = RunStatus.ERROR, "the workflow cancelled itself (CancelledError)"
        elif isinstance(paused := task.exception(), Paused):
            status, output = RunStatus.SUCCESS, paused.output
        elif (exc := task.exception()) is not None:
            status, error = RunStatus.ERROR, _describe(exc)
        else:
            status, output = RunStatus.SUCCESS, task.result()
            try:
                limits.check_result("output", output)
            except InvalidInput as exc:
                status, output = RunStatus.ERROR, None
                error = f"the workflow's output cannot be stored: {exc}"
        if status is RunStatus.SUCCESS:
            trace = None
        else:
            # An exception's text may hold a NUL: written as is, the store would refuse the
            # write, leaving the run to its lease's expiry and a rerun of the workflow.
            error = error and limits.storable_text(error)
            trace = trace and limits.storable_text(trace)
        if self._hooks.before_finish is not None:
            await self._hooks.before_finish(ctx.run_id, status)
        try:
            finished = await self._store.finish_run(
                ctx.lease, status, output, error, self._clock.now(), trace,
                ctx.thread_interrupts if status is RunStatus.SUCCESS else None)
        except STORE_FAULTS as exc:  # maybe stored: a refused hand-back then finds it ended
            ctx.store_failed("finish write", exc)
            if await self._hand_back(ctx.lease, ctx.in_flight, "store_unavailable"):
                return
            finished = await self._finished_by(ctx.lease, status)
            if not finished:
                await self._abandon(ctx, await self._classify(ctx))
                return
        except Exception as exc:
            # Not a fault: the store refused the outcome itself (a value past the checks of
            # runplane.limits). Left unwritten, the run would wait for its lease to expire
            # and run again, to the same end: it ends ``error`` saying so instead.
            status, error = RunStatus.ERROR, limits.storable_text(
                f"the store refused the run's {status.value} outcome: {_describe(exc)}")
            finished = await self._store.finish_run(
                ctx.lease, status, None, error, self._clock.now(), None)
        if finished:
            metrics.RUNS_FINISHED.labels(status.value).inc()
            if error is not None:  # one line: the traceback is kept with the run
                log.warning("run %s (%s, attempt %d) ended %s: %s", ctx.run_id,
                            ctx.assistant_id, ctx.attempt, status.value,
                            " ".join(error.split())[:500])
            if ctx.spawned_attached and self._runs is not None:
                await self._runs.end_children(ctx.run_id, status)
            return
        metrics.REFUSED_WRITES.labels("finish").inc()
        await self._abandon(ctx, await self._classify(ctx))

    async def _finished_by(self, lease: Lease, status: RunStatus) -> bool:
        """Did this lease's own finish write land (its answer lost with the connection)?
        The run then ended ``status`` under this generation, and no cancel revoked it."""
        run = await self._store.get_run(lease.run_id)
        return run is not None and run.status is status \
            and run.lease_generation == lease.generation \
            and run.cancelled_generation != lease.generation

    async def _classify(self, ctx: Context) -> StopReason:
        return await classify_refusal(self._store, ctx.lease) or "lease_lost"

    async def _abandon(self, ctx: Context, reason: StopReason) -> None:
        """The run is no longer ours to write: record why the in-flight step was dropped."""
        ctx.stop_reason = reason
        now = self._clock.now()
        if reason == "cancelled":
            if ctx.in_flight is not None:
                index, name = ctx.in_flight
                await self._store.record_step_cancel(ctx.lease, index, name, "cancelled", now)
            await self._store.release_lease(ctx.lease)
            run = await self._store.get_run(ctx.run_id)
            if run is not None and run.cancel_requested_at is not None:
                metrics.CANCEL_LATENCY.observe(max(0.0, now - run.cancel_requested_at.timestamp()))
            return
        metrics.LEASE_LOST.inc()
        log.warning("run %s: lease generation %s lost; work discarded", ctx.run_id,
                    ctx.lease.generation)
        await self._store.append_event(ctx.run_id, EventName.LEASE_LOST, {
            "worker": self.worker_id,
            "generation": ctx.lease.generation,
            "step": None if ctx.in_flight is None else
                    {"index": ctx.in_flight[0], "name": ctx.in_flight[1]},
        }, now, lease=None)

    async def _give_back(self, ctx: Context, reason: str) -> None:
        if not await self._hand_back(ctx.lease, ctx.in_flight, reason):
            await self._abandon(ctx, await self._classify(ctx))

    async def _hand_back(
        self, lease: Lease, in_flight: tuple[int, str] | None, reason: str
    ) -> bool:
        """Re-queue a run this worker gives up (fenced): it resumes after its last completed
        step, on any worker. False: the fence refused it (cancelled, or no longer ours).

        A hand-back does not count against ``max_attempts``: a worker shutting down, or a
        store that failed a write (a flapping database), is not the run's fault, and must
        not end it ``error``. So while the store does not answer, the hand-back is tried
        again (backing off) for up to a lease TTL. If it still fails, the worker lets go
        of the run (no more heartbeats): its lease expires and a reaper re-queues it; that
        one does count the attempt, as the reaper cannot tell a store outage from a worker
        that died. So only outages longer than the TTL (or claims whose answer was lost,
        which are reaped too) on every attempt can exhaust them.
        A write that failed may have been stored after all: the next attempt then replays
        that step instead of running it again.
        """
        deadline = time.monotonic() + self._settings.lease_ttl
        failures = 0
        while True:
            try:
                return await self._store.requeue_run(lease, reason, self._clock.now(),
                                                     in_flight=in_flight)
            except StoreUnavailable:
                failures += 1
                if time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(backoff(0.05, failures))
