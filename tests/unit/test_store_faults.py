"""Each store tells a database that is unavailable (the run is handed back, the request
answered 503) from a statement it refused (a bug or bad data)."""

from __future__ import annotations

import sqlite3

import asyncpg

import runplane.store.postgres as pg
import runplane.store.sqlite as sq
from runplane.errors import StoreUnavailable


def _io_error() -> sqlite3.OperationalError:
    exc = sqlite3.OperationalError("disk I/O error")
    exc.sqlite_errorcode = sqlite3.SQLITE_IOERR  # type: ignore[attr-defined]
    return exc


def test_sqlite_tells_an_unavailable_database_from_a_refused_statement():
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
    assert isinstance(sq._fault(busy), StoreUnavailable)
    assert isinstance(sq._fault(_io_error()), StoreUnavailable)
    syntax = sqlite3.OperationalError("no such table: nope")
    syntax.sqlite_errorcode = sqlite3.SQLITE_ERROR  # type: ignore[attr-defined]
    assert sq._fault(syntax) is syntax
    constraint = sqlite3.IntegrityError("UNIQUE constraint failed")
    assert sq._fault(constraint) is constraint


def test_postgres_tells_an_unavailable_database_from_a_refused_statement():
    for exc in (asyncpg.ConnectionDoesNotExistError("closed"), ConnectionRefusedError(),
                asyncpg.CannotConnectNowError("starting up"), TimeoutError(),
                asyncpg.AdminShutdownError("terminating connection"),
                asyncpg.InternalClientError("cannot switch to state 12"),
                asyncpg.InterfaceError("connection is closed")):
        assert pg._unavailable(exc), exc
    for exc in (asyncpg.UniqueViolationError("dup"), asyncpg.DataError("bad argument"),
                asyncpg.DeadlockDetectedError("deadlock"), ValueError("x"),
                asyncpg.QueryCanceledError("canceling statement due to statement timeout")):
        assert not pg._unavailable(exc), exc
