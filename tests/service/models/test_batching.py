"""Deterministic tests of the dynamic batcher: huge timeouts and events, never timing luck."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from service.config import BatchingSettings
from service.errors import DeadlineExceededError, InternalError, QueueFullError
from service.models.batching import Batcher

HOUR = 3600.0


class RecordingModel:
    """``y = 2x`` that records every batch it runs and can be held at a gate."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.entered.set()
        self.gate.wait(timeout=60)
        self.batches.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2}


@pytest.fixture
def executor():
    with ThreadPoolExecutor(2) as pool:
        yield pool


def make_batcher(model, executor, **settings) -> Batcher:
    values = {
        "max_batch_size": 4,
        "batch_timeout_ms": HOUR * 1000,
        "max_queue_size": 100,
        "batch_fill_gap_ms": 0,
    }
    values.update(settings)
    return Batcher(model, BatchingSettings(**values), executor, name="test:1")


def rows(*values: float) -> dict[str, np.ndarray]:
    return {"x": np.array(values, dtype=np.float32).reshape(-1, 1)}


async def submit(batcher: Batcher, *values: float, timeout: float = HOUR, signature="sig"):
    return await batcher.submit(signature, rows(*values), len(values), time.monotonic() + timeout)


async def test_nothing_completes_until_the_batch_is_full(executor) -> None:
    model = RecordingModel()
    batcher = make_batcher(model, executor)
    batcher.start()
    first = [asyncio.ensure_future(submit(batcher, v)) for v in (1, 2, 3)]
    await asyncio.sleep(0.2)
    assert not any(task.done() for task in first)
    assert model.batches == []
    last = asyncio.ensure_future(submit(batcher, 4))
    results = await asyncio.gather(*first, last)
    assert model.batches == [4]
    assert [float(out["y"][0, 0]) for out, _ in results] == [2, 4, 6, 8]
    assert all(stats.batch_rows == 4 for _, stats in results)
    await batcher.close()


async def test_multi_row_requests_get_their_own_rows(executor) -> None:
    model = RecordingModel()
    batcher = make_batcher(model, executor)
    batcher.start()
    a, b = await asyncio.gather(submit(batcher, 1, 2, 3), submit(batcher, 10))
    assert a[0]["y"].ravel().tolist() == [2, 4, 6]
    assert b[0]["y"].ravel().tolist() == [20]
    await batcher.close()


async def test_timeout_runs_a_partial_batch(executor) -> None:
    model = RecordingModel()
    batcher = make_batcher(model, executor, batch_timeout_ms=20)
    batcher.start()
    out, _ = await submit(batcher, 5)
    assert out["y"].ravel().tolist() == [10]
    assert model.batches == [1]
    await batcher.close()


async def test_a_pause_in_arrivals_runs_the_batch_before_the_timeout(executor) -> None:
    model = RecordingModel()
    batcher = make_batcher(model, executor, batch_fill_gap_ms=20)
    batcher.start()
    results = await asyncio.wait_for(
        asyncio.gather(submit(batcher, 1), submit(batcher, 2)), 10
    )  # not the hour-long timeout
    assert model.batches == [2]
    assert [float(out["y"][0, 0]) for out, _ in results] == [2, 4]
    await batcher.close()


async def test_a_busy_loop_turn_restarts_the_fill_gap(executor) -> None:
    # A turn that keeps the loop busy past the gap may leave requests unread in its sockets
    # (a gRPC call takes several turns to reach the batcher): the batch gives them a quiet
    # gap to arrive instead of closing right after the busy turn.
    model = RecordingModel()
    batcher = make_batcher(model, executor, batch_fill_gap_ms=20)
    batcher.start()
    first = asyncio.ensure_future(submit(batcher, 1))
    for _ in range(2):
        await asyncio.sleep(0)  # queued; the batch loop is waiting for the gap
    time.sleep(0.1)  # a busy turn, five gaps long
    for _ in range(5):
        await asyncio.sleep(0)  # the late request takes a few turns to come through
    second = asyncio.ensure_future(submit(batcher, 2))
    results = await asyncio.wait_for(asyncio.gather(first, second), 10)
    assert model.batches == [2]
    assert [float(out["y"][0, 0]) for out, _ in results] == [2, 4]
    await batcher.close()


