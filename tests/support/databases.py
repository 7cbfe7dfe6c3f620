"""The databases the tests run on: the stores, the PostgreSQL server, a schema per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

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
