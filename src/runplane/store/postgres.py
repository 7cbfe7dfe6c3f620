"""The scale-out store: PostgreSQL through an asyncpg pool.

Same semantics as the SQLite store, made safe for many processes on many
hosts: claims lock with ``FOR UPDATE SKIP LOCKED``, multitask decisions lock
the thread row, and the partial unique index "one running run per thread" is
the last word. A workflow's writes (step result, event, completion) are each
one statement whose common table expressions fence, write and log together:
one round trip, one transaction.

The URL may carry ``?schema=NAME``: runplane then keeps its tables in that
schema (created if missing), so several deployments or test runs share a
database without colliding.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, ParamSpec, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

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
from runplane.store.batch import WriteBatcher
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

log = logging.getLogger("runplane.store.postgres")

T = TypeVar("T")
P = ParamSpec("P")

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
#: How often a transaction aborted by the deadlock detector is run again.
_DEADLOCK_RETRIES = 5
#: A deadlock aborted the whole statement: send it again. Any other error the server
#: answered rolled it back too, and may be one write's fault. (A lost connection is neither:
#: the statement may have committed.)
_BATCH_ERRORS: dict[str, Any] = {
    "retryable": (asyncpg.DeadlockDetectedError,),
    "retries": _DEADLOCK_RETRIES,
    "refused": (asyncpg.PostgresError,),
}
#: Errors that say the server could not answer, not that it refused the statement: the
#: connection was lost or refused, the server is shutting down or starting, out of
#: connection slots, or the client's connection is broken (asyncpg's InterfaceError). Not
#: a DataError (a bad argument is the caller's fault), nor a statement cancelled by
#: statement_timeout: it would fail again each time, and a run handed back for it would be
#: handed back for ever.
_UNAVAILABLE = (
    OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError, asyncpg.InterfaceError, asyncpg.InternalClientError,
)
#: How often an idle listener connection proves it is still alive.
_LISTEN_HEALTH_INTERVAL = 5.0


def _unavailable(exc: BaseException) -> bool:
    return isinstance(exc, _UNAVAILABLE) \
        and not isinstance(exc, asyncpg.DataError | asyncpg.QueryCanceledError)


def postgres_dsn(url: str) -> tuple[str, str | None]:
    """Split ``?schema=`` off a PostgreSQL URL: (dsn for asyncpg, schema or None)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ValueError(
            f"invalid schema name {schema!r}: up to 41 lower-case letters, digits or _"
        )
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


# --------------------------------------------------------------------------- #
# SQL                                                                          #
# --------------------------------------------------------------------------- #

_SELECT_THREAD = """
SELECT t.thread_id, t.created_at, t.updated_at, t.metadata::text AS metadata,
       t.values_json::text AS values_json, t.owner,
       EXISTS (SELECT 1 FROM runs r WHERE r.thread_id = t.thread_id
                AND r.status IN ('pending', 'running')) AS busy,
       (SELECT r.status FROM runs r WHERE r.thread_id = t.thread_id AND r.ended_at IS NOT NULL
         ORDER BY r.ended_at DESC, r.seq DESC LIMIT 1) AS last_status
  FROM threads t
"""

# jsonb comes back as text (asyncpg's default), decoded by store.rows like SQLite's.
_RUN_COLUMNS = """
run_id, thread_id, assistant_id, status, input::text AS input, output::text AS output, error,
metadata::text AS metadata, multitask_strategy, created_at, updated_at, started_at, ended_at,
attempt, max_attempts, timeout, deadline_at, lease_owner, lease_generation, lease_expires_at,
step_index, last_event_seq, pre_run_values::text AS pre_run_values, cancel_requested_at,
cancel_reason, cancel_action, cancel_requested_by, cancelled_generation, root_run_id,
parent_run_id, traceback, owner
"""

_SELECT_THREAD_STATUS = f"SELECT *, {THREAD_STATUS_SQL} AS status FROM ({_SELECT_THREAD}) t"


def _thread_filter(query: ThreadQuery) -> tuple[str, list[Any]]:
    """A WHERE clause (over _SELECT_THREAD_STATUS) and its parameters, numbered from $1."""
    clauses, params = ["true"], []

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    for key, value in query.metadata.items():
        clauses.append(f"metadata::jsonb -> {param(key)}::text = {param(dumps(value))}::jsonb")
    if query.status is not None:
        clauses.append(f"status = {param(query.status.value)}")
    if query.ids is not None:
        clauses.append(f"thread_id = ANY({param(query.ids)}::text[])")
    if query.owner is not None:
        clauses.append(f"owner = {param(query.owner)}")
    return " AND ".join(clauses), params


_INSERT_EVENT = """
INSERT INTO events (run_id, seq, event, data, created_at) VALUES ($1, $2, $3, $4::jsonb, $5)
"""

_INSERT_RUN = f"""
INSERT INTO runs (run_id, thread_id, assistant_id, status, input, metadata, multitask_strategy,
                  created_at, updated_at, max_attempts, timeout, root_run_id, parent_run_id,
                  last_event_seq, owner)
VALUES ($1, $2, $3, 'pending', $4::jsonb, $5::jsonb, $6, $7, $7, $8, $9, $10, $11, 1, $12)
RETURNING {_RUN_COLUMNS}
"""