async def test_a_sub_millisecond_gap_keeps_back_to_back_arrivals_together(executor) -> None:
    # uvloop's timers tick in whole milliseconds (a 0.5 ms timer fires on the next turn), so
    # the gap is timed by the batcher itself: arrivals one loop turn apart share the batch.
    model = RecordingModel()
    batcher = make_batcher(model, executor, batch_fill_gap_ms=0.5, batch_timeout_ms=1000)
    batcher.start()
    started = time.monotonic()
    waiting = []
    for value in (1, 2, 3):
        waiting.append(asyncio.ensure_future(submit(batcher, value)))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    results = await asyncio.gather(*waiting)
    assert time.monotonic() - started < 0.9  # the gap closed the batch, not the timeout
    assert model.batches == [3]
    assert [float(out["y"][0, 0]) for out, _ in results] == [2, 4, 6]
    await batcher.close()


async def test_padding_to_allowed_batch_sizes(executor) -> None:
    model = RecordingModel()
    batcher = make_batcher(
        model, executor, max_batch_size=8, allowed_batch_sizes=[4, 8], batch_timeout_ms=20
    )
    batcher.start()
    results = await asyncio.gather(*(submit(batcher, v) for v in (1, 2, 3)))
    assert model.batches == [4]  # 3 rows padded to 4
    assert [float(out["y"][0, 0]) for out, _ in results] == [2, 4, 6]
    await batcher.close()


