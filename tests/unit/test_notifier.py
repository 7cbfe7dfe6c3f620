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


async def test_the_poller_wakes_a_waiter_for_a_runs_end_only_once_it_ended() -> None:
    """Another process claiming the run or logging its events moves a stream on, not a
    waiter for the run's end: that one is woken when the run ended, and when it released
    its lease after."""
    calls, now = 0, {"r1": ("pending", None, 1)}

    async def marks(run_ids: list[str]) -> dict[str, tuple[Hashable, ...]]:
        nonlocal calls
        calls += 1
        return {run_id: now[run_id] for run_id in run_ids}

    async def polled() -> None:
        """Two more reads of the marks: the current one has been seen."""
        target = calls + 2
        await eventually(lambda: calls >= target)

    notifier = LocalNotifier(marks, poll_interval=0.001)
    with notifier.watch("r1") as ended, notifier.watch("r1", events=True) as logged:
        await polled()
        ended.clear()
        logged.clear()
        for mark in (("running", "w1", 2), ("running", "w1", 3)):  # claimed, logging
            now["r1"] = mark
            await polled()
            assert logged.is_set() and not ended.is_set()
            logged.clear()
        for mark in (("success", "w1", 4), ("success", None, 4)):  # ended, released
            now["r1"] = mark
            await polled()
            assert ended.is_set() and logged.is_set()
            ended.clear()
            logged.clear()
    await notifier.close()