# Thread-less runs have no multitask rule to apply: a batch of them is inserted, logged and
# signalled (one NOTIFY for all) in one statement.
_CREATE_THREADLESS = f"""
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                         $6::float8[], $7::int[], $8::float8[], $9::text[], $10::text[],
                         $11::text[], $12::text[])
        WITH ORDINALITY AS i(w_run, w_assistant, w_input, w_metadata, w_strategy, w_now,
                             w_max_attempts, w_timeout, w_root, w_parent, w_created, w_owner,
                             w_order)
), r AS (
    INSERT INTO runs (run_id, thread_id, assistant_id, status, input, metadata,
                      multitask_strategy, created_at, updated_at, max_attempts, timeout,
                      root_run_id, parent_run_id, last_event_seq, owner)
    SELECT w_run, NULL, w_assistant, 'pending', w_input::jsonb, w_metadata::jsonb, w_strategy,
           w_now, w_now, w_max_attempts, w_timeout, w_root, w_parent, 1, w_owner
      FROM i ORDER BY w_order
    RETURNING {_RUN_COLUMNS}
), e AS (
    INSERT INTO events (run_id, seq, event, data, created_at)
    SELECT r.run_id, 1, 'run:created', i.w_created::jsonb, i.w_now
      FROM r JOIN i ON i.w_run = r.run_id
)
SELECT r.* FROM r, (SELECT pg_notify($13, '')) AS signal
"""

_CANCEL = f"""
UPDATE runs
   SET status = 'interrupted',
       cancelled_generation = lease_generation,
       lease_generation = lease_generation + 1,
       cancel_requested_at = $2, cancel_reason = $3, cancel_action = $4,
       cancel_requested_by = $5,
       step_index = CASE WHEN $4 = 'rollback' THEN 0 ELSE step_index END,
       ended_at = $2, updated_at = $2,
       last_event_seq = last_event_seq + 1
 WHERE run_id = $1 AND status IN ('pending', 'running')
RETURNING {_RUN_COLUMNS}
"""

# Rollback restores the snapshot only while the thread's values are still this run's own
# writes: values a newer run wrote since are never overwritten with an older snapshot.
_ROLLBACK_VALUES = """
UPDATE threads SET values_json = $2::jsonb, values_run_id = NULL, updated_at = $3
 WHERE thread_id = $1 AND values_run_id = $4
"""

_RESUME = f"""
UPDATE runs
   SET status = 'pending', attempt = 0, ended_at = NULL, deadline_at = NULL,
       lease_owner = NULL, lease_expires_at = NULL,
       cancel_requested_at = NULL, cancel_reason = NULL, cancel_action = NULL,
       cancel_requested_by = NULL, updated_at = $2, last_event_seq = last_event_seq + 1
 WHERE run_id = $1 AND status = 'interrupted'
RETURNING {_RUN_COLUMNS}
"""

_CLAIMABLE_FROM = """
  FROM runs r
 WHERE r.status = 'pending'
   AND r.assistant_id = ANY({workflows}::text[])
   AND r.run_id <> ALL({exclude}::text[])
   AND (r.thread_id IS NULL OR (
        NOT EXISTS (SELECT 1 FROM runs x WHERE x.thread_id = r.thread_id AND x.status = 'running')
        AND NOT EXISTS (SELECT 1 FROM runs y WHERE y.thread_id = r.thread_id
                         AND y.status = 'pending' AND y.seq < r.seq)))
 ORDER BY r.seq
 LIMIT {limit}
   FOR UPDATE SKIP LOCKED
"""
_CLAIMABLE = "SELECT r.run_id" + _CLAIMABLE_FROM.format(workflows="$1", limit="$2", exclude="$3")

_CLAIM_SET = """
   SET status = 'running', lease_owner = $2, lease_generation = lease_generation + 1,
       lease_expires_at = $3, attempt = attempt + 1,
       started_at = COALESCE(started_at, $4), deadline_at = COALESCE(deadline_at, $4 + timeout),
       pre_run_values = (
           SELECT CASE WHEN runs.pre_run_values IS NOT NULL AND t.values_run_id = runs.run_id
                       THEN runs.pre_run_values ELSE t.values_json END
             FROM threads t WHERE t.thread_id = runs.thread_id),
       last_event_seq = last_event_seq + 1, updated_at = $4
"""

_CLAIM = f"""
UPDATE runs {_CLAIM_SET}
 WHERE run_id = $1 AND status = 'pending'
RETURNING {_RUN_COLUMNS}
"""

# The whole claim in one statement: lock, lease and log ``run:start``. Two runs of one thread
# never qualify together, but a concurrent claim can still meet the "one running run per
# thread" index: the statement then fails whole and claim_runs goes run by run.
_CLAIM_BATCH = f"""
WITH c AS (
    SELECT r.run_id AS c_run, r.seq AS c_seq
    {_CLAIMABLE_FROM.format(workflows="$1", limit="$5", exclude="$6")}
), u AS (
    UPDATE runs {_CLAIM_SET}
      FROM c WHERE runs.run_id = c.c_run
    RETURNING c.c_seq, {_RUN_COLUMNS.replace("run_id,", "runs.run_id,", 1)}
), e AS (
    INSERT INTO events (run_id, seq, event, data, created_at)
    SELECT run_id, last_event_seq, 'run:start',
           jsonb_build_object('attempt', attempt, 'worker', $2::text), $4
      FROM u
)
SELECT * FROM u ORDER BY c_seq
"""

# A pending run that cannot be claimed ends ``error`` without being started.
_FAIL_PENDING = """
UPDATE runs SET status = 'error', error = $2, ended_at = $3, updated_at = $3,
       last_event_seq = last_event_seq + 1
 WHERE run_id = $1 AND status = 'pending'
RETURNING last_event_seq
"""

_RENEW = """
WITH l AS (  -- lock the rows in creation order, as sweeps do: no lock-order deadlock
    SELECT r.run_id, r.lease_generation FROM runs r WHERE r.run_id = ANY($2::text[])
     ORDER BY r.seq FOR UPDATE OF r
)
UPDATE runs r SET lease_expires_at = $1
  FROM unnest($2::text[], $3::bigint[]) AS h(run_id, generation), l
 WHERE r.run_id = h.run_id AND l.run_id = h.run_id AND r.status = 'running'
   AND r.lease_generation = h.generation
RETURNING r.run_id, r.lease_generation
"""

