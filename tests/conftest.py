"""Shared fixtures. Every store and engine test runs once per store back end (``database_url``).

``--store sqlite`` (or ``postgres``) keeps the tests of that store only (``make test-fast``).

PostgreSQL comes from ``RUNPLANE_TEST_POSTGRES_URL`` (default: the local server). Each
test gets its own schema, dropped afterwards. Where PostgreSQL cannot be reached, its
tests are skipped with the reason, except in CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from runplane import Runplane
from runplane.store import Store, open_store

from support import AppFactory
from support.databases import POSTGRES_URL, STORES, postgres_schema
from support.processes import Processes


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store", action="append", choices=STORES, default=None,
        help="run the tests of this store only (repeatable; default: every store). Tests "
             "that need no store run either way.")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = config.getoption("store")
    if not chosen:
        return
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        (dropped if _stores_of(item) - set(chosen) else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _stores_of(item: pytest.Item) -> set[str]:
    """The stores a test runs on: its store parameters, and PostgreSQL if it asks for it."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    stores = {value for value in params if isinstance(value, str) and value in STORES}
    if "postgres_server" in getattr(item, "fixturenames", ()):
        stores.add("postgres")
    return stores


@pytest.fixture(scope="session")
def postgres_server() -> str:
    async def probe() -> None:
        conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
        await conn.close()

    try:  # in a thread of its own: the caller may be inside a running event loop
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, probe()).result()
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = f"PostgreSQL unreachable at {POSTGRES_URL} ({exc}); set RUNPLANE_TEST_POSTGRES_URL"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return POSTGRES_URL


@pytest.fixture(params=STORES)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/runplane.db"
        return
    async with postgres_schema(request.getfixturevalue("postgres_server")) as url:
        yield url


@pytest.fixture
async def make_app(database_url: str) -> AsyncIterator[AppFactory]:
    """Build apps on the test's database with fast intervals; all are closed afterwards."""
    apps: list[Runplane] = []

    def factory(**kwargs: Any) -> Runplane:
        kwargs.setdefault("poll_interval", 0.01)
        kwargs.setdefault("lease_ttl", 30.0)
        kwargs.setdefault("heartbeat_interval", 5.0)
        kwargs.setdefault("reap_interval", 3600.0)
        kwargs.setdefault("shutdown_grace", 0.0)
        app = Runplane(kwargs.pop("database", database_url), **kwargs)
        apps.append(app)
        return app

    yield factory
    for app in reversed(apps):
        await app.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """The processes a test starts (``runplane serve``, workers, clients), stopped at its end."""
    with Processes(tmp_path) as procs:
        yield procs


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    s = open_store(database_url)
    await s.open()
    yield s
    await s.close()
