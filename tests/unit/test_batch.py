"""WriteBatcher: group commit of writes, one write per run per batch, errors kept apart."""

from __future__ import annotations

import asyncio

import pytest

from runplane.errors import StoreClosed
from runplane.store.batch import WriteBatcher


class Recorder:
    """A flush that records its batches and parks on ``gate`` until released."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.batches: list[list[tuple[str, int]]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = fail or set()

    async def __call__(self, items: list[tuple[str, int]]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if any(run in self.fail for run, _ in items):
            raise ValueError(f"bad write in {items}")
        return [n * 10 for _, n in items]


def batcher(flush: Recorder, **kwargs) -> WriteBatcher[tuple[str, int], int]:
    return WriteBatcher("test", flush, key=lambda item: item[0], **kwargs)


async def test_writes_arriving_during_a_flush_share_the_next_one():
    flush = Recorder()
    flush.gate.clear()
    b = batcher(flush)
    first = b.submit(("a", 1))
    await asyncio.sleep(0)  # the first flush starts alone
    rest = [b.submit((f"r{n}", n)) for n in range(2, 6)]
    flush.gate.set()
    assert await first == 10
    assert await asyncio.gather(*rest) == [20, 30, 40, 50]
    assert flush.batches == [[("a", 1)], [("r2", 2), ("r3", 3), ("r4", 4), ("r5", 5)]]
    await b.close()


async def test_a_batch_holds_one_write_per_run_in_submission_order():
    flush = Recorder()
    b = batcher(flush)
    futures = [b.submit(item) for item in [("a", 1), ("a", 2), ("b", 3), ("a", 4)]]
    assert await asyncio.gather(*futures) == [10, 20, 30, 40]
    assert flush.batches == [[("a", 1), ("b", 3)], [("a", 2)], [("a", 4)]]
    await b.close()


async def test_max_batch_splits_a_large_queue():
    flush = Recorder()
    b = batcher(flush, max_batch=2)
    assert await asyncio.gather(*(b.submit((f"r{n}", n)) for n in range(5))) == [
        0, 10, 20, 30, 40]
    assert [len(x) for x in flush.batches] == [2, 2, 1]
    await b.close()


async def test_a_refused_write_fails_alone():
    flush = Recorder(fail={"bad"})
    b = batcher(flush, refused=(ValueError,))
    futures = [b.submit(item) for item in [("a", 1), ("bad", 2), ("c", 3)]]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert results[0] == 10 and results[2] == 30
    assert isinstance(results[1], ValueError)
    await b.close()


async def test_an_error_that_may_follow_the_commit_fails_the_batch_without_resending():
    """A lost connection may come after the commit: sending again could store twice."""
    flush = Recorder(fail={"bad"})
    b = batcher(flush, refused=(KeyError,))  # ValueError is not "refused"
    futures = [b.submit(item) for item in [("a", 1), ("bad", 2), ("c", 3)]]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert len(flush.batches) == 1
    await b.close()


async def test_retryable_errors_send_the_batch_again():
    calls = 0

    async def flaky(items):
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionResetError("deadlock stand-in")
        return [n for _, n in items]

    b = WriteBatcher("test", flaky, key=lambda item: item[0], retryable=(ConnectionResetError,))
    assert await b.submit(("a", 7)) == 7
    assert calls == 3
    await b.close()


async def test_a_writer_that_gave_up_does_not_break_the_others():
    flush = Recorder()
    flush.gate.clear()
    b = batcher(flush)
    gone, kept = b.submit(("a", 1)), b.submit(("b", 2))
    gone.cancel()
    flush.gate.set()
    assert await kept == 20
    await b.close()


async def test_close_sends_what_is_queued_then_refuses_new_writes():
    flush = Recorder()
    flush.gate.clear()
    b = batcher(flush)
    in_flight = b.submit(("a", 1))
    await asyncio.sleep(0)
    queued = b.submit(("a", 2))
    closing = asyncio.ensure_future(b.close())
    await asyncio.sleep(0)
    with pytest.raises(StoreClosed):
        b.submit(("c", 3))
    flush.gate.set()
    await closing
    assert (await in_flight, await queued) == (10, 20)


async def test_close_gives_up_on_a_stuck_batch_saying_the_outcome_is_unknown():
    flush = Recorder()
    flush.gate.clear()
    b = batcher(flush, drain_timeout=0.05)
    in_flight = b.submit(("a", 1))
    await asyncio.sleep(0)
    queued = b.submit(("a", 2))
    await b.close()
    with pytest.raises(StoreClosed, match="may or may not"):
        await in_flight
    with pytest.raises(StoreClosed, match="before this write was sent"):
        await queued


async def test_a_batcher_whose_task_died_starts_a_new_one():
    flush = Recorder()
    b = batcher(flush)
    assert await b.submit(("a", 1)) == 10
    b._task.cancel()  # e.g. torn down with its event loop's other tasks
    await asyncio.sleep(0)
    assert await asyncio.wait_for(b.submit(("a", 2)), 1) == 20
    await b.close()
