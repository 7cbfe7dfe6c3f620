"""The notifier's poller through a store outage: it keeps polling and says so once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable

import pytest

from runplane.errors import StoreUnavailable
from runplane.notifier import LocalNotifier

from support import eventually


async def test_an_outage_is_logged_once_and_the_poller_carries_on(
        caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def marks(run_ids: list[str]) -> dict[str, tuple[Hashable, ...]]:
        nonlocal calls
        calls += 1
        if calls <= 20:
            raise StoreUnavailable(ConnectionResetError("reset"))
        return {run_id: ("running", None, calls) for run_id in run_ids}

    notifier = LocalNotifier(marks, poll_interval=0.001)
    caplog.set_level(logging.WARNING, "runplane.notifier")
    with notifier.watch("r1", events=True) as logged:
        await eventually(lambda: calls > 22)
        await asyncio.wait_for(logged.wait(), 5)  # the store answers again: marks move
    await notifier.close()
    assert [(r.levelno, r.exc_info) for r in caplog.records] == [(logging.WARNING, None)], \
        caplog.text
