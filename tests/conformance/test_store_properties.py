"""The cancellation contract as properties of the store, under random interleavings.

A hypothesis state machine drives one real store through random sequences of the
protocol's operations: runs on two threads and thread-less runs, several workers that
claim runs and keep every lease they ever got (stale ones included), cancels, resumes,
the reaper with a fake clock, renewals and releases. The machine reads the whole store
back after every operation and checks two things:

* the operation did exactly what the protocol says, computed from the state just before
  it (a refused fenced write changes nothing at all, a claim takes exactly the runs it
  should, a cancel bumps the fence and writes one event, ...);
* the global invariants of the contract hold (one running run per thread, claims in
  creation order, terminal statuses never flip, fences only grow, steps
  ``0..step_index-1``, gap-less append-only event logs whose lifecycle events replay to
  the current status, one ``run:cancel`` per cancel).

A small model keeps what the store does not show: how many cancels each run had, every
lease each worker was given, and for rollback the values each claim saved and which run
wrote each thread's current values (a rollback undoes only the run's own writes).

Two rules chain several operations (each checked as it happens) into the interleavings
that matter for rollback but that random choice reaches too rarely. The run is
derandomized, so CI sees the same sequences every time; the budget keeps it to seconds.
Everything goes through the :class:`Store` protocol, so another back end only needs an
entry in ``STORE_FACTORIES``.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from runplane.errors import RunConflict, RunNotFound, ThreadBusy
from runplane.lifecycle import FINISH_EVENTS, TRANSITIONS
from runplane.models import (
    FINISHED,
    CancelAction,
    CancelRequest,
    Event,
    Lease,
    MultitaskStrategy,
    NewRun,
    Run,
    RunStatus,
    Step,
    Thread,
    ThreadStatus,
    to_datetime,
)
from runplane.store import Store, open_store
from runplane.store.base import Cancelled

from support import cancel_one
from support.databases import POSTGRES_URL

T = TypeVar("T")

T0 = 1_800_000_000.0
LEASE_TTL = 10.0
THREADS = ("t0", "t1")
OWNERS = ("w1", "w2", "w3")
MAX_RUNS = 7

PENDING, RUNNING, INTERRUPTED = RunStatus.PENDING, RunStatus.RUNNING, RunStatus.INTERRUPTED
SUCCESS, ERROR, TIMEOUT = RunStatus.SUCCESS, RunStatus.ERROR, RunStatus.TIMEOUT

#: The status changes each operation may make; anything else is a contract violation.
#: No entry moves a terminal status to another terminal status.
ALLOWED: dict[str, set[tuple[RunStatus, RunStatus]]] = {
    "init": set(),
    "create_run": {(PENDING, INTERRUPTED), (RUNNING, INTERRUPTED)},
    "claim_runs": {(PENDING, RUNNING)},
    "complete_step": set(),
    "append_event": set(),
    "finish_run": {(RUNNING, SUCCESS), (RUNNING, ERROR), (RUNNING, TIMEOUT)},
    "cancel_run": {(PENDING, INTERRUPTED), (RUNNING, INTERRUPTED)},
    "resume_run": {(INTERRUPTED, PENDING)},
    "reap_expired": {(RUNNING, PENDING), (RUNNING, ERROR), (RUNNING, TIMEOUT)},
    "renew_leases": set(),
    "release_lease": set(),
    "requeue_run": {(RUNNING, PENDING)},
}
#: Every status change any operation may make (lifecycle events replay through these).
ANY_TRANSITION = set().union(*ALLOWED.values())

ON_ACTIVE: list[Any] = [
    "enqueue",
    "reject",
    CancelRequest(CancelAction.INTERRUPT, "superseded", "multitask"),
    CancelRequest(CancelAction.ROLLBACK, "superseded", "multitask"),
]

_ABSENT = object()

#: How a rule picks the lease it writes with (see ``StoreMachine.choose``).
LEASE_CHOICE = st.sampled_from(["remembered", "live", "live", "superseded", "forged"])


# --------------------------------------------------------------------------- #
# store back ends                                                              #
# --------------------------------------------------------------------------- #


def _sqlite_database() -> tuple[str, Callable[[], None]]:
    folder = tempfile.mkdtemp(prefix="runplane-props-")
    return f"sqlite:///{folder}/runplane.db", lambda: shutil.rmtree(folder, ignore_errors=True)


def _postgres_database() -> tuple[str, Callable[[], None]]:
    schema = f"rp_props_{uuid.uuid4().hex[:12]}"

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    def dispose() -> None:
        with ThreadPoolExecutor(1) as pool:  # the caller may be inside an event loop
            pool.submit(asyncio.run, drop()).result()

    return f"{POSTGRES_URL}?schema={schema}", dispose


#: One factory per back end: a fresh, empty database URL and how to dispose of it.
STORE_FACTORIES = [
    pytest.param(_sqlite_database, id="sqlite"),
    pytest.param(_postgres_database, id="postgres"),
]


# --------------------------------------------------------------------------- #
# what the machine reads back after every operation                           #
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Snapshot:
    order: list[str]  # run ids in creation order
    runs: dict[str, Run]
    steps: dict[str, list[Step]]
    events: dict[str, list[Event]]
    marks: dict[str, tuple[Any, ...]]
    threads: dict[str, Thread]

    def thread_runs(self, thread_id: str) -> list[Run]:
        return [self.runs[i] for i in self.order if self.runs[i].thread_id == thread_id]


async def read_snapshot(store: Store) -> Snapshot:
    runs = await store.list_runs(thread_id=None, status=None, limit=1000, offset=0)
    order = [r.run_id for r in reversed(runs)]  # list_runs answers newest first
    steps, events, marks, threads = await asyncio.gather(
        asyncio.gather(*(store.get_steps(i) for i in order)),
        asyncio.gather(*(store.get_events(i) for i in order)),
        store.run_marks(order),
        asyncio.gather(*(store.get_thread(t) for t in THREADS)),
    )
    return Snapshot(
        order=order,
        runs={r.run_id: r for r in runs},
        steps=dict(zip(order, steps, strict=True)),
        events=dict(zip(order, events, strict=True)),
        marks=marks,
        threads={t.thread_id: t for t in threads},
    )


def new_run(run_id: str, thread_id: str | None, workflow: str, max_attempts: int,
            timeout: float | None) -> NewRun:
    return NewRun(run_id=run_id, thread_id=thread_id, assistant_id=workflow,
                  input={"i": run_id}, metadata={}, multitask_strategy=MultitaskStrategy.ENQUEUE,
                  max_attempts=max_attempts, timeout=timeout, root_run_id=run_id)


def ts(value: Any) -> float | None:
    return None if value is None else value.timestamp()


# --------------------------------------------------------------------------- #
# the machine                                                                  #
# --------------------------------------------------------------------------- #


class StoreMachine(RuleBasedStateMachine):
    leases = Bundle("leases")  # (owner, Lease) as a worker remembers it; may be stale

    def __init__(self, database: Callable[[], tuple[str, Callable[[], None]]]) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        url, self._dispose = database()
        self.store = open_store(url)
        self.now = T0
        self.order: list[str] = []  # run ids in the order create_run accepted them
        self.cancels: Counter[str] = Counter()  # "cancelled" outcomes per run
        self.held: dict[str, list[Lease]] = {owner: [] for owner in OWNERS}
        # rollback model: the thread values a run's claim saved, and which run's write
        # produced each thread's current values (a rollback only undoes its own writes)
        self.pre_run: dict[str, Any] = {}
        self.writer: dict[str, str | None] = dict.fromkeys(THREADS)
        self.op = "init"
        self.prev: Snapshot | None = None
        try:
            self.call(self.store.open)
            for thread_id in THREADS:
                self.call(self.store.create_thread, thread_id, {}, self.now, if_exists="raise")
            self.snap = self.call(read_snapshot, self.store)
        except BaseException:
            self.teardown()
            raise

    def teardown(self) -> None:
        try:
            self.call(self.store.close)
            self.call(self.loop.shutdown_default_executor)
        finally:
            self.loop.close()
            self._dispose()

    # --- plumbing -----------------------------------------------------------
    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``await fn(*args, **kwargs)`` on the machine's loop. ``fn`` is called inside the
        running loop: some store methods answer a future they create on it."""

        async def run() -> T:
            return await fn(*args, **kwargs)

        return self.loop.run_until_complete(run())

    def refresh(self, op: str) -> tuple[Snapshot, Snapshot]:
        """Read the store back after ``op``; answers (before, after)."""
        before = self.snap
        self.prev, self.op = before, op
        self.snap = self.call(read_snapshot, self.store)
        return before, self.snap

    def pick(self, index: int, prefer: RunStatus | str | None = None) -> str:
        """One of the created runs, or sometimes an id the store never saw. ``prefer``: a
        run in that status, or (``"writer"``) an active run whose writes are its thread's
        current values, if there is one."""
        ids = [*self.order, "ghost"]
        if prefer == "writer":
            preferred = [w for w in self.writer.values()
                         if w is not None and self.snap.runs[w].status.active]
        else:
            preferred = [i for i in self.order if self.snap.runs[i].status is prefer]
        return (preferred or ids)[index % len(preferred or ids)]

    def assert_only(self, before: Snapshot, after: Snapshot, runs: set[str],
                    threads: Iterable[str] = ()) -> None:
        """Nothing but ``runs`` and the values of ``threads`` changed."""
        assert set(after.order) - set(before.order) <= runs
        for run_id in before.order:
            if run_id in runs:
                continue
            assert after.runs[run_id] == before.runs[run_id], run_id
            assert after.steps[run_id] == before.steps[run_id], run_id
            assert after.events[run_id] == before.events[run_id], run_id
            assert after.marks[run_id] == before.marks[run_id], run_id
        for thread_id in THREADS:
            if thread_id not in threads:
                assert after.threads[thread_id].values == before.threads[thread_id].values

    def assert_new_events(self, before: Snapshot, after: Snapshot, run_id: str,
                          *expected: tuple[str, dict[str, Any]]) -> None:
        """The write appended exactly these events (each carrying at least these data)."""
        old, new = before.events.get(run_id, []), after.events[run_id]
        assert new[: len(old)] == old, "the event log is append-only"
        added = new[len(old):]
        assert [e.event for e in added] == [name for name, _ in expected]
        for event, (_, data) in zip(added, expected, strict=True):
            assert {k: event.data.get(k, _ABSENT) for k in data} == data, event
            assert event.created_at == to_datetime(self.now)

    def choose(self, held: tuple[str, Lease], how: str) -> Lease:
        """The lease a worker writes with, picked ``how``:

        * ``remembered``: the one drawn from the bundle, live or stale;
        * ``live``: one whose fence still holds (a worker that has not lost its run);
        * ``superseded``: an older lease of a run that is running under a newer one (a
          worker whose run was reaped or requeued and claimed again: the racy case);
        * ``forged``: the next generation, which nobody has been given.
        """
        lease = held[1]
        remembered = [x for owner in OWNERS for x in self.held[owner]]
        if how == "live":
            live = [x for x in remembered if self.fence_holds(self.snap, x)]
            same = [x for x in live if x.run_id == lease.run_id]
            return (same or live or [lease])[0]
        if how == "superseded":
            running = [x for x in remembered if self.snap.runs[x.run_id].status is RUNNING]
            stale = [x for x in running if not self.fence_holds(self.snap, x)]
            if stale:
                return stale[0]
            if running:  # the generation before the live one: a previous holder's
                return Lease(running[0].run_id, running[0].generation - 1)
        if how == "forged":
            return Lease(lease.run_id, lease.generation + 1)
        return lease

    def fence_holds(self, before: Snapshot, lease: Lease) -> bool:
        run = before.runs[lease.run_id]
        return run.status is RUNNING and run.lease_generation == lease.generation

    def check_cancelled(self, before: Snapshot, after: Snapshot, run_id: str,
                        request: CancelRequest) -> None:
        """``run_id`` went from active to interrupted by ``request`` in the last write."""
        b, a = before.runs[run_id], after.runs[run_id]
        assert b.status.active
        assert a.status is INTERRUPTED
        assert a.lease_generation == b.lease_generation + 1, "a cancel bumps the fence"
        assert a.cancel_requested_at == to_datetime(self.now)
        assert a.ended_at == to_datetime(self.now)
        assert (a.cancel_reason, a.cancel_action, a.cancel_requested_by) == (
            request.reason, request.action, request.requested_by)
        assert a.lease_owner == b.lease_owner, "the holder's task may still be running"
        self.assert_new_events(before, after, run_id, ("run:cancel", {
            "action": request.action.value, "reason": request.reason,
            "requested_by": request.requested_by, "from_status": b.status.value,
        }))
        if request.action is CancelAction.ROLLBACK:
            assert a.step_index == 0 and after.steps[run_id] == []
        else:
            assert a.step_index == b.step_index
            assert after.steps[run_id] == before.steps[run_id]
        self.cancels[run_id] += 1

    def rolled_back(self, run_id: str, thread_id: str | None, values: Any) -> Any:
        """The thread's values after ``run_id`` was rolled back from ``values``: its saved
        snapshot while the values are still its own writes, else unchanged."""
        if thread_id is None or self.writer[thread_id] != run_id:
            return values
        self.writer[thread_id] = None
        return self.pre_run[run_id]

    def expected_claims(self, snap: Snapshot, workflows: tuple[str, ...], limit: int) -> list[str]:
        eligible = []
        for run_id in snap.order:
            run = snap.runs[run_id]
            if run.status is not PENDING or run.assistant_id not in workflows:
                continue
            if run.thread_id is not None:
                same = snap.thread_runs(run.thread_id)
                older = same[: same.index(run)]
                if any(x.status is RUNNING for x in same):
                    continue
                if any(x.status is PENDING for x in older):
                    continue
            eligible.append(run_id)
        return eligible[:limit]

    # --- service side ---------------------------------------------------------
    @precondition(lambda self: len(self.order) < MAX_RUNS)
    @rule(
        thread_id=st.sampled_from([*THREADS, None]),
        workflow=st.sampled_from(["wf", "wf", "other"]),
        on_active=st.sampled_from(ON_ACTIVE),
        max_attempts=st.integers(1, 3),
        timeout=st.sampled_from([None, 15.0]),
    )
    def create_run(self, thread_id: str | None, workflow: str, on_active: Any,
                   max_attempts: int, timeout: float | None) -> None:
        run_id = f"r{len(self.order)}"  # a rejected creation leaves the id free again
        active = [] if thread_id is None else [
            r.run_id for r in self.snap.thread_runs(thread_id) if r.status.active]
        try:
            created = self.call(
                self.store.create_run, new_run(run_id, thread_id, workflow, max_attempts, timeout),
                self.now, on_active=on_active)
        except ThreadBusy as busy:
            before, after = self.refresh("create_run")
            assert on_active == "reject" and active
            assert busy.active_run_ids == active
            assert after == before, "a rejected creation writes nothing"
            return
        before, after = self.refresh("create_run")
        assert not (on_active == "reject" and active), "reject must refuse a busy thread"
        self.order.append(run_id)
        run = after.runs[run_id]
        assert created.run == run
        assert (run.status, run.thread_id, run.assistant_id, run.lease_generation,
                run.step_index, run.attempt, run.lease_owner) == (
            PENDING, thread_id, workflow, 0, 0, 0, None)
        self.assert_new_events(before, after, run_id, (
            "run:created", {"assistant_id": workflow, "thread_id": thread_id}))
        changed = {run_id}
        values = before.threads[thread_id].values if thread_id else None
        if isinstance(on_active, CancelRequest):
            assert [r.run_id for r in created.cancelled] == active
            for victim in active:
                assert created.cancelled[active.index(victim)] == after.runs[victim]
                self.check_cancelled(before, after, victim, on_active)
                if on_active.action is CancelAction.ROLLBACK:
                    values = self.rolled_back(victim, thread_id, values)
            changed |= set(active)
        else:
            assert created.cancelled == []
        if thread_id is not None:
            assert after.threads[thread_id].values == values
        self.assert_only(before, after, changed, {thread_id} if thread_id else set())

    @precondition(lambda self: self.order)
    @rule(run=st.integers(0, MAX_RUNS), prefer=st.sampled_from([None, RUNNING, "writer"]),
          action=st.sampled_from(CancelAction), reason=st.sampled_from(["stop", "again"]))
    def cancel_run(self, run: int, prefer: RunStatus | str | None, action: CancelAction,
                   reason: str) -> None:
        run_id = self.pick(run, prefer)
        request = CancelRequest(action, reason, "tester")
        result: Cancelled | None = self.call(cancel_one, self.store, run_id, request, self.now)
        before, after = self.refresh("cancel_run")
        if run_id not in before.runs:
            assert result is None and after == before
            return
        status = before.runs[run_id].status
        assert result is not None
        if status.active:
            assert result.outcome == "cancelled"
            assert result.run == after.runs[run_id]
            self.check_cancelled(before, after, run_id, request)
            thread_id = after.runs[run_id].thread_id
            if thread_id is not None:
                expected = before.threads[thread_id].values
                if action is CancelAction.ROLLBACK:
                    expected = self.rolled_back(run_id, thread_id, expected)
                assert after.threads[thread_id].values == expected
            self.assert_only(before, after, {run_id}, {thread_id} if thread_id else set())
        else:
            # idempotent for interrupted, a conflict for finished: nothing written either way
            expected = "already_interrupted" if status is INTERRUPTED else "conflict"
            assert status is INTERRUPTED or status in FINISHED
            assert result.outcome == expected
            assert result.run == before.runs[run_id]
            assert after == before

    @precondition(lambda self: self.order)
    @rule(run=st.integers(0, MAX_RUNS), prefer=st.sampled_from([None, INTERRUPTED]))
    def resume_run(self, run: int, prefer: RunStatus | None) -> None:
        run_id = self.pick(run, prefer)
        error: Exception | None = None
        resumed: Run | None = None
        try:
            resumed = self.call(self.store.resume_run, run_id, self.now)
        except (RunNotFound, RunConflict) as exc:
            error = exc
        before, after = self.refresh("resume_run")
        if run_id not in before.runs:
            assert isinstance(error, RunNotFound) and after == before
            return
        b = before.runs[run_id]
        if b.status is not INTERRUPTED:
            assert isinstance(error, RunConflict) and error.status == b.status.value
            assert after == before
            return
        assert error is None
        a = after.runs[run_id]
        assert resumed == a
        assert (a.status, a.attempt, a.lease_owner, a.lease_expires_at, a.ended_at,
                a.cancel_requested_at, a.cancel_reason, a.cancel_action) == (
            PENDING, 0, None, None, None, None, None, None)
        assert a.step_index == b.step_index and a.lease_generation == b.lease_generation
        assert after.steps[run_id] == before.steps[run_id], "resume keeps completed steps"
        self.assert_new_events(before, after, run_id,
                               ("run:resume", {"reason": "resumed", "step_index": b.step_index}))
        self.assert_only(before, after, {run_id})

    # --- worker side ------------------------------------------------------------
    @precondition(lambda self: any(r.status is PENDING for r in self.snap.runs.values()))
    @rule(target=leases, owner=st.sampled_from(OWNERS), limit=st.integers(1, 3),
          workflows=st.sampled_from([("wf",), ("wf", "other")]))
    def claim_runs(self, owner: str, limit: int, workflows: tuple[str, ...]) -> Any:
        expected = self.expected_claims(self.snap, workflows, limit)
        claimed = self.call(
            self.store.claim_runs, owner, list(workflows), limit, LEASE_TTL, self.now)
        before, after = self.refresh("claim_runs")
        assert [c.run.run_id for c in claimed] == expected
        for c in claimed:
            run_id = c.run.run_id
            b, a = before.runs[run_id], after.runs[run_id]
            assert c.run == a
            assert (a.status, a.lease_owner, a.lease_generation, a.attempt) == (
                RUNNING, owner, b.lease_generation + 1, b.attempt + 1)
            assert ts(a.lease_expires_at) == self.now + LEASE_TTL
            assert a.started_at == (b.started_at or to_datetime(self.now))
            first_deadline = None if a.timeout is None else to_datetime(self.now + a.timeout)
            assert a.deadline_at == (b.deadline_at or first_deadline)
            assert a.step_index == b.step_index
            assert c.steps == before.steps[run_id], "a claim hands over the completed steps"
            self.assert_new_events(before, after, run_id,
                                   ("run:start", {"attempt": a.attempt, "worker": owner}))
            # a claim saves the thread's values, unless they are still this run's own
            # writes from an earlier attempt (then its earlier snapshot stays)
            if a.thread_id is not None and self.writer[a.thread_id] != run_id:
                self.pre_run[run_id] = before.threads[a.thread_id].values
            self.held[owner].append(c.lease)
        self.assert_only(before, after, {c.run.run_id for c in claimed})
        return multiple(*((owner, c.lease) for c in claimed))

    @rule(held=leases, how=LEASE_CHOICE, offset=st.sampled_from([0, 0, 0, 1, -1]),
          result=st.integers(0, 9))
    def complete_step(self, held: tuple[str, Lease], how: str, offset: int, result: int) -> None:
        lease = self.choose(held, how)
        run_id = lease.run_id
        index = max(self.snap.runs[run_id].step_index + offset, 0)
        ok = self.call(self.store.complete_step, lease, index, f"s{index}", result, self.now)
        before, after = self.refresh("complete_step")
        b = before.runs[run_id]
        if not (self.fence_holds(before, lease) and index == b.step_index):
            assert not ok and after == before, "a refused step write changes nothing"
            return
        assert ok
        a = after.runs[run_id]
        assert a.step_index == b.step_index + 1
        assert a.lease_generation == b.lease_generation and a.status is RUNNING
        assert [(s.index, s.name, s.result) for s in after.steps[run_id]] == [
            *((s.index, s.name, s.result) for s in before.steps[run_id]),
            (index, f"s{index}", result)]
        self.assert_new_events(before, after, run_id, (
            "step:complete", {"name": f"s{index}", "index": index, "result": result}))
        self.assert_only(before, after, {run_id})

    @rule(held=leases, how=LEASE_CHOICE, event=st.sampled_from(["values", "progress"]),
          value=st.integers(0, 9))
    def append_event(self, held: tuple[str, Lease], how: str, event: str, value: int) -> None:
        lease = self.choose(held, how)
        run_id, data = lease.run_id, {"v": value}
        ok = self.call(self.store.append_event, run_id, event, data, self.now, lease=lease)
        before, after = self.refresh("append_event")
        if not self.fence_holds(before, lease):
            assert not ok and after == before, "a refused event write changes nothing"
            return
        assert ok
        b, a = before.runs[run_id], after.runs[run_id]
        assert (a.status, a.lease_generation, a.step_index, a.lease_owner) == (
            b.status, b.lease_generation, b.step_index, b.lease_owner)
        self.assert_new_events(before, after, run_id, (event, data))
        thread_id = a.thread_id
        if thread_id is not None:
            expected = data if event == "values" else before.threads[thread_id].values
            assert after.threads[thread_id].values == expected
            if event == "values":
                self.writer[thread_id] = run_id
        self.assert_only(before, after, {run_id}, {thread_id} if thread_id else set())

    @rule(held=leases, how=LEASE_CHOICE,
          status=st.sampled_from([SUCCESS, SUCCESS, ERROR, TIMEOUT]),
          output=st.sampled_from([None, {"out": 1}, {"out": 2}]))
    def finish_run(self, held: tuple[str, Lease], how: str, status: RunStatus,
                   output: Any) -> None:
        lease = self.choose(held, how)
        run_id = lease.run_id
        error = None if status is SUCCESS else f"{status.value}!"
        ok = self.call(self.store.finish_run, lease, status, output, error, self.now)
        before, after = self.refresh("finish_run")
        if not self.fence_holds(before, lease):
            assert not ok and after == before, "a refused completion changes nothing"
            return
        assert ok
        b, a = before.runs[run_id], after.runs[run_id]
        stored_output = output if status is SUCCESS else None
        assert (a.status, a.output, a.error, a.lease_owner, a.lease_expires_at) == (
            status, stored_output, error, None, None)
        assert a.ended_at == to_datetime(self.now)
        assert a.lease_generation == b.lease_generation and a.step_index == b.step_index
        assert after.steps[run_id] == before.steps[run_id]
        data = {"output": output} if status is SUCCESS else {"error": error}
        self.assert_new_events(before, after, run_id, (FINISH_EVENTS[status], data))
        thread_id = a.thread_id
        if thread_id is not None:
            expected = before.threads[thread_id].values
            if status is SUCCESS and output is not None:
                expected = output
                self.writer[thread_id] = run_id
            assert after.threads[thread_id].values == expected
        self.assert_only(before, after, {run_id}, {thread_id} if thread_id else set())

    @rule(held=leases, how=LEASE_CHOICE)
    def requeue_run(self, held: tuple[str, Lease], how: str) -> None:
        lease = self.choose(held, how)
        run_id = lease.run_id
        ok = self.call(self.store.requeue_run, lease, "shutdown", self.now)
        before, after = self.refresh("requeue_run")
        if not self.fence_holds(before, lease):
            assert not ok and after == before, "a refused requeue changes nothing"
            return
        assert ok
        b, a = before.runs[run_id], after.runs[run_id]
        assert (a.status, a.lease_owner, a.lease_expires_at, a.lease_generation, a.attempt) == (
            PENDING, None, None, b.lease_generation + 1, max(b.attempt - 1, 0))
        assert after.steps[run_id] == before.steps[run_id]
        self.assert_new_events(before, after, run_id, ("run:resume", {"reason": "shutdown"}))
        self.assert_only(before, after, {run_id})

    @precondition(lambda self: any(self.fence_holds(self.snap, x)
                                   for held in self.held.values() for x in held))
    @rule(owner=st.sampled_from(OWNERS), held=leases, how=LEASE_CHOICE)
    def renew_leases(self, owner: str, held: tuple[str, Lease], how: str) -> None:
        """A worker's heartbeat: every lease it remembers, and one more picked ``how``."""
        leases = [*self.held[owner], self.choose(held, how)]
        refused = self.call(self.store.renew_leases, leases, LEASE_TTL, self.now)
        before, after = self.refresh("renew_leases")
        assert refused == [x.run_id for x in leases if not self.fence_holds(before, x)]
        renewed = {x.run_id for x in leases if self.fence_holds(before, x)}
        for run_id in renewed:
            b, a = before.runs[run_id], after.runs[run_id]
            assert a.evolve(updated_at=b.updated_at) == b.evolve(
                lease_expires_at=to_datetime(self.now + LEASE_TTL))
            assert after.events[run_id] == before.events[run_id]
        self.assert_only(before, after, renewed)

    @rule(held=leases, how=st.sampled_from(["remembered", "revoked", "older", "superseded"]))
    def release_lease(self, held: tuple[str, Lease], how: str) -> None:
        """A worker's task stopped and it says so with its lease, picked ``how``: as
        :meth:`choose`, or ``revoked`` (one the last cancel revoked: the run's generation
        is one past it) or ``older`` (an earlier attempt's lease of a stopped run whose
        owner is still recorded), if there is one."""
        remembered = [x for owner in OWNERS for x in self.held[owner]]
        runs = self.snap.runs
        if how == "revoked":
            picked = [x for x in remembered if runs[x.run_id].lease_generation == x.generation + 1]
        elif how == "older":
            picked = [x for x in remembered
                      if runs[x.run_id].lease_owner and runs[x.run_id].status is not RUNNING
                      and runs[x.run_id].lease_generation > x.generation + 1]
        else:
            picked = [self.choose(held, how)]
        lease = (picked or [held[1]])[0]
        run_id = lease.run_id
        self.call(self.store.release_lease, lease)
        before, after = self.refresh("release_lease")
        b = before.runs[run_id]
        if b.status is RUNNING or b.lease_generation != lease.generation + 1:
            assert after == before, "release forgets only the owner whose lease was revoked"
            return
        a = after.runs[run_id]
        assert a.evolve(updated_at=b.updated_at) == b.evolve(
            lease_owner=None, lease_expires_at=None)
        assert after.events[run_id] == before.events[run_id]
        self.assert_only(before, after, {run_id})

    @precondition(lambda self: any(r.status is RUNNING for r in self.snap.runs.values()))
    @rule(dt=st.sampled_from([1.0, 6.0, 11.0, 20.0]))
    def reap_expired(self, dt: float) -> None:
        self.now += dt
        reaped = self.call(self.store.reap_expired, self.now)
        before, after = self.refresh("reap_expired")
        expected: dict[str, RunStatus] = {}
        for run_id in before.order:
            b = before.runs[run_id]
            if b.status is not RUNNING or ts(b.lease_expires_at) >= self.now:
                continue
            if b.deadline_at is not None and ts(b.deadline_at) <= self.now:
                expected[run_id] = TIMEOUT
            elif b.attempt >= b.max_attempts:
                expected[run_id] = ERROR
            else:
                expected[run_id] = PENDING
        assert {r.run_id: r.status for r in reaped} == expected
        assert len(reaped) == len(expected)
        for run_id, status in expected.items():
            b, a = before.runs[run_id], after.runs[run_id]
            assert (a.status, a.lease_owner, a.lease_expires_at, a.lease_generation) == (
                status, None, None, b.lease_generation + 1)
            assert a.ended_at == (None if status is PENDING else to_datetime(self.now))
            assert after.steps[run_id] == before.steps[run_id], "the reaper keeps steps"
            [event] = after.events[run_id][len(before.events[run_id]):]
            name = {PENDING: "run:resume", ERROR: "run:fail", TIMEOUT: "run:timeout"}[status]
            assert event.event == name and event.data["reason"] == "lease_expired"
        self.assert_only(before, after, set(expected))

    def live_on_threads(self) -> list[tuple[str, Lease]]:
        return [(owner, x) for owner in OWNERS for x in self.held[owner]
                if self.fence_holds(self.snap, x) and self.snap.runs[x.run_id].thread_id]

    @precondition(lambda self: self.live_on_threads())
    @rule(value=st.integers(0, 9),
          then=st.sampled_from(["interrupt", "rollback", "requeue", "retry"]))
    def write_values_then_stop(self, value: int, then: str) -> None:
        """A live worker writes its thread's values, then its run is cancelled, given back
        (``requeue``), or given back, claimed again and rolled back (``retry``): the paths
        on which a rollback has the run's own writes to undo, which random interleavings
        reach too rarely. Each step is one of the rules, with its own checks."""
        held = self.live_on_threads()[0]
        run_id = held[1].run_id
        self.append_event(held, "remembered", "values", value)
        self.store_is_consistent()
        if then in ("requeue", "retry"):
            self.requeue_run(held, "remembered")
            self.store_is_consistent()
        if then == "retry":
            self.claim_runs(held[0], 3, ("wf", "other"))
            self.store_is_consistent()
        if then != "requeue":
            action = CancelAction.INTERRUPT if then == "interrupt" else CancelAction.ROLLBACK
            self.cancel_run(self.order.index(run_id), None, action, "stop")

    def overtaking(self) -> list[tuple[str, str]]:
        """(interrupted run, first active run after it) pairs on one thread."""
        pairs = []
        for thread_id in THREADS:
            runs = self.snap.thread_runs(thread_id)
            for i, run in enumerate(runs):
                newer = [r for r in runs[i + 1:] if r.status.active]
                if run.status is INTERRUPTED and newer:
                    pairs.append((run.run_id, newer[0].run_id))
        return pairs

    @precondition(lambda self: self.overtaking())
    @rule(owner=st.sampled_from(OWNERS), finish=st.booleans(),
          action=st.sampled_from(CancelAction))
    def resumed_run_overtakes(self, owner: str, finish: bool, action: CancelAction) -> None:
        """An interrupted run is resumed while a newer run of its thread is running; the
        newer run's worker gives it back, the resumed (older) run goes first and writes
        the thread's values; then the newer run is cancelled. Its rollback must not
        restore the snapshot it took before those writes (deer-flow #2505). Each step is
        one of the rules above, with its own checks; the sequence stops where the store
        (rightly) takes another path, e.g. an even older pending run goes first."""
        older, newer = self.overtaking()[0]

        def live(run_id: str) -> tuple[str, Lease] | None:
            return next(((o, x) for o in OWNERS for x in self.held[o]
                         if x.run_id == run_id and self.fence_holds(self.snap, x)), None)

        if self.snap.runs[newer].status is PENDING:
            self.claim_runs(owner, 3, ("wf", "other"))
            self.store_is_consistent()
        newer_lease = live(newer)
        if newer_lease is None:
            return
        self.resume_run(self.order.index(older), None)
        self.store_is_consistent()
        self.requeue_run(newer_lease, "remembered")
        self.store_is_consistent()
        self.claim_runs(owner, 1, ("wf", "other"))
        self.store_is_consistent()
        older_lease = live(older)
        if older_lease is not None:
            if finish:
                self.finish_run(older_lease, "remembered", SUCCESS, {"out": older})
            else:
                self.append_event(older_lease, "remembered", "values", 7)
            self.store_is_consistent()
        self.cancel_run(self.order.index(newer), None, action, "stop")

    @rule(dt=st.sampled_from([1.0, 5.0]))
    def tick(self, dt: float) -> None:
        self.now += dt

    # --- invariants, after every step -------------------------------------------
    @invariant()
    def store_is_consistent(self) -> None:
        snap = self.snap
        assert snap.order == self.order, "runs are listed in creation order, none lost"
        for thread_id in THREADS:
            runs = snap.thread_runs(thread_id)
            running = [r.run_id for r in runs if r.status is RUNNING]
            assert len(running) <= 1, f"two runs running on {thread_id}: {running}"
            busy = any(r.status.active for r in runs)
            assert (snap.threads[thread_id].status is ThreadStatus.BUSY) == busy
        for run_id in snap.order:
            run, events = snap.runs[run_id], snap.events[run_id]
            # steps are exactly 0..step_index-1 (a rollback empties them and the index)
            assert [s.index for s in snap.steps[run_id]] == list(range(run.step_index))
            # the event log: seq 1..n, no gaps
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            # one run:cancel per transition to interrupted
            assert sum(e.event == "run:cancel" for e in events) == self.cancels[run_id]
            # the lifecycle events replay, through allowed transitions, to the status
            replayed: RunStatus | None = None
            for e in events:
                if e.event in TRANSITIONS:
                    transition = TRANSITIONS[e.event]
                    target = transition.target
                    if replayed is None:
                        assert e.event == "run:created" and e.seq == 1
                    else:
                        assert (replayed, target) in ANY_TRANSITION, (run_id, replayed, target)
                        assert replayed in transition.sources, (run_id, e.event, replayed)
                    replayed = target
            assert replayed is run.status, (run_id, replayed, run.status)
            if run.status is RUNNING:
                assert run.lease_owner is not None and run.lease_expires_at is not None
            if run.status is PENDING:
                assert run.lease_owner is None and run.lease_expires_at is None
        prev = self.prev
        if prev is None:
            return
        allowed = ALLOWED[self.op]
        for run_id in prev.order:
            b, a = prev.runs[run_id], snap.runs[run_id]
            if b.status is not a.status:
                assert (b.status, a.status) in allowed, (self.op, run_id, b.status, a.status)
                assert not (b.status.terminal and a.status.terminal)
            assert a.lease_generation >= b.lease_generation, "the fence never goes back"
            if (a.status, a.lease_owner) != (b.status, b.lease_owner):
                assert snap.marks[run_id] != prev.marks[run_id], "waiters must see the change"
            assert (a.thread_id, a.assistant_id, a.input, a.created_at) == (
                b.thread_id, b.assistant_id, b.input, b.created_at)
            old, new = prev.events[run_id], snap.events[run_id]
            assert new[: len(old)] == old, "the event log is append-only"
            changes = sum(e.event in TRANSITIONS for e in new[len(old):])
            assert changes == (b.status is not a.status), "each status change logged once"
            if a.status is RUNNING and b.status is not RUNNING and a.thread_id is not None:
                older = snap.thread_runs(a.thread_id)
                older = older[: older.index(a)]
                assert not any(prev.runs[x.run_id].status is PENDING for x in older), (
                    f"{run_id} claimed while an older run of its thread was pending")


SETTINGS = settings(
    max_examples=60,  # of 60 steps each: a minute on PostgreSQL
    stateful_step_count=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# Passing takes seconds; a failure is then shrunk to a minimal sequence, which Hypothesis
# caps at five minutes: give it that time rather than cut it off half-way.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("database", STORE_FACTORIES)
def test_store_state_machine(
    database: Callable[[], tuple[str, Callable[[], None]]], request: pytest.FixtureRequest
) -> None:
    if database is _postgres_database:
        request.getfixturevalue("postgres_server")  # skipped (or failed in CI) if unreachable
    run_state_machine_as_test(lambda: StoreMachine(database), settings=SETTINGS)
