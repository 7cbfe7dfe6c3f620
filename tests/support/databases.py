"""The databases the tests run on: the stores, the PostgreSQL server, a schema per test."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

POSTGRES_URL = os.environ.get(
    "RUNPLANE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
STORES = ["sqlite", "postgres"]
_RUN = uuid.uuid4().hex[:8]


@asynccontextmanager
async def postgres_schema(server: str, prefix: str = "rp") -> AsyncIterator[str]:
    """A URL on ``server`` whose tables live in a fresh schema, dropped afterwards."""
    schema = f"{prefix}_{_RUN}_{uuid.uuid4().hex[:10]}"
    yield f"{server}?schema={schema}"
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@contextlib.contextmanager
def database_for_processes(request: pytest.FixtureRequest, store: str, folder: Path,
                           name: str) -> Iterator[str]:
    """A fresh database of ``store`` for processes a sync fixture starts: a SQLite file in
    ``folder``, or a PostgreSQL schema made and dropped in a thread of its own (the fixture
    may be set up inside a running event loop)."""
    if store == "sqlite":
        yield f"sqlite:///{folder}/{name}.db"
        return
    schema = postgres_schema(request.getfixturevalue("postgres_server"), f"rp_{name}")
    with ThreadPoolExecutor(1) as pool:
        url = pool.submit(asyncio.run, schema.__aenter__()).result()
    try:
        yield url
    finally:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, schema.__aexit__(None, None, None)).result()
