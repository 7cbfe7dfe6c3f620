"""The embedded store: SQLite in WAL mode behind one connection thread.

All statements of this process go through one thread that owns the
connection. It drains its queue and runs what it found as one transaction,
each operation inside its own savepoint (group commit): an operation that
fails leaves nothing behind, and no caller learns of a result before the
transaction holding it committed. Write batches open with ``BEGIN IMMEDIATE``
so several processes sharing the file queue on SQLite's lock (busy timeout)
instead of failing with "database is locked" half-way through.

Other processes' commits are noticed by the same thread: every ``change_check``
seconds it reads ``PRAGMA data_version``, a number that moves only when *another*
connection committed to the file. It reads no table and costs microseconds; when it
moved, the listener re-reads what it waits on (pending runs, its leases, watched
runs) at once instead of at its next poll: a quiet database is read no more than
before; while others keep committing, at most once more per ``change_check``.
Chosen over a wake-up channel between processes (a socket next to the file):
nothing to create, find or clean up, and the file stays the only thing processes
share. The check runs on the writer's own connection, between batches, not on a
second one: a second connection would also see this process's own commits, which
it signals in memory already, and wake every reader after each of them. A check
that waits behind a long batch only delays a wake-up, never loses one: the number
differs from the last one read as long as anyone committed since. Polling stays
as the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from runplane.errors import (
    RunConflict,
    RunNotFound,
    StoreClosed,
    StoreUnavailable,
    ThreadBusy,
    ThreadExists,
    ThreadNotFound,
)
from runplane.lifecycle import FINISH_EVENTS, EventName
from runplane.models import (
    CancelAction,
    CancelOutcome,
    CancelRequest,
    ClaimedRun,
    Event,
    Lease,
    NewRun,
    Run,
    RunStatus,
    Step,
    Thread,
    ThreadQuery,
)
from runplane.store.base import Cancelled, Created, OnActive, Reaped, Swept
from runplane.store.rows import (
    BAD_ROW_ERRORS,
    SWEEP_TICK,
    THREAD_STATUS_SQL,
    cancel_event,
    delete_conflict,
    dumps,
    event_from_row,
    merge_metadata,
    reap_decision,
    run_from_row,
    spawned_by,
    spawned_under_cancel,
    step_from_row,
    sweep_order,
    thread_from_row,
    thread_run,
    unclaimable_error,
)

log = logging.getLogger("runplane.store.sqlite")

_MAX_BATCH = 512
#: Seconds between two checks for other processes' commits (``PRAGMA data_version``).
CHANGE_CHECK = 0.005
#: SQLite's primary result codes that say the database could not answer now (busy or locked
#: past the busy timeout, out of memory, I/O error, disk full, cannot open, lock protocol),
#: not that it refused the statement.
_UNAVAILABLE_CODES = frozenset({
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL,
})


def _fault(exc: BaseException) -> BaseException:
    """The one place that tells a database that cannot answer (StoreUnavailable) from a
    statement it refused."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in _UNAVAILABLE_CODES:
        return StoreUnavailable(exc)
    return exc


def _run(row: sqlite3.Row) -> Run:
    return run_from_row(dict(zip(row.keys(), row, strict=True)))


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db``, ``sqlite:////abs.db`` or ``sqlite:///:memory:`` -> path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ValueError(f"not a SQLite URL: {url!r} (expected sqlite:///path/to/file.db)")
    path = url[len(prefix) :]
    if not path:
        raise ValueError(f"SQLite URL {url!r} names no file")
    return path


# --------------------------------------------------------------------------- #
# the connection thread                                                        #
# --------------------------------------------------------------------------- #


