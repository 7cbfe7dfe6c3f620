"""Shared fixtures. Every engine test runs once per store back end (``database_url``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from runplane import Runplane
from runplane.store import Store, open_store

from support import AppFactory

STORES = ["sqlite"]


@pytest.fixture(params=STORES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/runplane.db"


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
async def store(database_url: str) -> AsyncIterator[Store]:
    s = open_store(database_url)
    await s.open()
    yield s
    await s.close()
