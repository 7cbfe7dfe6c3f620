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
import json
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from runplane.errors import StoreClosed, StoreUnavailable
from runplane.lifecycle import FINISH_EVENTS, EventName
from runplane.models import Lease, RunStatus, Thread, ThreadQuery, contains_any
from runplane.store import queries
from runplane.store.base import Signals
from runplane.store.rows import BAD_ROW_ERRORS, dumps, thread_from_row, thread_values
from runplane.store.sqlstore import SQLStore, Work
from runplane.store.transactions import drive, migrate

T = TypeVar("T")

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
                closed: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = [
                    (op.future, None, StoreClosed("the SQLite store is closed"))]
                op.loop.call_soon_threadsafe(_deliver, closed)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.create_function("json_contains_any", 2, _json_contains_any, deterministic=True)
        if self._path != ":memory:":
            self._enable_wal(conn)
        conn.execute(_QUERIES["synchronous_normal"])
        conn.execute(_QUERIES["foreign_keys_on"])
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switching a new file to WAL takes an exclusive lock that SQLite's busy handler
        does not wait for; processes opening one file together retry here."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                conn.execute(_QUERIES["journal_mode_wal"])
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
            version = conn.execute(_QUERIES["data_version"]).fetchone()[0]
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
# transactions                                                                 #
# --------------------------------------------------------------------------- #

_QUERIES = queries.load("sqlite")
#: The parameters each statement reads as a JSON array (``json_each(?N)``), by position: a
#: list passed there is sent as JSON text.
_ARRAYS = {name: frozenset(int(n) for n in re.findall(r"json_each\(\?(\d+)\)", sql))
           for name, sql in _QUERIES.items()}