# The cancel that stopped generation G left the run at G + 1; a later claim moves it on, and
# then the lease is someone else's to release.
_RELEASE = """
UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL
 WHERE run_id = $1 AND lease_generation = $2 + 1 AND status <> 'running'
"""

_EXPIRED = """
SELECT run_id, attempt, max_attempts, deadline_at, lease_owner FROM runs
 WHERE status = 'running' AND lease_expires_at < $1
   FOR UPDATE SKIP LOCKED
"""

_REAP = """
UPDATE runs
   SET status = $2, error = $3, lease_owner = NULL, lease_expires_at = NULL,
       lease_generation = lease_generation + 1,
       ended_at = CASE WHEN $2 = 'pending' THEN NULL ELSE $4 END,
       updated_at = $4, last_event_seq = last_event_seq + 1
 WHERE run_id = $1 AND status = 'running' AND lease_expires_at < $4
RETURNING last_event_seq
"""

_REQUEUE = """
UPDATE runs
   SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL,
       lease_generation = lease_generation + 1, attempt = GREATEST(attempt - 1, 0),
       updated_at = $3, last_event_seq = last_event_seq + $4
 WHERE run_id = $1 AND status = 'running' AND lease_generation = $2
RETURNING last_event_seq
"""

_STEP_STORED = "SELECT true FROM steps WHERE run_id = $1 AND idx = $2"

# Workflow writes arrive in batches (store.batch): one statement fences, writes and logs
# every write of a batch, one row of ``unnest`` per write and at most one per run; it
# answers the run ids whose write the fence let through.
# Every batch statement first locks its runs in creation order, as sweeps do (root, then the
# tree by seq): however a batch and a sweep overlap, they cannot deadlock.
_LOCK_BATCH_ROWS = """l AS (
    SELECT runs.run_id AS l_run FROM runs JOIN i ON runs.run_id = i.w_run
     ORDER BY runs.seq FOR UPDATE OF runs
)"""

_APPEND_EVENTS = f"""
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::text[], $5::text[])
        AS i(w_run, w_gen, w_now, w_event, w_data)
), {_LOCK_BATCH_ROWS}, r AS (
    UPDATE runs SET last_event_seq = last_event_seq + 1, updated_at = i.w_now
      FROM i JOIN l ON l.l_run = i.w_run
     WHERE runs.run_id = i.w_run
       AND (i.w_gen IS NULL OR (runs.status = 'running' AND runs.lease_generation = i.w_gen))
    RETURNING runs.run_id, runs.thread_id, runs.last_event_seq, i.*
), e AS (
    INSERT INTO events (run_id, seq, event, data, created_at)
    SELECT run_id, last_event_seq, w_event, w_data::jsonb, w_now FROM r
), t AS (
    UPDATE threads SET values_json = r.w_data::jsonb, values_run_id = r.run_id,
                       updated_at = r.w_now
      FROM r WHERE r.w_event = 'values' AND threads.thread_id = r.thread_id
)
SELECT run_id FROM r
"""

_COMPLETE_STEPS = f"""
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::int[], $4::text[], $5::float8[],
                         $6::text[]) AS i(w_run, w_gen, w_idx, w_name, w_now, w_result)
), {_LOCK_BATCH_ROWS}, r AS (
    UPDATE runs SET step_index = step_index + 1, last_event_seq = last_event_seq + 1,
                    updated_at = i.w_now
      FROM i JOIN l ON l.l_run = i.w_run
     WHERE runs.run_id = i.w_run AND runs.status = 'running'
       AND runs.lease_generation = i.w_gen AND runs.step_index = i.w_idx
    RETURNING runs.run_id, runs.last_event_seq, i.*
), s AS (
    INSERT INTO steps (run_id, idx, name, result, created_at)
    SELECT run_id, w_idx, w_name, w_result::jsonb, w_now FROM r
), e AS (
    INSERT INTO events (run_id, seq, event, data, created_at)
    SELECT run_id, last_event_seq, 'step:complete',
           jsonb_build_object('name', w_name, 'index', w_idx, 'result', w_result::jsonb), w_now
      FROM r
)
SELECT run_id FROM r
"""

_RECORD_STEP_CANCEL = """
WITH r AS (
    UPDATE runs SET last_event_seq = last_event_seq + 1, updated_at = $5
     WHERE run_id = $1 AND lease_generation = $2 + 1 AND status <> 'running'
       AND NOT EXISTS (SELECT 1 FROM steps s WHERE s.run_id = runs.run_id AND s.idx = $3)
    RETURNING run_id, last_event_seq
)
INSERT INTO events (run_id, seq, event, data, created_at)
SELECT run_id, last_event_seq, 'step:cancel',
       jsonb_build_object('name', $4::text, 'index', $3::int, 'reason', $6::text), $5
  FROM r
"""

_FINISH_RUNS = f"""
WITH i AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[],
                         $6::float8[], $7::text[], $8::text[], $9::text[])
        AS i(w_run, w_gen, w_status, w_output, w_error, w_now, w_event, w_data, w_traceback)
), {_LOCK_BATCH_ROWS}, r AS (
    UPDATE runs
       SET status = i.w_status, output = i.w_output::jsonb, error = i.w_error,
           traceback = i.w_traceback, ended_at = i.w_now, updated_at = i.w_now, lease_owner = NULL,
           lease_expires_at = NULL, last_event_seq = last_event_seq + 1
      FROM i JOIN l ON l.l_run = i.w_run
     WHERE runs.run_id = i.w_run AND runs.status = 'running' AND runs.lease_generation = i.w_gen
    RETURNING runs.run_id, runs.thread_id, runs.last_event_seq, i.*
), e AS (
    INSERT INTO events (run_id, seq, event, data, created_at)
    SELECT run_id, last_event_seq, w_event, w_data::jsonb, w_now FROM r
), t AS (
    UPDATE threads SET values_json = r.w_output::jsonb, values_run_id = r.run_id,
                       updated_at = r.w_now
      FROM r
     WHERE r.w_status = 'success' AND r.w_output::jsonb <> 'null'::jsonb
       AND threads.thread_id = r.thread_id
)
SELECT run_id FROM r
"""