async def test_queue_full_is_refused(executor) -> None:
    model = RecordingModel()
    batcher = make_batcher(model, executor, max_queue_size=2, max_batch_size=64)
    batcher.start()
    waiting = [asyncio.ensure_future(submit(batcher, v)) for v in (1, 2)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    with pytest.raises(QueueFullError, match="limit is 2"):
        await submit(batcher, 3)
    assert batcher.queue_depth == 2
    await batcher.close()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_expired_request_never_reaches_the_model(executor) -> None:
    model = RecordingModel()
    model.gate.clear()  # hold the first batch inside the model
    batcher = make_batcher(model, executor, max_batch_size=1, batch_timeout_ms=0)
    batcher.start()
    running = asyncio.ensure_future(submit(batcher, 1))
    await asyncio.get_running_loop().run_in_executor(None, model.entered.wait, 10)
    with pytest.raises(DeadlineExceededError):
        await submit(batcher, 2, timeout=0.05)
    model.gate.set()
    out, _ = await running
    assert out["y"].ravel().tolist() == [2]
    await submit(batcher, 3)
    assert model.batches == [1, 1]  # the expired request (2) never ran
    assert batcher.queue_depth == 0
    await batcher.close()


async def test_cancelled_request_is_dropped_before_execution(executor) -> None:
    model = RecordingModel()
    batcher = make_batcher(model, executor)
    batcher.start()
    cancelled = asyncio.ensure_future(submit(batcher, 100))
    await asyncio.sleep(0)
    cancelled.cancel()
    results = await asyncio.gather(*(submit(batcher, v) for v in (1, 2, 3, 4)))
    assert model.batches == [4]
    assert sorted(float(out["y"][0, 0]) for out, _ in results) == [2, 4, 6, 8]
    await batcher.close()


async def test_requests_for_different_signatures_do_not_mix(executor) -> None:
    model = RecordingModel()
    batcher = make_batcher(model, executor, batch_timeout_ms=20)
    batcher.start()
    await asyncio.gather(submit(batcher, 1, signature="a"), submit(batcher, 2, signature="b"))
    assert sorted(model.batches) == [1, 1]
    await batcher.close()


async def test_wrong_output_length_fails_every_waiter(executor) -> None:
    def short(signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": inputs["x"][:1]}

    batcher = make_batcher(short, executor, max_batch_size=2)
    batcher.start()
    results = await asyncio.gather(submit(batcher, 1), submit(batcher, 2), return_exceptions=True)
    assert all(isinstance(r, InternalError) for r in results)
    assert "returned" in str(results[0])
    await batcher.close()


async def test_dead_batch_loop_fails_waiters_and_restarts(executor, monkeypatch) -> None:
    model = RecordingModel()
    batcher = make_batcher(model, executor, max_batch_size=1, batch_timeout_ms=0)
    original = batcher._take_batch
    calls = {"n": 0}

    def explode_once():
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return original()

    monkeypatch.setattr(batcher, "_take_batch", explode_once)
    batcher.start()
    with pytest.raises(InternalError, match="batch loop failed"):
        await submit(batcher, 1)
    out, _ = await submit(batcher, 2)  # the loop restarted
    assert out["y"].ravel().tolist() == [4]
    await batcher.close()


async def test_lone_requests_skip_the_fill_wait_until_requests_overlap(executor) -> None:
    model = RecordingModel()
    batcher = make_batcher(model, executor, max_batch_size=2)
    batcher.start()
    await submit(batcher, 1, 2)  # fills a batch alone: one request per batch
    out, _ = await asyncio.wait_for(submit(batcher, 3), 10)  # no hour-long wait
    assert out["y"].ravel().tolist() == [6]
    model.gate.clear()
    held = asyncio.ensure_future(submit(batcher, 4))  # runs at once, held in the model
    await asyncio.get_running_loop().run_in_executor(None, model.entered.wait, 10)
    overlapping = [asyncio.ensure_future(submit(batcher, v)) for v in (5, 6)]
    await asyncio.sleep(0)
    model.gate.set()
    await asyncio.gather(held, *overlapping)
    assert model.batches == [2, 1, 1, 2]  # the overlapping pair ran as one batch
    await batcher.close()


async def test_queue_is_bounded_in_batches_of_rows(executor) -> None:
    model = RecordingModel()
    model.gate.clear()
    batcher = make_batcher(
        model, executor, max_batch_size=2, max_enqueued_batches=2, batch_timeout_ms=0
    )
    batcher.start()
    running = asyncio.ensure_future(submit(batcher, 0, 0))  # occupies the model
    await asyncio.get_running_loop().run_in_executor(None, model.entered.wait, 10)
    queued = [asyncio.ensure_future(submit(batcher, v, v)) for v in (1, 2)]  # 4 rows queued
    await asyncio.sleep(0)
    with pytest.raises(QueueFullError, match="rows queued"):
        batcher.admit(1)
    model.gate.set()
    await asyncio.gather(running, *queued)
    batcher.admit(4)  # an empty queue takes any request up to the row limit
    await batcher.close()


async def test_queue_emptied_while_a_batch_runs_does_not_kill_the_loop(executor, caplog) -> None:
    model = RecordingModel()
    model.gate.clear()
    batcher = make_batcher(model, executor, max_batch_size=2, batch_timeout_ms=0)
    batcher.start()
    running = [asyncio.ensure_future(submit(batcher, v)) for v in (1, 2)]  # one batch of 2
    await asyncio.get_running_loop().run_in_executor(None, model.entered.wait, 10)
    waiting = asyncio.ensure_future(submit(batcher, 3))
    await asyncio.sleep(0.05)  # the loop now waits for the slot with one request queued
    waiting.cancel()  # ... which leaves the queue empty
    await asyncio.sleep(0)
    model.gate.set()
    await asyncio.gather(*running)
    out, _ = await asyncio.wait_for(submit(batcher, 4), 10)
    assert out["y"].ravel().tolist() == [8]
    assert model.batches == [2, 1]
    assert not [r for r in caplog.records if "died" in r.getMessage()]
    await batcher.close()