@dataclass(slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    write: bool
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


def _deliver(items: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in items:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class _ConnectionThread:
    def __init__(self, path: str, busy_timeout: float, change_check: float) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._change_check = change_check
        #: called (from this thread) when another connection committed; None: nobody asks
        self._on_change: Callable[[], None] | None = None
        self._data_version: int | None = None
        self._checked_at = 0.0
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._main, name="runplane-sqlite", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def submit(self, fn: Callable[[sqlite3.Connection], Any], *, write: bool) -> asyncio.Future:
        """Queue ``fn``; it runs even if the returned future is cancelled."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._closed:
            future.set_exception(StoreClosed("the SQLite store is closed"))
        else:
            self._queue.put(_Op(fn, write, loop, future))
        return future

    def watch_changes(self, on_change: Callable[[], None]) -> None:
        """Call ``on_change`` (from this thread) whenever another connection committed."""
        if self._path != ":memory:":  # nobody else can reach an in-memory database
            self._on_change = on_change

    async def stop(self) -> None:
        self._closed = True
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        # what was queued behind the stop will never run: say so instead of hanging
        while True:
            try:
                op = self._queue.get_nowait()
            except queue.Empty:
                break
            if op is not None:
                op.loop.call_soon_threadsafe(
                    _deliver, [(op.future, None, StoreClosed("the SQLite store is closed"))]
                )

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        if self._path != ":memory:":
            self._enable_wal(conn)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switching a new file to WAL takes an exclusive lock that SQLite's busy handler
        does not wait for; processes opening one file together retry here."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def _main(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            stopping = False
            while not stopping:
                first = self._next(conn)
                if first is None:
                    break
                batch = [first]
                while len(batch) < _MAX_BATCH:
                    try:
                        op = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if op is None:
                        stopping = True
                        break
                    batch.append(op)
                self._run_batch(conn, batch)
        finally:
            conn.close()

    def _next(self, conn: sqlite3.Connection) -> _Op | None:
        """The next operation; meanwhile, check for other connections' commits when due."""
        while self._on_change is not None:
            wait = self._checked_at + self._change_check - time.monotonic()
            if wait <= 0:
                self._check_changes(conn)
                continue
            try:
                return self._queue.get(timeout=wait)
            except queue.Empty:
                pass
        return self._queue.get()

    def _check_changes(self, conn: sqlite3.Connection) -> None:
        assert self._on_change is not None
        self._checked_at = time.monotonic()
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:  # the poll meets the error and reports it
            return
        before, self._data_version = self._data_version, version
        if before is not None and version != before:
            self._on_change()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE" if any(op.write for op in batch) else "BEGIN")
            for op in batch:
                if not op.write:  # reads change nothing: no savepoint to undo
                    try:
                        outcomes.append((op.fn(conn), None))
                    except Exception as exc:
                        outcomes.append((None, exc))
                    continue
                conn.execute("SAVEPOINT op")
                try:
                    outcomes.append((op.fn(conn), None))
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    outcomes.append((None, exc))
                conn.execute("RELEASE op")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(None, exc)] * len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for op, (result, error) in zip(batch, outcomes, strict=True):
            error = None if error is None else _fault(error)
            by_loop.setdefault(op.loop, []).append((op.future, result, error))
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # the loop closed while we were working
                pass


# --------------------------------------------------------------------------- #
# SQL                                                                          #
# --------------------------------------------------------------------------- #

_SELECT_THREAD = """
SELECT t.*,
       EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id
                AND r.status IN ('pending', 'running')) AS busy,
       (SELECT r.status FROM runs r WHERE r.thread_id = t.thread_id AND r.ended_at IS NOT NULL
         ORDER BY r.ended_at DESC, r.seq DESC LIMIT 1) AS last_status
  FROM threads t
"""

_INSERT_EVENT = "INSERT INTO events (run_id, seq, event, data, created_at) VALUES (?, ?, ?, ?, ?)"

_NEXT_SEQ_FENCED = """
UPDATE runs SET last_event_seq = last_event_seq + 1, updated_at = ?
 WHERE run_id = ? AND status = 'running' AND lease_generation = ?
RETURNING last_event_seq, thread_id
"""

_NEXT_SEQ = """
UPDATE runs SET last_event_seq = last_event_seq + 1, updated_at = ?
 WHERE run_id = ?
RETURNING last_event_seq, thread_id
"""

_INSERT_RUN = """
INSERT INTO runs (run_id, thread_id, assistant_id, status, input, metadata, multitask_strategy,
                  created_at, updated_at, max_attempts, timeout, root_run_id, parent_run_id,
                  last_event_seq, owner)
VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?)
RETURNING *
"""

_CANCEL = """
UPDATE runs
   SET status = 'interrupted',
       cancelled_generation = lease_generation,
       lease_generation = lease_generation + 1,
       cancel_requested_at = ?, cancel_reason = ?, cancel_action = ?, cancel_requested_by = ?,
       step_index = CASE WHEN ? = 'rollback' THEN 0 ELSE step_index END,
       ended_at = ?, updated_at = ?,
       last_event_seq = last_event_seq + 1
 WHERE run_id = ? AND status IN ('pending', 'running')
RETURNING *
"""

_RESUME = """
UPDATE runs
   SET status = 'pending', attempt = 0, ended_at = NULL, deadline_at = NULL,
       lease_owner = NULL, lease_expires_at = NULL,
       cancel_requested_at = NULL, cancel_reason = NULL, cancel_action = NULL,
       cancel_requested_by = NULL, updated_at = ?, last_event_seq = last_event_seq + 1
 WHERE run_id = ? AND status = 'interrupted'
RETURNING *
"""

_CLAIMABLE = """
SELECT r.run_id FROM runs r
 WHERE r.status = 'pending'
   AND r.assistant_id IN (SELECT value FROM json_each(?))
   AND r.run_id NOT IN (SELECT value FROM json_each(?))
   AND (r.thread_id IS NULL OR (
        NOT EXISTS (SELECT 1 FROM runs x WHERE x.thread_id = r.thread_id AND x.status = 'running')
        AND NOT EXISTS (SELECT 1 FROM runs y WHERE y.thread_id = r.thread_id
                         AND y.status = 'pending' AND y.seq < r.seq)))
 ORDER BY r.seq
 LIMIT ?
"""

_CLAIM = """
UPDATE runs
   SET status = 'running', lease_owner = ?, lease_generation = lease_generation + 1,
       lease_expires_at = ?, attempt = attempt + 1,
       started_at = COALESCE(started_at, ?), deadline_at = COALESCE(deadline_at, ? + timeout),
       pre_run_values = (
           SELECT CASE WHEN runs.pre_run_values IS NOT NULL AND t.values_run_id = runs.run_id
                       THEN runs.pre_run_values ELSE t.values_json END
             FROM threads t WHERE t.thread_id = runs.thread_id),
       last_event_seq = last_event_seq + 1, updated_at = ?
 WHERE run_id = ? AND status = 'pending'
RETURNING *
"""

# A pending run that cannot be claimed ends ``error`` without being started.
_FAIL_PENDING = """
UPDATE runs SET status = 'error', error = ?, ended_at = ?, updated_at = ?,
       last_event_seq = last_event_seq + 1
 WHERE run_id = ? AND status = 'pending'
RETURNING last_event_seq
"""

_RENEW = """
UPDATE runs SET lease_expires_at = ?
 WHERE run_id = ? AND status = 'running' AND lease_generation = ?
"""

# The cancel that stopped generation G left the run at G + 1; a later claim moves it on, and
# then the lease is someone else's to release.
_RELEASE = """
UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL
 WHERE run_id = ? AND lease_generation = ? + 1 AND status <> 'running'
"""

_EXPIRED = """
SELECT run_id, attempt, max_attempts, deadline_at, lease_owner FROM runs
 WHERE status = 'running' AND lease_expires_at < ?
"""

_REAP = """
UPDATE runs
   SET status = ?, error = ?, lease_owner = NULL, lease_expires_at = NULL,
       lease_generation = lease_generation + 1,
       ended_at = CASE WHEN ? = 'pending' THEN NULL ELSE ? END,
       updated_at = ?, last_event_seq = last_event_seq + 1
 WHERE run_id = ? AND status = 'running' AND lease_expires_at < ?
RETURNING last_event_seq
"""

_COMPLETE_STEP = """
UPDATE runs SET step_index = step_index + 1, last_event_seq = last_event_seq + 1, updated_at = ?
 WHERE run_id = ? AND status = 'running' AND lease_generation = ? AND step_index = ?
RETURNING last_event_seq
"""

_FINISH = """
UPDATE runs
   SET status = ?, output = ?, error = ?, traceback = ?, ended_at = ?, updated_at = ?,
       lease_owner = NULL, lease_expires_at = NULL, last_event_seq = last_event_seq + 1
 WHERE run_id = ? AND status = 'running' AND lease_generation = ?
RETURNING last_event_seq, thread_id
"""

_REQUEUE = """
UPDATE runs
   SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,
       lease_generation = lease_generation + 1, attempt = MAX(attempt - 1, 0),
       updated_at = ?, last_event_seq = last_event_seq + 1
 WHERE run_id = ? AND status = 'running' AND lease_generation = ?
RETURNING last_event_seq
"""

_SET_VALUES = """
UPDATE threads SET values_json = ?, values_run_id = ?, updated_at = ? WHERE thread_id = ?
"""

# Rollback restores the snapshot only while the thread's values are still this run's own
# writes: values a newer run wrote since are never overwritten with an older snapshot.
_ROLLBACK_VALUES = """
UPDATE threads SET values_json = ?, values_run_id = NULL, updated_at = ?
 WHERE thread_id = ? AND values_run_id = ?
"""


# --------------------------------------------------------------------------- #
# transactions (each runs inside one savepoint of the connection thread)       #
# --------------------------------------------------------------------------- #


_SELECT_THREAD_STATUS = f"SELECT *, {THREAD_STATUS_SQL} AS status FROM ({_SELECT_THREAD})"


def _thread_filter(query: ThreadQuery) -> tuple[str, list[Any]]:
    """A WHERE clause (over _SELECT_THREAD_STATUS) and its parameters for ``query``."""
    clauses, params = ["1"], []
    for key, value in query.metadata.items():
        clauses.append("json_extract(metadata, ?) IS json_extract(?, '$')")
        params += [f"$.{dumps(key)}", dumps(value)]
    if query.status is not None:
        clauses.append("status = ?")
        params.append(query.status.value)
    if query.ids is not None:
        clauses.append("thread_id IN (SELECT value FROM json_each(?))")
        params.append(dumps(query.ids))
    if query.owner is not None:
        clauses.append("owner = ?")
        params.append(query.owner)
    return " AND ".join(clauses), params


def _append(
    conn: sqlite3.Connection, run_id: str, seq: int, event: str, data: Any, now: float
) -> None:
    conn.execute(_INSERT_EVENT, (run_id, seq, event, dumps(data), now))


def _get_run(conn: sqlite3.Connection, run_id: str) -> Run | None:
    row = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else _run(row)


def _insert_thread(
    conn: sqlite3.Connection, thread_id: str, metadata: dict[str, Any], now: float,
    owner: str | None,
) -> None:
    conn.execute(
        "INSERT INTO threads (thread_id, created_at, updated_at, metadata, owner) "
        "VALUES (?, ?, ?, ?, ?)",
        (thread_id, now, now, dumps(metadata), owner),
    )


def _cancel(
    conn: sqlite3.Connection, run_id: str, request: CancelRequest, now: float
) -> Cancelled | None:
    current = _get_run(conn, run_id)
    if current is None:
        return None
    if current.status is RunStatus.INTERRUPTED:
        return Cancelled(CancelOutcome.ALREADY_INTERRUPTED, current)
    if not current.status.active:
        return Cancelled(CancelOutcome.ALREADY_FINISHED, current)
    row = conn.execute(
        _CANCEL,
        (now, request.reason, request.action.value, request.requested_by, request.action.value,
         now, now, run_id),
    ).fetchone()
    run = _run(row)
    _append(conn, run_id, row["last_event_seq"], EventName.RUN_CANCEL,
            cancel_event(request, current.status), now)
    if request.action is CancelAction.ROLLBACK:
        conn.execute("DELETE FROM steps WHERE run_id = ?", (run_id,))
        if run.thread_id is not None and row["pre_run_values"] is not None:
            conn.execute(_ROLLBACK_VALUES, (row["pre_run_values"], now, run.thread_id, run_id))
    return Cancelled(CancelOutcome.CANCELLED, run)


def _create_run(
    conn: sqlite3.Connection, new: NewRun, now: float, on_active: OnActive, create_thread: bool,
    own_thread_only: bool,
) -> Created:
    cancelled: list[Run] = []
    if new.thread_id is not None:
        exists = conn.execute(
            "SELECT owner FROM threads WHERE thread_id = ?", (new.thread_id,)
        ).fetchone()
        if exists is not None:
            new = thread_run(new, exists[0], own_thread_only)
        elif not create_thread:
            raise ThreadNotFound(new.thread_id)
        else:
            _insert_thread(conn, new.thread_id, {}, now, new.owner)
        active = [
            r["run_id"]
            for r in conn.execute(
                "SELECT run_id FROM runs WHERE thread_id = ? AND status IN ('pending', 'running') "
                "ORDER BY seq",
                (new.thread_id,),
            )
        ]
        if active and on_active == "reject":
            raise ThreadBusy(new.thread_id, active)
        if active and isinstance(on_active, CancelRequest):
            for run_id in active:  # with its attached children, which would outlive it
                swept = _sweep(conn, run_id, on_active, now, whole_tree=False)
                if swept is not None:
                    cancelled += [c.run for c in swept.runs if c.outcome is CancelOutcome.CANCELLED]
    return Created(_insert_run(conn, new, now), cancelled)


_ORPHANS = """
SELECT c.* FROM runs c
  JOIN runs p ON p.run_id = c.parent_run_id AND p.root_run_id = c.root_run_id
 WHERE c.status IN ('pending', 'running') AND p.status IN ('success', 'error', 'timeout')
 ORDER BY c.seq
"""


def _insert_run(conn: sqlite3.Connection, new: NewRun, now: float) -> Run:
    row = conn.execute(
        _INSERT_RUN,
        (new.run_id, new.thread_id, new.assistant_id, dumps(new.input), dumps(new.metadata),
         new.multitask_strategy.value, now, now, new.max_attempts, new.timeout, new.root_run_id,
         new.parent_run_id, new.owner),
    ).fetchone()
    _append(conn, new.run_id, 1, EventName.RUN_CREATED,
            {"assistant_id": new.assistant_id, "thread_id": new.thread_id}, now)
    return _run(row)


def _sweep(
    conn: sqlite3.Connection, run_id: str, request: CancelRequest, now: float, *,
    whole_tree: bool,
) -> Swept | None:
    run = _get_run(conn, run_id)
    if run is None:
        return None
    tree = _tree(conn, run.root_run_id)  # one writer: no spawn runs meanwhile
    done = [
        _cancel(conn, rid, request, now + k * SWEEP_TICK)
        for k, rid in enumerate(sweep_order(tree, run_id, whole_tree=whole_tree))
    ]
    remaining = conn.execute(
        "SELECT count(*) FROM runs WHERE root_run_id = ? AND status IN ('pending', 'running')",
        (run.root_run_id,)).fetchone()[0]
    results = [c for c in done if c is not None]
    target = next(c for c in results if c.run.run_id == run_id)
    return Swept(target, results, run.root_run_id, remaining)


def _tree(conn: sqlite3.Connection, root_run_id: str) -> list[Run]:
    rows = conn.execute("SELECT * FROM runs WHERE root_run_id = ? ORDER BY seq", (root_run_id,))
    return [_run(r) for r in rows]


def _spawn(conn: sqlite3.Connection, parent: Lease, new: NewRun, now: float) -> Run | None:
    existing = _get_run(conn, new.run_id)
    if existing is not None:
        return existing
    holder = _get_run(conn, parent.run_id)
    if holder is None:
        return None
    new = spawned_by(new, holder)
    if holder.status is RunStatus.RUNNING and holder.lease_generation == parent.generation:
        return _insert_run(conn, new, now)
    if holder.cancelled_generation == parent.generation and holder.status is RunStatus.INTERRUPTED:
        _insert_run(conn, new, now)
        done = _cancel(conn, new.run_id, spawned_under_cancel(holder), now)
        return None if done is None else done.run
    return None


def _claim(
    conn: sqlite3.Connection, owner: str, workflows: list[str], limit: int, ttl: float,
    now: float, exclude: list[str],
) -> list[ClaimedRun]:
    ids = [r[0] for r in conn.execute(_CLAIMABLE, (dumps(workflows), dumps(exclude), limit))]
    claimed = []
    for run_id in ids:
        conn.execute("SAVEPOINT claim")  # one bad row must not stop the claim of the others
        try:
            row = conn.execute(_CLAIM, (owner, now + ttl, now, now, now, run_id)).fetchone()
            run = _run(row)
            _append(conn, run_id, row["last_event_seq"], EventName.RUN_START,
                    {"attempt": run.attempt, "worker": owner}, now)
            steps = _get_steps(conn, run_id) if run.step_index else []
        except BAD_ROW_ERRORS as exc:
            conn.execute("ROLLBACK TO claim")
            conn.execute("RELEASE claim")
            _fail_unclaimable(conn, run_id, exc, now)
            continue
        conn.execute("RELEASE claim")
        claimed.append(ClaimedRun(run, steps))
    return claimed


def _fail_unclaimable(conn: sqlite3.Connection, run_id: str, exc: Exception, now: float) -> None:
    error = unclaimable_error(exc)
    log.warning("run %s ended error: %s", run_id, error)
    row = conn.execute(_FAIL_PENDING, (error, now, now, run_id)).fetchone()
    if row is not None:
        _append(conn, run_id, row["last_event_seq"], EventName.RUN_FAIL, {"error": error}, now)


def _get_steps(conn: sqlite3.Connection, run_id: str) -> list[Step]:
    return [
        step_from_row(r)
        for r in conn.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY idx", (run_id,))
    ]


def _reap(conn: sqlite3.Connection, now: float) -> list[Reaped]:
    reaped = []
    for r in conn.execute(_EXPIRED, (now,)).fetchall():
        status, error, event = reap_decision(r["attempt"], r["max_attempts"], r["deadline_at"], now)
        row = conn.execute(
            _REAP, (status.value, error, status.value, now, now, r["run_id"], now)
        ).fetchone()
        if row is None:
            continue
        data = {"reason": "lease_expired", "attempt": r["attempt"], "worker": r["lease_owner"]}
        if error:
            data["error"] = error
        _append(conn, r["run_id"], row["last_event_seq"], event, data, now)
        reaped.append(Reaped(r["run_id"], status))
    return reaped


def _append_event(
    conn: sqlite3.Connection, run_id: str, event: str, data: Any, now: float, lease: Lease | None
) -> bool:
    if lease is None:
        row = conn.execute(_NEXT_SEQ, (now, run_id)).fetchone()
    else:
        row = conn.execute(_NEXT_SEQ_FENCED, (now, run_id, lease.generation)).fetchone()
    if row is None:
        return False
    _append(conn, run_id, row["last_event_seq"], event, data, now)
    if event == "values" and row["thread_id"] is not None:
        conn.execute(_SET_VALUES, (dumps(data), run_id, now, row["thread_id"]))
    return True


def _complete_step(
    conn: sqlite3.Connection, lease: Lease, index: int, name: str, result: Any, now: float
) -> bool:
    row = conn.execute(_COMPLETE_STEP, (now, lease.run_id, lease.generation, index)).fetchone()
    if row is None:
        return False
    encoded = dumps(result)
    conn.execute(
        "INSERT INTO steps (run_id, idx, name, result, created_at) VALUES (?, ?, ?, ?, ?)",
        (lease.run_id, index, name, encoded, now),
    )
    conn.execute(
        _INSERT_EVENT,
        (lease.run_id, row["last_event_seq"], EventName.STEP_COMPLETE,
         f'{{"name":{dumps(name)},"index":{index},"result":{encoded}}}', now),
    )
    return True


def _record_step_cancel(
    conn: sqlite3.Connection, lease: Lease, index: int, name: str, reason: str, now: float
) -> None:
    row = conn.execute(
        "UPDATE runs SET last_event_seq = last_event_seq + 1, updated_at = ? "
        "WHERE run_id = ? AND lease_generation = ? + 1 AND status <> 'running' "
        "AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.run_id = runs.run_id AND s.idx = ?) "
        "RETURNING last_event_seq",
        (now, lease.run_id, lease.generation, index),
    ).fetchone()
    if row is not None:
        _append(conn, lease.run_id, row["last_event_seq"], EventName.STEP_CANCEL,
                {"name": name, "index": index, "reason": reason}, now)


def _finish(
    conn: sqlite3.Connection, lease: Lease, status: RunStatus, output: Any, error: str | None,
    now: float, traceback: str | None,
) -> bool:
    encoded = None if status is not RunStatus.SUCCESS else dumps(output)
    row = conn.execute(
        _FINISH, (status.value, encoded, error, traceback, now, now, lease.run_id,
                  lease.generation)
    ).fetchone()
    if row is None:
        return False
    data = {"output": output} if status is RunStatus.SUCCESS else {"error": error}
    _append(conn, lease.run_id, row["last_event_seq"], FINISH_EVENTS[status], data, now)
    if status is RunStatus.SUCCESS and output is not None and row["thread_id"] is not None:
        conn.execute(_SET_VALUES, (encoded, lease.run_id, now, row["thread_id"]))
    return True


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, "
                 "applied_at REAL NOT NULL)")
    applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    folder = resources.files("runplane.store") / "migrations" / "sqlite"
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".sql") or item.name in applied:
            continue
        for statement in _statements(item.read_text()):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, julianday('now'))", (item.name,))