# --------------------------------------------------------------------------- #
# transactions                                                                 #
# --------------------------------------------------------------------------- #


async def _get_run(conn: asyncpg.Connection, run_id: str, *, lock: bool = False) -> Run | None:
    row = await conn.fetchrow(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = $1" + (" FOR UPDATE" if lock else ""),
        run_id,
    )
    return None if row is None else run_from_row(row)


async def _cancel(
    conn: asyncpg.Connection, run_id: str, request: CancelRequest, now: float, channel: str
) -> Cancelled | None:
    current = await _get_run(conn, run_id, lock=True)
    if current is None:
        return None
    if current.status is RunStatus.INTERRUPTED:
        return Cancelled(CancelOutcome.ALREADY_INTERRUPTED, current)
    if not current.status.active:
        return Cancelled(CancelOutcome.ALREADY_FINISHED, current)
    row = await conn.fetchrow(
        _CANCEL, run_id, now, request.reason, request.action.value, request.requested_by
    )
    run = run_from_row(row)
    await conn.execute(_INSERT_EVENT, run_id, row["last_event_seq"], EventName.RUN_CANCEL,
                       dumps(cancel_event(request, current.status)), now)
    if request.action is CancelAction.ROLLBACK:
        await conn.execute("DELETE FROM steps WHERE run_id = $1", run_id)
        if run.thread_id is not None and row["pre_run_values"] is not None:
            await conn.execute(_ROLLBACK_VALUES, run.thread_id, row["pre_run_values"], now, run_id)
    # delivered on commit, to the worker holding the revoked generation
    await _notify(conn, channel, f"{run_id} {run.cancelled_generation or ''}".rstrip())
    return Cancelled(CancelOutcome.CANCELLED, run)


_ORPHANS = f"""
SELECT {_RUN_COLUMNS} FROM runs WHERE run_id IN (
    SELECT c.run_id FROM runs c
      JOIN runs p ON p.run_id = c.parent_run_id AND p.root_run_id = c.root_run_id
     WHERE c.status IN ('pending', 'running') AND p.status IN ('success', 'error', 'timeout')
) ORDER BY seq
"""


async def _insert_run(conn: asyncpg.Connection, new: NewRun, now: float) -> Run:
    row = await conn.fetchrow(
        _INSERT_RUN, new.run_id, new.thread_id, new.assistant_id, dumps(new.input),
        dumps(new.metadata), new.multitask_strategy.value, now, new.max_attempts,
        new.timeout, new.root_run_id, new.parent_run_id, new.owner,
    )
    created = dumps({"assistant_id": new.assistant_id, "thread_id": new.thread_id})
    await conn.execute(_INSERT_EVENT, new.run_id, 1, EventName.RUN_CREATED, created, now)
    return run_from_row(row)


async def _tree(conn: asyncpg.Connection, root_run_id: str, *, lock: bool = False) -> list[Run]:
    rows = await conn.fetch(
        f"SELECT {_RUN_COLUMNS} FROM runs WHERE root_run_id = $1 ORDER BY seq"
        + (" FOR UPDATE" if lock else ""), root_run_id)
    return [run_from_row(r) for r in rows]


async def _sweep(
    conn: asyncpg.Connection, run_id: str, request: CancelRequest, now: float, channel: str,
    *, whole_tree: bool,
) -> Swept | None:
    run = await _get_run(conn, run_id)
    if run is None:
        return None
    # The root's row orders sweeps and spawns: a spawn holds it (FOR KEY SHARE) until it
    # commits, a sweep takes it FOR UPDATE before reading the tree. Once a sweep holds it,
    # no spawn is in flight in this tree and none can start, so one read sees every run.
    await conn.execute("SELECT 1 FROM runs WHERE run_id = $1 FOR UPDATE", run.root_run_id)
    tree = await _tree(conn, run.root_run_id, lock=True)
    if not any(r.run_id == run_id for r in tree):  # deleted meanwhile
        return None
    done = []
    for k, rid in enumerate(sweep_order(tree, run_id, whole_tree=whole_tree)):
        done.append(await _cancel(conn, rid, request, now + k * SWEEP_TICK, channel))
    remaining = await conn.fetchval(
        "SELECT count(*) FROM runs WHERE root_run_id = $1 AND status IN ('pending', 'running')",
        run.root_run_id)
    results = [c for c in done if c is not None]
    target = next(c for c in results if c.run.run_id == run_id)
    return Swept(target, results, run.root_run_id, remaining)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool connections hold no session state to undo (no LISTEN, no SET, advisory locks
    are transaction-scoped), so skip asyncpg's reset round trip on every release."""


async def _notify(conn: asyncpg.Connection, channel: str, payload: str = "") -> None:
    await conn.execute("SELECT pg_notify($1, $2)", channel, payload)


async def _insert_thread(
    conn: asyncpg.Connection, thread_id: str, metadata: dict[str, Any], now: float,
    owner: str | None,
) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO threads (thread_id, created_at, updated_at, metadata, owner) "
        "VALUES ($1, $2, $2, $3::jsonb, $4) ON CONFLICT (thread_id) DO NOTHING RETURNING true",
        thread_id, now, dumps(metadata), owner,
    )
    return bool(inserted)


_SELECT_STEPS = "SELECT run_id, idx, name, result::text AS result, created_at FROM steps"


#: Batch claim failures one run can cause (a concurrent claim of a run of its thread, a
#: value out of range in its row: see BAD_ROW_ERRORS); the claim is then made run by run.
_CLAIM_BATCH_ERRORS = (asyncpg.UniqueViolationError, asyncpg.DataError, *BAD_ROW_ERRORS)


