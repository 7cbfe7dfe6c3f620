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
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, ParamSpec, TypeAlias, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from runplane.errors import RunExists, StoreClosed, StoreUnavailable
from runplane.lifecycle import FINISH_EVENTS
from runplane.models import (
    CheckpointWrite,
    ClaimedRun,
    Lease,
    NewRun,
    Run,
    RunStatus,
    Step,
    StoredCheckpoint,
    Thread,
    ThreadQuery,
)
from runplane.store import queries
from runplane.store import transactions as txs
from runplane.store.base import Created, OnActive, Signals
from runplane.store.batch import WriteBatcher
from runplane.store.rows import (
    BAD_ROW_ERRORS,
    dumps,
    run_from_row,
    step_from_row,
    thread_from_row,
    thread_values,
)
from runplane.store.sqlstore import SQLStore, Work

log = logging.getLogger("runplane.store.postgres")

#: A connection of the pool, as ``acquire`` lends it.
Connection: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"

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
# transactions                                                                 #
# --------------------------------------------------------------------------- #

_QUERIES = queries.load("postgres")


class _Tx:
    """:class:`runplane.store.transactions.Tx` on one pooled connection."""

    CONTENDED: tuple[type[Exception], ...] = (asyncpg.UniqueViolationError,)
    #: a value out of range for its column raises DataError when the claim writes it
    BAD_ROW: tuple[type[Exception], ...] = (asyncpg.DataError, *BAD_ROW_ERRORS)

    __slots__ = ("_conn", "_store")

    def __init__(self, conn: Connection, store: PostgresStore) -> None:
        self._conn = conn
        self._store = store

    async def row(self, query: str, *args: Any) -> asyncpg.Record | None:
        return await self._conn.fetchrow(_QUERIES[query], *args)

    async def rows(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self._conn.fetch(_QUERIES[query], *args)

    async def value(self, query: str, *args: Any) -> Any:
        return await self._conn.fetchval(_QUERIES[query], *args)

    async def execute(self, query: str, *args: Any) -> None:
        await self._conn.execute(_QUERIES[query], *args)

    async def script(self, sql: str) -> None:
        await self._conn.execute(sql)

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        return self._conn.transaction()  # nested in the open transaction: a savepoint

    async def signal_pending(self) -> None:
        await self.execute("notify", self._store.pending_channel, "")

    async def signal_cancel(self, run_id: str, generation: int | None) -> None:
        """Delivered on commit to the worker holding the revoked generation."""
        payload = run_id if generation is None else f"{run_id} {generation}"
        await self.execute("notify", self._store.cancel_channel, payload)

    async def signal_changed(self, run_id: str) -> None:
        await self.execute("notify", self._store.runs_channel, self._store.moved + run_id)


def _thread_filter(query: ThreadQuery) -> tuple[str, list[Any]]:
    """A WHERE clause over ``threads_with_status`` and its parameters, numbered from $1."""
    clauses, params = ["true"], []

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    for key, value in query.metadata.items():
        clauses.append(f"metadata -> {param(key)}::text = {param(dumps(value))}::jsonb")
    if query.status is not None:
        clauses.append(f"status = {param(query.status.value)}")
    if query.ids is not None:
        clauses.append(f"thread_id = ANY({param(query.ids)}::text[])")
    if query.owner is not None:
        clauses.append(f"owner = {param(query.owner)}")
    if query.matching is not None:
        clauses.append("EXISTS (SELECT 1 FROM jsonb_array_elements("
                       f"{param(dumps(list(query.matching)))}::jsonb) AS a(doc) "
                       "WHERE metadata @> a.doc)")
    return " AND ".join(clauses), params


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pool connections hold no session state to undo (no LISTEN, no SET, advisory locks
    are transaction-scoped), so skip asyncpg's reset round trip on every release."""


#: Batch claim failures one run can cause (a concurrent claim of a run of its thread, a
#: value out of range in its row: see BAD_ROW_ERRORS); the claim is then made run by run.
_CLAIM_BATCH_ERRORS: tuple[type[Exception], ...] = (*_Tx.CONTENDED, *_Tx.BAD_ROW)


async def _with_steps(conn: Connection, rows: list[asyncpg.Record]) -> list[ClaimedRun]:
    runs = [run_from_row(row) for row in rows]
    steps: dict[str, list[Step]] = {run.run_id: [] for run in runs}
    resumed = [run.run_id for run in runs if run.step_index]
    if resumed:
        for row in await conn.fetch(_QUERIES["steps_of_runs"], resumed):
            steps[row["run_id"]].append(step_from_row(row))
    return [ClaimedRun(run, steps[run.run_id]) for run in runs]


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


class PostgresStore(SQLStore):
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
        #: "run X moved" and "run X logged": payload ``<kind> <origin> <run id>``, where
        #: origin tells this store's own writes (which its process heard already) apart
        self.runs_channel = f"runplane_runs{suffix}"
        self._origin = uuid.uuid4().hex[:12]
        self.moved, self.logged = f"c {self._origin} ", f"e {self._origin} "
        self._listener: asyncio.Task[None] | None = None
        self._new_batchers()

    def _new_batchers(self) -> None:
        self._events = self._batcher("events", _QUERIES["append_events"], self.logged)
        self._steps = self._batcher("steps", _QUERIES["complete_steps"], self.logged)
        self._finishes = self._batcher("finishes", _QUERIES["finish_runs"], self.moved)
        self._creates = WriteBatcher("creates", self._create_threadless,
                                     key=lambda item: item[0], **_BATCH_ERRORS)
        self._checkpoints = self._fenced_batcher("checkpoints",
                                                 _QUERIES["put_checkpoints_batch"])
        self._writes = self._fenced_batcher("checkpoint-writes",
                                            _QUERIES["put_checkpoint_writes_batch"])

    def _batcher(self, name: str, sql: str, signal: str) -> WriteBatcher[tuple[Any, ...], bool]:
        """Group commit of one kind of workflow write: each item is one row of ``sql``'s
        ``unnest``, its run id first; the answer is whether the fence let it through. The
        statement signals each run it wrote on the runs channel, prefixed by ``signal``."""

        @_faults
        async def flush(self: PostgresStore, items: list[tuple[Any, ...]]) -> list[bool]:
            columns = [list(column) for column in zip(*items, strict=True)]
            rows = await self.pool.fetch(sql, *columns, self.runs_channel, signal)
            accepted = {r[0] for r in rows}
            return [item[0] in accepted for item in items]

        # a deadlock aborts the whole statement, so sending it again is safe
        return WriteBatcher(name, functools.partial(flush, self), key=lambda item: item[0],
                            **_BATCH_ERRORS)

    def _fenced_batcher(self, name: str, sql: str
                        ) -> WriteBatcher[tuple[str, list[tuple[Any, ...]]], bool]:
        """Group commit of a run's fenced checkpoint writes: each item is a run id and the
        rows it writes, each row ending with that run's fence; the answer is whether the
        fence let the run's rows through (``sql`` answers the runs it did)."""

        @_faults
        async def flush(self: PostgresStore, items: list[tuple[str, list[tuple[Any, ...]]]]
                        ) -> list[bool]:
            rows = [row for _, written in items for row in written]
            columns = [list(column) for column in zip(*rows, strict=True)]
            kept = {r[0] for r in await self.pool.fetch(sql, *columns)}
            return [run_id in kept for run_id, _ in items]

        return WriteBatcher(name, functools.partial(flush, self), key=lambda item: item[0],
                            **_BATCH_ERRORS)

    @_faults
    async def _create_threadless(self, items: list[tuple[Any, ...]]) -> list[Run | None]:
        """The runs created, None for a run whose id another run has."""
        columns = [list(column) for column in zip(*items, strict=True)]
        rows = await self.pool.fetch(_QUERIES["create_threadless"], *columns, self.pending_channel)
        runs = {row["run_id"]: run_from_row(row) for row in rows}
        return [runs.get(item[0]) for item in items]

    async def _transaction(self, work: Callable[[Connection], Awaitable[T]]) -> T:
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
        for batcher in (self._creates, self._events, self._steps, self._finishes,
                        self._checkpoints, self._writes):
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
        self.migrations_applied = await self._write(lambda tx: txs.migrate(
            tx, "postgres", f"runplane-migrate:{self.schema or ''}"))

    def _write(self, work: Work[T]) -> Awaitable[T]:
        return self._transaction(lambda conn: work(_Tx(conn, self)))

    async def _read(self, work: Work[T]) -> T:
        async with self.pool.acquire() as conn:
            return await work(_Tx(conn, self))

    async def listen(self, signals: Signals) -> None:
        """LISTEN on a connection of its own, reconnecting by itself when it drops.
        NOTIFY names what changed; ``signals.changed`` is called only when the listener
        (re)connects, for what it missed."""
        ready = asyncio.get_running_loop().create_future()
        self._listener = asyncio.create_task(self._listen(signals, ready),
                                             name="runplane-pg-listener")
        await ready

    def _on_runs(self, signals: Signals, payload: str) -> None:
        kind, origin, run_id = payload.split(" ", 2)
        if origin != self._origin:  # this process heard its own writes already
            (signals.run_changed if kind == "c" else signals.run_logged)(run_id)

    @staticmethod
    def _on_cancel(signals: Signals, payload: str) -> None:
        run_id, _, generation = payload.partition(" ")
        signals.run_cancelled(run_id, int(generation) if generation else None)

    async def _listen(self, signals: Signals, ready: asyncio.Future[None]) -> None:
        backoff = 0.1
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": self._listener_name}
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(self.pending_channel, lambda *_: signals.runs_pending())
                await conn.add_listener(self.cancel_channel,
                                        lambda *a: self._on_cancel(signals, a[3]))
                await conn.add_listener(self.runs_channel, lambda *a: self._on_runs(signals, a[3]))
                if not ready.done():
                    ready.set_result(None)
                signals.runs_pending()  # runs created while nobody listened
                signals.changed()  # and whatever moved meanwhile
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

    async def search_threads(self, query: ThreadQuery) -> list[Thread]:
        where, params = _thread_filter(query)
        order = "DESC" if query.descending else "ASC"
        n = len(params)
        rows = await self.pool.fetch(
            f"SELECT * FROM ({_QUERIES['threads_with_status']}) x WHERE {where} "
            f"ORDER BY {query.sort_by} {order}, thread_id {order} LIMIT ${n + 1} OFFSET ${n + 2}",
            *params, query.limit, query.offset,
        )
        return [thread_from_row(r) for r in rows]

    async def count_threads(self, query: ThreadQuery) -> int:
        where, params = _thread_filter(query)
        return await self.pool.fetchval(
            f"SELECT count(*) FROM ({_QUERIES['threads_with_status']}) x WHERE {where}",
            *params)

    async def create_run(
        self, new: NewRun, now: float, *, on_active: OnActive, create_thread: bool = False,
        own_thread_only: bool = False,
    ) -> Created:
        """Runs without a thread or on a thread made for them are inserted in batches
        (``create_threadless``); a run of an assistant made through the API is inserted
        alone, holding its assistant."""
        if (new.thread_id is not None and not new.new_thread) or new.workflow is not None:
            return await super().create_run(new, now, on_active=on_active,
                                             create_thread=create_thread,
                                             own_thread_only=own_thread_only)
        created_event = dumps({"assistant_id": new.assistant_id, "thread_id": new.thread_id})
        run = await self._creates.submit((
            new.run_id, new.assistant_id, dumps(new.input), dumps(new.metadata),
            new.multitask_strategy.value, now, new.max_attempts, new.timeout,
            new.root_run_id, new.parent_run_id, created_event, new.owner, dumps(new.kwargs),
            new.not_before, new.thread_id,
            None if new.thread_id is None else dumps(txs.new_thread_metadata(new))))
        if run is None:
            raise RunExists(new.run_id)
        return Created(run, [])

    async def claim_runs(
        self, owner: str, workflows: list[str], limit: int, lease_ttl: float, now: float,
        *, exclude: list[str] | None = None,
    ) -> list[ClaimedRun]:
        """One statement claims the batch (``claim_batch``); when one run makes it fail,
        the claim goes run by run."""
        expires = now + lease_ttl
        async with self.pool.acquire() as conn:
            # the steps of earlier attempts are read in the claim's transaction: a rollback
            # cancel committing in between cannot hand the worker a half-empty replay
            try:
                async with conn.transaction():
                    rows = await conn.fetch(_QUERIES["claim_batch"], workflows, owner, expires,
                                            now, limit, exclude or [])
                    return await _with_steps(conn, rows)
            except _CLAIM_BATCH_ERRORS:
                async with conn.transaction():
                    return await txs.claim_one_by_one(
                        _Tx(conn, self), owner, workflows, limit, expires, now, exclude or [])

    def append_event(
        self, run_id: str, event: str, data: Any, now: float, *, lease: Lease | None
    ) -> Awaitable[bool]:
        generation = None if lease is None else lease.generation
        values = thread_values(data) if event == "values" else data
        return self._events.submit((run_id, generation, now, event, dumps(data),
                                    None if values is data else dumps(values)))

    def complete_step(
        self, lease: Lease, index: int, name: str, result: Any, now: float
    ) -> Awaitable[bool]:
        return self._steps.submit(
            (lease.run_id, lease.generation, index, name, now, dumps(result)))

    async def finish_run(
        self, lease: Lease, status: RunStatus, output: Any, error: str | None, now: float,
        traceback: str | None = None, interrupts: dict[str, Any] | None = None,
    ) -> bool:
        success = status is RunStatus.SUCCESS
        data = {"output": output} if success else {"error": error}
        values = thread_values(output) if success else output
        return await self._finishes.submit((
            lease.run_id, lease.generation, status.value, dumps(output) if success else None,
            error, now, FINISH_EVENTS[status], dumps(data), traceback,
            None if values is output else dumps(values),
            None if interrupts is None else dumps(interrupts)))

    # A run's fenced checkpoint writes join their batcher's group commit with other runs'
    # writes (one statement for many, each row behind its own run's fence); a write without
    # a lease (a saver outside any run) takes the store-neutral transaction.
    async def put_checkpoint(
        self, checkpoint: StoredCheckpoint, now: float, *, lease: Lease | None
    ) -> bool:
        if lease is None:
            return await super().put_checkpoint(checkpoint, now, lease=lease)
        c = checkpoint
        return await self._checkpoints.submit((lease.run_id, [(
            c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.run_id,
            c.type, c.checkpoint, c.metadata, now, lease.run_id, lease.generation)]))

    async def put_checkpoint_writes(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str,
        writes: Sequence[CheckpointWrite], now: float, *, run_id: str | None,
        lease: Lease | None,
    ) -> bool:
        if lease is None or not writes:  # (no writes: the fence alone)
            return await super().put_checkpoint_writes(
                thread_id, checkpoint_ns, checkpoint_id, writes, now, run_id=run_id,
                lease=lease)
        # one row per key, as the writes one by one would leave it: a task's first write
        # at a key stays, a special channel's (negative idx) last one replaces it
        rows: dict[tuple[str, int], CheckpointWrite] = {}
        for w in writes:
            if w.idx < 0 or (w.task_id, w.idx) not in rows:
                rows[(w.task_id, w.idx)] = w
        return await self._writes.submit((lease.run_id, [
            (thread_id, checkpoint_ns, checkpoint_id, w.task_id, w.idx, w.task_path,
             w.channel, w.type, run_id, now, w.value, lease.run_id, lease.generation)
            for w in rows.values()]))


# Every call of the Store protocol raises a database gone away as StoreUnavailable (the
# workflow writes, which return futures, through their batchers' flush). ``listen`` keeps
# its own reconnecting loop; ``close`` has nothing left to tell.
for _name in dir(PostgresStore):
    _method = getattr(PostgresStore, _name)
    if not _name.startswith("_") and _name not in ("listen", "close") \
            and inspect.iscoroutinefunction(_method):
        setattr(PostgresStore, _name, _faults(_method))