def _statements(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit on its own)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in migration: {current.strip()[:80]!r}")
    return statements


# --------------------------------------------------------------------------- #
# the store                                                                    #
# --------------------------------------------------------------------------- #


class SQLiteStore:
    """:class:`runplane.store.base.Store` on one SQLite file (or ``:memory:``)."""

    def __init__(
        self, url: str, *, busy_timeout: float = 30.0, change_check: float = CHANGE_CHECK
    ) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._conn = _ConnectionThread(self.path, busy_timeout, change_check)
        self._opened = False

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> asyncio.Future:
        return self._conn.submit(fn, write=True)

    def _read(self, fn: Callable[[sqlite3.Connection], Any]) -> asyncio.Future:
        return self._conn.submit(fn, write=False)

    async def open(self) -> None:
        await asyncio.to_thread(self._conn.start)
        self._opened = True
        await self._write(_migrate)

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            await self._conn.stop()

    async def listen(
        self,
        on_pending: Callable[[], None],
        on_cancel: Callable[[str, int | None], None],
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """SQLite cannot say what another process changed, only that it committed:
        ``on_change`` hears that (see the module docstring)."""
        if on_change is None:
            return
        loop = asyncio.get_running_loop()

        def changed() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed before the store
                loop.call_soon_threadsafe(on_change)

        self._conn.watch_changes(changed)

    # threads
    async def create_thread(
        self, thread_id: str, metadata: dict[str, Any], now: float, *, if_exists: str,
        owner: str | None = None,
    ) -> Thread:
        def tx(conn: sqlite3.Connection) -> Thread:
            existing = conn.execute(_SELECT_THREAD + " WHERE t.thread_id = ?",
                                    (thread_id,)).fetchone()
            if existing is not None:
                if if_exists == "raise":
                    raise ThreadExists(thread_id)
                return thread_from_row(existing)
            _insert_thread(conn, thread_id, metadata, now, owner)
            return thread_from_row(conn.execute(_SELECT_THREAD + " WHERE t.thread_id = ?",
                                        (thread_id,)).fetchone())

        return await self._write(tx)

    async def get_thread(self, thread_id: str) -> Thread | None:
        def tx(conn: sqlite3.Connection) -> Thread | None:
            row = conn.execute(_SELECT_THREAD + " WHERE t.thread_id = ?", (thread_id,)).fetchone()
            return None if row is None else thread_from_row(row)

        return await self._read(tx)

    async def search_threads(self, query: ThreadQuery) -> list[Thread]:
        where, params = _thread_filter(query)
        order = "DESC" if query.descending else "ASC"

        def tx(conn: sqlite3.Connection) -> list[Thread]:
            rows = conn.execute(
                f"SELECT * FROM ({_SELECT_THREAD_STATUS}) WHERE {where} "
                f"ORDER BY {query.sort_by} {order}, thread_id {order} LIMIT ? OFFSET ?",
                (*params, query.limit, query.offset),
            )
            return [thread_from_row(r) for r in rows]

        return await self._read(tx)

    async def count_threads(self, query: ThreadQuery) -> int:
        where, params = _thread_filter(query)
        return await self._read(lambda conn: conn.execute(
            f"SELECT count(*) FROM ({_SELECT_THREAD_STATUS}) WHERE {where}", params
        ).fetchone()[0])

    async def update_thread(
        self, thread_id: str, metadata: dict[str, Any], now: float
    ) -> Thread | None:
        def tx(conn: sqlite3.Connection) -> Thread | None:
            row = conn.execute("SELECT metadata FROM threads WHERE thread_id = ?",
                               (thread_id,)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE threads SET metadata = ?, updated_at = ? WHERE thread_id = ?",
                         (dumps(merge_metadata(row[0], metadata)), now, thread_id))
            return thread_from_row(conn.execute(_SELECT_THREAD + " WHERE t.thread_id = ?",
                                                (thread_id,)).fetchone())

        return await self._write(tx)

    async def delete_thread(self, thread_id: str) -> bool:
        return await self._write(lambda conn: conn.execute(
            "DELETE FROM threads WHERE thread_id = ?", (thread_id,)).rowcount > 0)

    # runs, service side
    async def create_run(
        self, new: NewRun, now: float, *, on_active: OnActive, create_thread: bool = False,
        own_thread_only: bool = False,
    ) -> Created:
        return await self._write(
            lambda conn: _create_run(conn, new, now, on_active, create_thread, own_thread_only)
        )

    async def get_run(self, run_id: str) -> Run | None:
        return await self._read(lambda conn: _get_run(conn, run_id))

    async def list_runs(
        self, *, thread_id: str | None, status: RunStatus | None, limit: int, offset: int,
        owner: str | None = None,
    ) -> list[Run]:
        def tx(conn: sqlite3.Connection) -> list[Run]:
            rows = conn.execute(
                "SELECT * FROM runs WHERE (?1 IS NULL OR thread_id = ?1) "
                "AND (?2 IS NULL OR status = ?2) AND (?5 IS NULL OR owner = ?5) "
                "ORDER BY seq DESC LIMIT ?3 OFFSET ?4",
                (thread_id, status.value if status else None, limit, offset, owner),
            )
            return [_run(r) for r in rows]

        return await self._read(tx)

    async def cancel_runs(
        self, run_id: str, request: CancelRequest, now: float, *, whole_tree: bool
    ) -> Swept | None:
        return await self._write(
            lambda conn: _sweep(conn, run_id, request, now, whole_tree=whole_tree))

    async def spawn_run(self, parent: Lease, new: NewRun, now: float) -> Run | None:
        return await self._write(lambda conn: _spawn(conn, parent, new, now))

    async def get_tree(self, root_run_id: str) -> list[Run]:
        return await self._read(lambda conn: _tree(conn, root_run_id))

    async def orphaned_runs(self) -> list[Run]:
        return await self._read(lambda conn: [_run(r) for r in conn.execute(_ORPHANS)])

    async def delete_run(self, run_id: str) -> Run:
        def tx(conn: sqlite3.Connection) -> Run:
            current = _get_run(conn, run_id)
            if current is None:
                raise RunNotFound(run_id)
            if current.status.active:
                raise RunConflict(run_id, current.status.value, delete_conflict(current))
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
            return current

        return await self._write(tx)

    async def resume_run(self, run_id: str, now: float) -> Run:
        def tx(conn: sqlite3.Connection) -> Run:
            row = conn.execute(_RESUME, (now, run_id)).fetchone()
            if row is None:
                current = _get_run(conn, run_id)
                if current is None:
                    raise RunNotFound(run_id)
                raise RunConflict(run_id, current.status.value,
                                  f"run {run_id!r} is {current.status.value}; "
                                  "only an interrupted run can be resumed")
            _append(conn, run_id, row["last_event_seq"], EventName.RUN_RESUME,
                    {"reason": "resumed", "step_index": row["step_index"]}, now)
            return _run(row)

        return await self._write(tx)

    async def run_marks(self, run_ids: list[str]) -> dict[str, tuple[Any, ...]]:
        def tx(conn: sqlite3.Connection) -> dict[str, tuple[Any, ...]]:
            rows = conn.execute(
                "SELECT run_id, status, lease_owner, last_event_seq FROM runs "
                "WHERE run_id IN (SELECT value FROM json_each(?))",
                (dumps(run_ids),),
            )
            return {r[0]: tuple(r[1:]) for r in rows}

        return await self._read(tx)

    async def get_steps(self, run_id: str) -> list[Step]:
        return await self._read(lambda conn: _get_steps(conn, run_id))

    async def get_events(self, run_id: str, *, after_seq: int = 0) -> list[Event]:
        def tx(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(
                "SELECT * FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
                (run_id, after_seq),
            )
            return [event_from_row(r) for r in rows]

        return await self._read(tx)

    # runs, worker side
    async def claim_runs(
        self, owner: str, workflows: list[str], limit: int, lease_ttl: float, now: float,
        *, exclude: list[str] | None = None,
    ) -> list[ClaimedRun]:
        return await self._write(
            lambda conn: _claim(conn, owner, workflows, limit, lease_ttl, now, exclude or [])
        )

    async def renew_leases(self, leases: list[Lease], lease_ttl: float, now: float) -> list[str]:
        def tx(conn: sqlite3.Connection) -> list[str]:
            return [
                lease.run_id
                for lease in leases
                if conn.execute(_RENEW, (now + lease_ttl, lease.run_id, lease.generation)).rowcount
                == 0
            ]

        return await self._write(tx)

    async def lost_leases(self, leases: list[Lease]) -> list[str]:
        def tx(conn: sqlite3.Connection) -> list[str]:
            held = dict(conn.execute(
                "SELECT run_id, lease_generation FROM runs "
                "WHERE run_id IN (SELECT value FROM json_each(?)) AND status = 'running'",
                (dumps([lease.run_id for lease in leases]),),
            ).fetchall())
            return [lease.run_id for lease in leases if held.get(lease.run_id) != lease.generation]

        return await self._read(tx)

    async def release_lease(self, lease: Lease) -> None:
        await self._write(lambda conn: conn.execute(_RELEASE, (lease.run_id, lease.generation)))

    async def requeue_run(
        self, lease: Lease, reason: str, now: float, *, in_flight: tuple[int, str] | None = None
    ) -> bool:
        def tx(conn: sqlite3.Connection) -> bool:
            row = conn.execute(_REQUEUE, (now, lease.run_id, lease.generation)).fetchone()
            if row is None:
                return False
            seq = row["last_event_seq"]
            stored = in_flight is not None and conn.execute(
                "SELECT 1 FROM steps WHERE run_id = ? AND idx = ?", (lease.run_id, in_flight[0])
            ).fetchone() is not None
            if in_flight is not None and not stored:  # stored: its write failed late
                conn.execute("UPDATE runs SET last_event_seq = ? WHERE run_id = ?",
                             (seq + 1, lease.run_id))
                _append(conn, lease.run_id, seq, EventName.STEP_CANCEL,
                        {"index": in_flight[0], "name": in_flight[1], "reason": reason}, now)
                seq += 1
            _append(conn, lease.run_id, seq, EventName.RUN_RESUME, {"reason": reason}, now)
            return True

        return await self._write(tx)

    async def reap_expired(self, now: float) -> list[Reaped]:
        return await self._write(lambda conn: _reap(conn, now))

    # The two writes a workflow makes are futures, not coroutines, so that the worker can
    # see them through a cancellation without wrapping each in a task.
    def append_event(
        self, run_id: str, event: str, data: Any, now: float, *, lease: Lease | None
    ) -> asyncio.Future:
        return self._write(lambda conn: _append_event(conn, run_id, event, data, now, lease))

    def complete_step(
        self, lease: Lease, index: int, name: str, result: Any, now: float
    ) -> asyncio.Future:
        return self._write(lambda conn: _complete_step(conn, lease, index, name, result, now))

    async def record_step_cancel(
        self, lease: Lease, index: int, name: str, reason: str, now: float
    ) -> None:
        await self._write(lambda conn: _record_step_cancel(conn, lease, index, name, reason, now))

    async def finish_run(
        self, lease: Lease, status: RunStatus, output: Any, error: str | None, now: float,
        traceback: str | None = None,
    ) -> bool:
        return await self._write(
            lambda conn: _finish(conn, lease, status, output, error, now, traceback))