async def _claim_one_by_one(
    conn: asyncpg.Connection, workflows: list[str], owner: str, expires: float, now: float,
    limit: int, exclude: list[str],
) -> list[ClaimedRun]:
    """The claim with a savepoint per run, for when the batch statement failed: the runs
    it can take are taken; one a concurrent claim met the one running run per thread index
    on is left pending, one whose row cannot be claimed or decoded is ended ``error``."""
    claimed = []
    for record in await conn.fetch(_CLAIMABLE, workflows, limit, exclude):
        try:
            async with conn.transaction():
                row = await conn.fetchrow(_CLAIM, record[0], owner, expires, now)
                run = run_from_row(row)
                steps = await _get_steps(conn, run.run_id) if run.step_index else []
        except asyncpg.UniqueViolationError:
            continue  # another worker started a run of this thread meanwhile
        except (asyncpg.DataError, *BAD_ROW_ERRORS) as exc:
            await _fail_unclaimable(conn, record[0], exc, now)
            continue
        await conn.execute(_INSERT_EVENT, run.run_id, row["last_event_seq"], EventName.RUN_START,
                           dumps({"attempt": run.attempt, "worker": owner}), now)
        claimed.append(ClaimedRun(run, steps))
    return claimed


async def _fail_unclaimable(
    conn: asyncpg.Connection, run_id: str, exc: Exception, now: float
) -> None:
    error = unclaimable_error(exc)
    log.warning("run %s ended error: %s", run_id, error)
    seq = await conn.fetchval(_FAIL_PENDING, run_id, error, now)
    if seq is not None:
        await conn.execute(_INSERT_EVENT, run_id, seq, EventName.RUN_FAIL,
                           dumps({"error": error}), now)


