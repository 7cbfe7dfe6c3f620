"""Helpers shared by the tests: app factories, barriers, condition waits, a free port.

Processes: ``support.processes``; databases: ``support.databases``."""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from runplane import Runplane
from runplane.models import CancelRequest
from runplane.store import Store
from runplane.store.base import Cancelled

TESTS = Path(__file__).parent.parent
#: The repository's root (its README, Makefile, examples).
REPO = TESTS.parent
#: The apps the tests' processes run (``runplane serve http_app:app`` and the like).
APPS = TESTS / "apps"

AppFactory = Callable[..., Runplane]


async def eventually(
    check: Callable[[], Awaitable[Any] | Any], *, timeout: float = 10.0, interval: float = 0.01
) -> Any:
    """Re-evaluate ``check`` until it returns something truthy (a condition, not a delay)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not reached within {timeout}s")
        await asyncio.sleep(interval)


async def cancel_one(
    store: Store, run_id: str, request: CancelRequest, now: float
) -> Cancelled | None:
    """A run cancel as the service makes it (a sweep), for a run with no children: what it
    found and did to that run; None for an unknown run."""
    swept = await store.cancel_runs(run_id, request, now, whole_tree=False)
    return None if swept is None else swept.target


def free_port() -> int:
    """A TCP port nobody listens on right now (for a server the test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nested(depth: int, leaf: Any = 1) -> Any:
    """``leaf`` inside ``depth`` lists: JSON ``depth`` levels deep."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


class Gate:
    """A barrier a workflow or hook parks on: ``reached`` is set on arrival, it leaves on
    ``open()``."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self._released = asyncio.Event()
        self.arrivals = 0

    async def __call__(self, *args: Any) -> None:
        self.arrivals += 1
        self.reached.set()
        await self._released.wait()

    async def wait_reached(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            await self.reached.wait()

    def open(self) -> None:
        self._released.set()