def _execute(conn: sqlite3.Connection, query: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
    if _ARRAYS[query]:
        args = tuple(dumps(a) if k in _ARRAYS[query] else a for k, a in enumerate(args, 1))
    return conn.execute(_QUERIES[query], args)


class _Tx:
    """:class:`runplane.store.transactions.Tx` on the connection thread's connection:
    every call runs to its end without suspending (see ``transactions.drive``)."""

    CONTENDED: tuple[type[Exception], ...] = ()
    BAD_ROW = BAD_ROW_ERRORS

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def row(self, query: str, *args: Any) -> dict[str, Any] | None:
        """A dict: a run's decoder reads some thirty columns by name, which a dict answers
        faster than a sqlite3.Row (a case-insensitive search of its columns)."""
        row = _execute(self._conn, query, args).fetchone()
        return None if row is None else dict(zip(row.keys(), row))  # noqa: B905 (a row and its own keys)

    async def rows(self, query: str, *args: Any) -> list[sqlite3.Row]:
        """As they come: a long list (a poll of every watched run) is not copied."""
        return _execute(self._conn, query, args).fetchall()

    async def value(self, query: str, *args: Any) -> Any:
        return _value(self._conn, query, *args)

    async def execute(self, query: str, *args: Any) -> None:
        _execute(self._conn, query, args)

    async def script(self, sql: str) -> None:
        for statement in _statements(sql):
            self._conn.execute(statement)

    def savepoint(self) -> _Savepoint:
        return _Savepoint(self._conn)

    async def signal_pending(self) -> None:
        """Nothing to send: this process's notifier hears its own writes, other processes
        notice the commit (see the module docstring)."""

    async def signal_cancel(self, run_id: str, generation: int | None) -> None:
        """As :meth:`signal_pending`."""

    async def signal_changed(self, run_id: str) -> None:
        """As :meth:`signal_pending`."""


class _Savepoint:
    """A nested transaction of the connection thread (a class, not a generator: the claim
    opens one per run)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def __aenter__(self) -> None:
        self._conn.execute("SAVEPOINT tx")

    async def __aexit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            self._conn.execute("ROLLBACK TO tx")
        self._conn.execute("RELEASE tx")


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


# The workflow writes, one at a time: plain functions of the connection thread, the hot path
# of every run (PostgreSQL sends the same writes in batches, each kind one statement of its
# SQL file).


def _value(conn: sqlite3.Connection, query: str, *args: Any) -> Any:
    row = _execute(conn, query, args).fetchone()
    return None if row is None else row[0]


def _append_event(
    conn: sqlite3.Connection, run_id: str, event: str, data: Any, now: float,
    lease: Lease | None,
) -> bool:
    """Append an event, fenced by ``lease`` if given; ``values`` also sets the thread's."""
    if lease is None:
        row = _execute(conn, "next_event_seq", (run_id, now)).fetchone()
    else:
        row = _execute(conn, "next_event_seq_fenced", (run_id, now, lease.generation)).fetchone()
    if row is None:
        return False
    encoded = dumps(data)
    _execute(conn, "insert_event", (run_id, row["last_event_seq"], event, encoded, now))
    if event == "values" and row["thread_id"] is not None and \
            (values := thread_values(data)) is not None:
        _execute(conn, "set_values", (row["thread_id"], encoded if values is data
                                      else dumps(values), run_id, now))
    return True


def _complete_step(
    conn: sqlite3.Connection, lease: Lease, index: int, name: str, result: Any, now: float
) -> bool:
    """Store a step's result, advance the step index and log ``step:complete``."""
    seq = _value(conn, "complete_step", lease.run_id, lease.generation, index, now)
    if seq is None:
        return False
    encoded = dumps(result)
    _execute(conn, "insert_step", (lease.run_id, index, name, encoded, now))
    _execute(conn, "insert_event", (
        lease.run_id, seq, EventName.STEP_COMPLETE,
        f'{{"name":{dumps(name)},"index":{index},"result":{encoded}}}', now))
    return True


def _finish(
    conn: sqlite3.Connection, lease: Lease, status: RunStatus, output: Any, error: str | None,
    now: float, traceback: str | None, interrupts: dict[str, Any] | None,
) -> bool:
    """Fenced move to a terminal status; a success's output becomes the thread's values."""
    success = status is RunStatus.SUCCESS
    encoded = dumps(output) if success else None
    row = _execute(conn, "finish", (lease.run_id, lease.generation, status.value, encoded,
                                    error, traceback, now)).fetchone()
    if row is None:
        return False
    data = {"output": output} if success else {"error": error}
    _execute(conn, "insert_event", (lease.run_id, row["last_event_seq"], FINISH_EVENTS[status],
                                    dumps(data), now))
    if row["thread_id"] is None:
        return True
    if success and output is not None and (values := thread_values(output)) is not None:
        _execute(conn, "set_values", (row["thread_id"], encoded if values is output
                                      else dumps(values), lease.run_id, now))
    _execute(conn, "set_interrupts", (row["thread_id"],
                                      None if interrupts is None else dumps(interrupts)))
    return True


def _json_contains_any(document: str | None, alternatives: str) -> bool:
    """SQL ``json_contains_any(doc, alternatives)``: ``doc`` contains one of the JSON array
    ``alternatives``' documents, as PostgreSQL's jsonb ``@>`` says (an auth filter)."""
    return document is not None and contains_any(json.loads(document),
                                                 tuple(json.loads(alternatives)))


def _thread_filter(query: ThreadQuery) -> tuple[str, list[Any]]:
    """A WHERE clause over ``threads_with_status`` and its parameters for ``query``."""
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
    if query.matching is not None:
        clauses.append("json_contains_any(metadata, ?)")
        params.append(dumps(list(query.matching)))
    return " AND ".join(clauses), params


# --------------------------------------------------------------------------- #
# the store                                                                    #
# --------------------------------------------------------------------------- #


class SQLiteStore(SQLStore):
    """:class:`runplane.store.base.Store` on one SQLite file (or ``:memory:``)."""

    def __init__(
        self, url: str, *, busy_timeout: float = 30.0, change_check: float = CHANGE_CHECK
    ) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._conn = _ConnectionThread(self.path, busy_timeout, change_check)
        self._opened = False

    def _write(self, work: Work[T]) -> asyncio.Future[T]:
        """Queued for the connection thread, which runs it in a savepoint of its batch; it
        runs even if the returned future is cancelled (the workflows' writes rely on it)."""
        return self._conn.submit(lambda conn: drive(work(_Tx(conn))), write=True)

    def _read(self, work: Work[T]) -> asyncio.Future[T]:
        return self._conn.submit(lambda conn: drive(work(_Tx(conn))), write=False)

    async def open(self) -> None:
        await asyncio.to_thread(self._conn.start)
        self._opened = True
        self.migrations_applied = await self._write(lambda tx: migrate(tx, "sqlite", ""))

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            await self._conn.stop()

    async def listen(self, signals: Signals) -> None:
        """SQLite cannot say what another process changed, only that it committed:
        ``signals.changed`` hears that (see the module docstring)."""
        loop = asyncio.get_running_loop()

        def changed() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed before the store
                loop.call_soon_threadsafe(signals.changed)

        self._conn.watch_changes(changed)

    # A workflow's writes are futures, not coroutines, so that the worker can see them
    # through a cancellation without wrapping each in a task.
    def append_event(
        self, run_id: str, event: str, data: Any, now: float, *, lease: Lease | None
    ) -> asyncio.Future[bool]:
        return self._conn.submit(
            lambda conn: _append_event(conn, run_id, event, data, now, lease), write=True)

    def complete_step(
        self, lease: Lease, index: int, name: str, result: Any, now: float
    ) -> asyncio.Future[bool]:
        return self._conn.submit(
            lambda conn: _complete_step(conn, lease, index, name, result, now), write=True)

    async def finish_run(
        self, lease: Lease, status: RunStatus, output: Any, error: str | None, now: float,
        traceback: str | None = None, interrupts: dict[str, Any] | None = None,
    ) -> bool:
        return await self._conn.submit(
            lambda conn: _finish(conn, lease, status, output, error, now, traceback, interrupts),
            write=True)

    async def search_threads(self, query: ThreadQuery) -> list[Thread]:
        where, params = _thread_filter(query)
        order = "DESC" if query.descending else "ASC"
        sql = (f"SELECT * FROM ({_QUERIES['threads_with_status']}) WHERE {where} "
               f"ORDER BY {query.sort_by} {order}, thread_id {order} LIMIT ? OFFSET ?")

        def read(conn: sqlite3.Connection) -> list[Thread]:
            rows = conn.execute(sql, (*params, query.limit, query.offset))
            return [thread_from_row(r) for r in rows]

        return await self._conn.submit(read, write=False)

    async def count_threads(self, query: ThreadQuery) -> int:
        where, params = _thread_filter(query)
        sql = f"SELECT count(*) FROM ({_QUERIES['threads_with_status']}) WHERE {where}"
        return await self._conn.submit(
            lambda conn: conn.execute(sql, params).fetchone()[0], write=False)