async def _with_steps(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[ClaimedRun]:
    runs = [run_from_row(row) for row in rows]
    steps: dict[str, list[Step]] = {run.run_id: [] for run in runs}
    resumed = [run.run_id for run in runs if run.step_index]
    if resumed:
        for row in await conn.fetch(
            f"{_SELECT_STEPS} WHERE run_id = ANY($1::text[]) ORDER BY run_id, idx", resumed
        ):
            steps[row["run_id"]].append(step_from_row(row))
    return [ClaimedRun(run, steps[run.run_id]) for run in runs]


async def _get_steps(conn: asyncpg.Connection, run_id: str) -> list[Step]:
    rows = await conn.fetch(f"{_SELECT_STEPS} WHERE run_id = $1 ORDER BY idx", run_id)
    return [step_from_row(r) for r in rows]


def _faults(
    method: Callable[P, Awaitable[T]],
) -> Callable[P, Awaitable[T]]:
    """Raise the database's going away as StoreUnavailable (see ``PostgresStore._fault``)."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        store: PostgresStore = args[0]  # type: ignore[assignment]
        try:
            result = await method(*args, **kwargs)
        except Exception as exc:
            fault = await store._fault(exc)
            if fault is exc:
                raise
            raise fault from exc
        if store._away:
            store._away = False
            log.warning("PostgreSQL answers again")
        return result

    return call


class PostgresStore:
    """:class:`runplane.store.base.Store` on PostgreSQL (many API nodes and workers)."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self._dsn, self.schema = postgres_dsn(url)
        self._min_size = min_size
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        #: the last call met an outage (logged once; its end is logged too)
        self._away = False
        suffix = f"_{self.schema}" if self.schema else ""
        self.pending_channel = f"runplane_pending{suffix}"
        self.cancel_channel = f"runplane_cancel{suffix}"
        self._listener: asyncio.Task[None] | None = None
        self._new_batchers()

    def _new_batchers(self) -> None:
        self._events = self._batcher("events", _APPEND_EVENTS)
        self._steps = self._batcher("steps", _COMPLETE_STEPS)
        self._finishes = self._batcher("finishes", _FINISH_RUNS)
        self._creates = WriteBatcher("creates", self._create_threadless,
                                     key=lambda item: item[0], **_BATCH_ERRORS)

    def _batcher(self, name: str, sql: str) -> WriteBatcher[tuple[Any, ...], bool]:
        """Group commit of one kind of workflow write: each item is one row of ``sql``'s
        ``unnest``, its run id first; the answer is whether the fence let it through."""

        @_faults
        async def flush(self: PostgresStore, items: list[tuple[Any, ...]]) -> list[bool]:
            columns = [list(column) for column in zip(*items, strict=True)]
            accepted = {r[0] for r in await self.pool.fetch(sql, *columns)}
            return [item[0] in accepted for item in items]

        # a deadlock aborts the whole statement, so sending it again is safe
        return WriteBatcher(name, functools.partial(flush, self), key=lambda item: item[0],
                            **_BATCH_ERRORS)

    @_faults
    async def _create_threadless(self, items: list[tuple[Any, ...]]) -> list[Run]:
        columns = [list(column) for column in zip(*items, strict=True)]
        rows = await self.pool.fetch(_CREATE_THREADLESS, *columns, self.pending_channel)
        runs = {row["run_id"]: run_from_row(row) for row in rows}
        return [runs[item[0]] for item in items]

    async def _transaction(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction, again if PostgreSQL broke a deadlock by aborting it.

        Multitask creation locks a thread, then its runs; a worker's completion locks a
        run, then its thread. When the two cross, the server aborts one of them whole.
        """
        for attempt in range(_DEADLOCK_RETRIES + 1):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    return await work(conn)
            except asyncpg.DeadlockDetectedError:
                if attempt == _DEADLOCK_RETRIES:
                    raise
                log.info("transaction aborted to break a deadlock; running it again")
                await asyncio.sleep(0.001 * 2 ** attempt)
        raise AssertionError("unreachable")

    async def _fault(self, exc: Exception) -> Exception:
        """The one place that tells a database gone away (StoreUnavailable) from a statement
        it refused. A lost connection may mean a restarted server: every pooled connection
        is then replaced on its next use rather than failing one request each."""
        if not _unavailable(exc):
            return exc
        if self._pool is not None:  # open: the caller says it could not open, once
            await self._pool.expire_connections()
            if not self._away:  # once per outage, not once per call
                log.warning("PostgreSQL unavailable: %s: %s", type(exc).__name__, exc)
            self._away = True
        return StoreUnavailable(exc)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreClosed("the PostgreSQL store is closed")
        return self._pool

    async def open(self) -> None:
        self._new_batchers()
        settings = {"search_path": self.schema} if self.schema else {}
        if self.schema:
            conn = await asyncpg.connect(self._dsn)
            try:
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            except asyncpg.UniqueViolationError:  # created by a concurrent process
                pass
            finally:
                await conn.close()
        self._pool = await asyncpg.create_pool(
            self._dsn, min_size=self._min_size, max_size=self._max_size,
            server_settings=settings, reset=_keep_session,
        )
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for batcher in (self._creates, self._events, self._steps, self._finishes):
            await batcher.close()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _migrate(self) -> None:
        folder = resources.files("runplane.store") / "migrations" / "postgres"
        async with self.pool.acquire() as conn, conn.transaction():
            # One process migrates at a time; the others then find nothing left to do.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))",
                               f"runplane-migrate:{self.schema or ''}")
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                               "(version text PRIMARY KEY, applied_at timestamptz NOT NULL)")
            applied = {r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for item in sorted(folder.iterdir(), key=lambda p: p.name):
                if item.name.endswith(".sql") and item.name not in applied:
                    await conn.execute(item.read_text())
                    await conn.execute("INSERT INTO schema_migrations VALUES ($1, now())",
                                       item.name)

    async def listen(
        self,
        on_pending: Callable[[], None],
        on_cancel: Callable[[str, int | None], None],
        on_change: Callable[[], None] | None = None,
    ) -> None:
        """LISTEN on a connection of its own, reconnecting by itself when it drops.
        (NOTIFY names what changed, so ``on_change`` is never called.)"""

        def cancelled(payload: str) -> None:
            run_id, _, generation = payload.partition(" ")
            on_cancel(run_id, int(generation) if generation else None)

        ready = asyncio.get_running_loop().create_future()
        self._listener = asyncio.create_task(
            self._listen(on_pending, cancelled, ready), name="runplane-pg-listener"
        )
        await ready

    async def _listen(
        self, on_pending: Callable[[], None], on_cancel: Callable[[str], None],
        ready: asyncio.Future[None],
    ) -> None:
        backoff = 0.1
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": self._listener_name}
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(self.pending_channel, lambda *_: on_pending())
                await conn.add_listener(self.cancel_channel, lambda *a: on_cancel(a[3]))
                if not ready.done():
                    ready.set_result(None)
                on_pending()  # runs created while nobody listened
                backoff = 0.1
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_LISTEN_HEALTH_INTERVAL):
                            await lost.wait()
                    if not lost.is_set():
                        await conn.fetchval("SELECT 1", timeout=_LISTEN_HEALTH_INTERVAL)
                log.warning("PostgreSQL listener connection lost; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("PostgreSQL listener failed (%s); retrying in %.1fs", exc, backoff)
                if not ready.done():
                    ready.set_result(None)  # polling covers us until the listener is back
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if conn is not None and not conn.is_closed():
                    conn.terminate()

    @property
    def _listener_name(self) -> str:
        return f"runplane-listen:{self.schema or 'public'}"

    # threads
    async def create_thread(
        self, thread_id: str, metadata: dict[str, Any], now: float, *, if_exists: str,
        owner: str | None = None,
    ) -> Thread:
        async with self.pool.acquire() as conn, conn.transaction():
            if not await _insert_thread(conn, thread_id, metadata, now, owner) \
                    and if_exists == "raise":
                raise ThreadExists(thread_id)
            row = await conn.fetchrow(_SELECT_THREAD + " WHERE t.thread_id = $1", thread_id)
            return thread_from_row(row)

    async def get_thread(self, thread_id: str) -> Thread | None:
        row = await self.pool.fetchrow(_SELECT_THREAD + " WHERE t.thread_id = $1", thread_id)
        return None if row is None else thread_from_row(row)

    async def search_threads(self, query: ThreadQuery) -> list[Thread]:
        where, params = _thread_filter(query)
        order = "DESC" if query.descending else "ASC"
        n = len(params)
        rows = await self.pool.fetch(
            f"SELECT * FROM ({_SELECT_THREAD_STATUS}) x WHERE {where} "
            f"ORDER BY {query.sort_by} {order}, thread_id {order} LIMIT ${n + 1} OFFSET ${n + 2}",
            *params, query.limit, query.offset,
        )
        return [thread_from_row(r) for r in rows]

    async def count_threads(self, query: ThreadQuery) -> int:
        where, params = _thread_filter(query)
        return await self.pool.fetchval(
            f"SELECT count(*) FROM ({_SELECT_THREAD_STATUS}) x WHERE {where}", *params)

    async def update_thread(
        self, thread_id: str, metadata: dict[str, Any], now: float
    ) -> Thread | None:
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await conn.fetchval(
                "SELECT metadata::text FROM threads WHERE thread_id = $1 FOR UPDATE", thread_id)
            if stored is None:
                return None
            await conn.execute(
                "UPDATE threads SET metadata = $2::jsonb, updated_at = $3 WHERE thread_id = $1",
                thread_id, dumps(merge_metadata(stored, metadata)), now)
            row = await conn.fetchrow(_SELECT_THREAD + " WHERE t.thread_id = $1", thread_id)
            return thread_from_row(row)

    async def delete_thread(self, thread_id: str) -> bool:
        deleted = await self.pool.fetchval(
            "DELETE FROM threads WHERE thread_id = $1 RETURNING true", thread_id)
        return bool(deleted)

    # runs, service side
    async def create_run(
        self, new: NewRun, now: float, *, on_active: OnActive, create_thread: bool = False,
        own_thread_only: bool = False,
    ) -> Created:
        created_event = dumps({"assistant_id": new.assistant_id, "thread_id": new.thread_id})
        if new.thread_id is None:
            run = await self._creates.submit((
                new.run_id, new.assistant_id, dumps(new.input), dumps(new.metadata),
                new.multitask_strategy.value, now, new.max_attempts, new.timeout,
                new.root_run_id, new.parent_run_id, created_event, new.owner))
            return Created(run, [])
        thread_id = new.thread_id

        async def create(conn: asyncpg.Connection) -> Created:
            cancelled: list[Run] = []
            if create_thread:
                await _insert_thread(conn, thread_id, {}, now, new.owner)
            # the thread's row lock serialises multitask decisions on that thread
            locked = await conn.fetchrow(
                "SELECT owner FROM threads WHERE thread_id = $1 FOR UPDATE", thread_id
            )
            if locked is None:
                raise ThreadNotFound(thread_id)
            run_new = thread_run(new, locked["owner"], own_thread_only)
            active = [r[0] for r in await conn.fetch(
                "SELECT run_id FROM runs WHERE thread_id = $1 "
                "AND status IN ('pending', 'running') ORDER BY seq", thread_id)]
            if active and on_active == "reject":
                raise ThreadBusy(thread_id, active)
            if active and isinstance(on_active, CancelRequest):
                for run_id in active:  # with its attached children, which would outlive it
                    swept = await _sweep(conn, run_id, on_active, now, self.cancel_channel,
                                         whole_tree=False)
                    if swept is not None:
                        cancelled += [c.run for c in swept.runs
                                      if c.outcome is CancelOutcome.CANCELLED]
            run = await _insert_run(conn, run_new, now)
            await _notify(conn, self.pending_channel)
            return Created(run, cancelled)

        return await self._transaction(create)

    async def get_run(self, run_id: str) -> Run | None:
        async with self.pool.acquire() as conn:
            return await _get_run(conn, run_id)

    async def list_runs(
        self, *, thread_id: str | None, status: RunStatus | None, limit: int, offset: int,
        owner: str | None = None,
    ) -> list[Run]:
        rows = await self.pool.fetch(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE ($1::text IS NULL OR thread_id = $1) "
            "AND ($2::text IS NULL OR status = $2) AND ($5::text IS NULL OR owner = $5) "
            "ORDER BY seq DESC LIMIT $3 OFFSET $4",
            thread_id, status.value if status else None, limit, offset, owner,
        )
        return [run_from_row(r) for r in rows]

    async def cancel_runs(
        self, run_id: str, request: CancelRequest, now: float, *, whole_tree: bool
    ) -> Swept | None:
        return await self._transaction(lambda conn: _sweep(
            conn, run_id, request, now, self.cancel_channel, whole_tree=whole_tree))

    async def spawn_run(self, parent: Lease, new: NewRun, now: float) -> Run | None:
        async def spawn(conn: asyncpg.Connection) -> Run | None:
            # the root's row orders this spawn against any sweep of the parent's tree
            # (see _sweep); root first, then the parent, as a sweep locks them
            holder = await _get_run(conn, parent.run_id)
            if holder is not None:
                await conn.execute("SELECT 1 FROM runs WHERE run_id = $1 FOR KEY SHARE",
                                   holder.root_run_id)
                holder = await _get_run(conn, parent.run_id, lock=True)
            existing = await _get_run(conn, new.run_id)
            if existing is not None or holder is None:
                return existing
            child = spawned_by(new, holder)
            if holder.status is RunStatus.RUNNING and \
                    holder.lease_generation == parent.generation:
                run = await _insert_run(conn, child, now)
                await _notify(conn, self.pending_channel)
                return run
            if holder.status is RunStatus.INTERRUPTED and \
                    holder.cancelled_generation == parent.generation:
                await _insert_run(conn, child, now)
                done = await _cancel(conn, new.run_id, spawned_under_cancel(holder), now,
                                     self.cancel_channel)
                return None if done is None else done.run
            return None

        return await self._transaction(spawn)

    async def get_tree(self, root_run_id: str) -> list[Run]:
        async with self.pool.acquire() as conn:
            return await _tree(conn, root_run_id)

    async def orphaned_runs(self) -> list[Run]:
        return [run_from_row(r) for r in await self.pool.fetch(_ORPHANS)]

    async def delete_run(self, run_id: str) -> Run:
        async with self.pool.acquire() as conn, conn.transaction():
            current = await _get_run(conn, run_id, lock=True)
            if current is None:
                raise RunNotFound(run_id)
            if current.status.active:
                raise RunConflict(run_id, current.status.value, delete_conflict(current))
            await conn.execute("DELETE FROM runs WHERE run_id = $1", run_id)
            return current

    async def resume_run(self, run_id: str, now: float) -> Run:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_RESUME, run_id, now)
            if row is None:
                current = await _get_run(conn, run_id)
                if current is None:
                    raise RunNotFound(run_id)
                raise RunConflict(run_id, current.status.value,
                                  f"run {run_id!r} is {current.status.value}; "
                                  "only an interrupted run can be resumed")
            await conn.execute(_INSERT_EVENT, run_id, row["last_event_seq"], EventName.RUN_RESUME,
                               dumps({"reason": "resumed", "step_index": row["step_index"]}), now)
            await _notify(conn, self.pending_channel)
            return run_from_row(row)

    async def run_marks(self, run_ids: list[str]) -> dict[str, tuple[Any, ...]]:
        rows = await self.pool.fetch(
            "SELECT run_id, status, lease_owner, last_event_seq FROM runs "
            "WHERE run_id = ANY($1::text[])", run_ids
        )
        return {r[0]: tuple(r[1:]) for r in rows}

    async def get_steps(self, run_id: str) -> list[Step]:
        async with self.pool.acquire() as conn:
            return await _get_steps(conn, run_id)

    async def get_events(self, run_id: str, *, after_seq: int = 0) -> list[Event]:
        rows = await self.pool.fetch(
            "SELECT run_id, seq, event, data::text AS data, created_at FROM events "
            "WHERE run_id = $1 AND seq > $2 ORDER BY seq",
            run_id, after_seq,
        )
        return [event_from_row(r) for r in rows]

    # runs, worker side
    async def claim_runs(
        self, owner: str, workflows: list[str], limit: int, lease_ttl: float, now: float,
        *, exclude: list[str] | None = None,
    ) -> list[ClaimedRun]:
        args = (workflows, owner, now + lease_ttl, now, limit, exclude or [])
        async with self.pool.acquire() as conn:
            # the steps of earlier attempts are read in the claim's transaction: a rollback
            # cancel committing in between cannot hand the worker a half-empty replay
            try:
                async with conn.transaction():
                    rows = await conn.fetch(_CLAIM_BATCH, *args)
                    return await _with_steps(conn, rows)
            except _CLAIM_BATCH_ERRORS:
                async with conn.transaction():
                    return await _claim_one_by_one(conn, *args)

    async def renew_leases(self, leases: list[Lease], lease_ttl: float, now: float) -> list[str]:
        rows = await self.pool.fetch(
            _RENEW, now + lease_ttl, [x.run_id for x in leases], [x.generation for x in leases]
        )
        renewed = {(r[0], r[1]) for r in rows}
        return [x.run_id for x in leases if (x.run_id, x.generation) not in renewed]

    async def lost_leases(self, leases: list[Lease]) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT run_id, lease_generation FROM runs "
            "WHERE run_id = ANY($1::text[]) AND status = 'running'",
            [x.run_id for x in leases],
        )
        held = {r[0]: r[1] for r in rows}
        return [x.run_id for x in leases if held.get(x.run_id) != x.generation]

    async def release_lease(self, lease: Lease) -> None:
        await self.pool.execute(_RELEASE, lease.run_id, lease.generation)

    async def requeue_run(
        self, lease: Lease, reason: str, now: float, *, in_flight: tuple[int, str] | None = None
    ) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            if in_flight is not None and await conn.fetchval(_STEP_STORED, lease.run_id,
                                                             in_flight[0]):
                in_flight = None  # its write failed late, after the commit: it is no loss
            events = 1 if in_flight is None else 2
            seq = await conn.fetchval(_REQUEUE, lease.run_id, lease.generation, now, events)
            if seq is None:
                return False
            if in_flight is not None:
                await conn.execute(
                    _INSERT_EVENT, lease.run_id, seq - 1, EventName.STEP_CANCEL,
                    dumps({"index": in_flight[0], "name": in_flight[1], "reason": reason}), now)
            await conn.execute(_INSERT_EVENT, lease.run_id, seq, EventName.RUN_RESUME,
                               dumps({"reason": reason}), now)
            await _notify(conn, self.pending_channel)
            return True

    async def reap_expired(self, now: float) -> list[Reaped]:
        reaped = []
        async with self.pool.acquire() as conn, conn.transaction():
            for r in await conn.fetch(_EXPIRED, now):
                status, error, event = reap_decision(
                    r["attempt"], r["max_attempts"], r["deadline_at"], now
                )
                seq = await conn.fetchval(_REAP, r["run_id"], status.value, error, now)
                if seq is None:
                    continue
                data = {"reason": "lease_expired", "attempt": r["attempt"],
                        "worker": r["lease_owner"]}
                if error:
                    data["error"] = error
                await conn.execute(_INSERT_EVENT, r["run_id"], seq, event, dumps(data), now)
                reaped.append(Reaped(r["run_id"], status))
            if any(x.status is RunStatus.PENDING for x in reaped):
                await _notify(conn, self.pending_channel)
        return reaped

    def append_event(
        self, run_id: str, event: str, data: Any, now: float, *, lease: Lease | None
    ) -> Awaitable[bool]:
        generation = None if lease is None else lease.generation
        return self._events.submit((run_id, generation, now, event, dumps(data)))

    def complete_step(
        self, lease: Lease, index: int, name: str, result: Any, now: float
    ) -> Awaitable[bool]:
        return self._steps.submit(
            (lease.run_id, lease.generation, index, name, now, dumps(result)))

    async def record_step_cancel(
        self, lease: Lease, index: int, name: str, reason: str, now: float
    ) -> None:
        await self.pool.execute(
            _RECORD_STEP_CANCEL, lease.run_id, lease.generation, index, name, now, reason
        )

    async def finish_run(
        self, lease: Lease, status: RunStatus, output: Any, error: str | None, now: float,
        traceback: str | None = None,
    ) -> bool:
        success = status is RunStatus.SUCCESS
        data = {"output": output} if success else {"error": error}
        return await self._finishes.submit((
            lease.run_id, lease.generation, status.value, dumps(output) if success else None,
            error, now, FINISH_EVENTS[status], dumps(data), traceback))


# Every call of the Store protocol raises a database gone away as StoreUnavailable (the
# workflow writes, which return futures, through their batchers' flush). ``listen`` keeps
# its own reconnecting loop; ``close`` has nothing left to tell.
for _name, _method in list(vars(PostgresStore).items()):
    if not _name.startswith("_") and _name not in ("listen", "close") \
            and inspect.iscoroutinefunction(_method):
        setattr(PostgresStore, _name, _faults(_method))
