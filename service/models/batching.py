"""Dynamic batching for one model version.

Callers submit one request (a dict of arrays whose first dimension is its rows) and await
its own slice of the outputs; the batch loop concatenates queued requests along the first
dimension up to ``max_batch_size`` rows, waits at most ``batch_timeout`` for a batch to
fill (and no longer than ``batch_fill_gap`` after the last arrival, polling the event loop
for the last millisecond of a wait: see ``Batcher._wait_to_fill``), pads to
``allowed_batch_sizes``, runs the model in a worker thread, checks the output length and
hands each caller its rows. When batches hold a single request (light load) the next one
runs without waiting for company, so a lone client pays no batching delay; as soon as
requests overlap, batches wait to fill again. The queue is bounded (429 beyond it),
deadlines use the monotonic clock, cancelled or expired requests never reach the model,
and if the loop itself dies every waiter is failed and the loop restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol

from service.config import BatchingSettings
from service.errors import (
    DeadlineExceededError,
    InternalError,
    ModelUnavailableError,
    QueueFullError,
    ServingError,
)
from service.models.batch_rows import Arrays, batch_key, joined_rows, padded_size

logger = logging.getLogger(__name__)
POLL_WINDOW_S = 1e-3
"""A fill wait this close to its deadline polls the loop turn by turn instead of sleeping."""
BUSY_TURN_S = 50e-6
"""A loop turn longer than this was busy: requests it has not read yet may be waiting."""

RunBatch = Callable[[str, Arrays], Arrays]


@dataclass(frozen=True)
class BatchStats:
    """What one request experienced in the batcher."""

    queue_s: float
    inference_s: float
    batch_rows: int


class BatchObserver(Protocol):
    """Receives batch-level events (``service.version_metrics.VersionMetrics`` implements this)."""

    def batch_ran(self, rows: int, padding: int, inference_s: float) -> None:
        """A batch of ``rows`` rows (``padding`` of them filler) ran in ``inference_s``."""


class _Unobserved:
    def batch_ran(self, rows: int, padding: int, inference_s: float) -> None:
        pass


@dataclass(eq=False)  # identity: requests are removed from the queue by identity
class _Request:
    key: Hashable
    signature: str
    inputs: Arrays
    rows: int
    deadline: float
    enqueued: float
    future: asyncio.Future[tuple[Arrays, BatchStats]]


class Batcher:
    """The batching queue and loop of one model version.

    Args:
        run_batch: blocking ``(signature, inputs) -> outputs``; called in ``executor``.
        settings: batch size, timeout, padding sizes, queue bound.
        executor: worker threads that run the model.
        observer: receives queue-depth and batch events.
        name: for log lines, e.g. ``mnist_dnn:1``.
    """

    def __init__(
        self,
        run_batch: RunBatch,
        settings: BatchingSettings,
        executor: Executor,
        observer: BatchObserver | None = None,
        name: str = "",
    ) -> None:
        self._run_batch = run_batch
        self._max_rows = settings.max_batch_size if settings.enabled else 1
        self._timeout_s = settings.batch_timeout_ms / 1000 if settings.enabled else 0.0
        self._gap_s = settings.batch_fill_gap_ms / 1000
        self._allowed = settings.allowed_batch_sizes if settings.enabled else None
        self._max_queue = settings.max_queue_size
        self._max_queued_rows = settings.max_enqueued_batches * settings.max_batch_size
        self._executor = executor
        self._observer: BatchObserver = observer or _Unobserved()
        self._name = name
        self._queue: deque[_Request] = deque()
        self._queued_rows = 0
        self._arrival = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.max_concurrent_batches)
        self._running: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._closed = False
        self._lone_arrivals = False
        self._last_arrival = 0.0

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def queue_capacity(self) -> int:
        """The most requests the queue holds (``max_queue_size``); more get QueueFullError."""
        return self._max_queue

    def start(self) -> None:
        """Start the batch loop on the running event loop."""
        if self._loop_task is None:
            self._loop_task = asyncio.get_running_loop().create_task(
                self._supervise(), name=f"batcher {self._name}"
            )

    async def close(self) -> None:
        """Stop the loop after running batches finish; queued requests get 503."""
        self._closed = True
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        self._fail_queued(ModelUnavailableError(f"model {self._name} is unloading"))

    def admit(self, rows: int) -> None:
        """Refuse at once when ``rows`` more would overfill the queue (cheap pre-check).

        Raises:
            QueueFullError: over ``max_queue_size`` requests or ``max_enqueued_batches``
                batches' worth of rows.
            ModelUnavailableError: the version is unloading.
        """
        if self._closed:
            raise ModelUnavailableError(f"model {self._name} is unloading")
        if len(self._queue) >= self._max_queue:
            raise QueueFullError(
                f"model {self._name} has {len(self._queue)} requests queued, the limit is "
                f"{self._max_queue}; retry later"
            )
        if self._queued_rows and self._queued_rows + rows > self._max_queued_rows:
            raise QueueFullError(
                f"model {self._name} has {self._queued_rows} rows queued, the limit is "
                f"{self._max_queued_rows} ({self._max_queued_rows // self._max_rows} "
                "batches); retry later"
            )

    async def submit(
        self, signature: str, inputs: Arrays, rows: int, deadline: float
    ) -> tuple[Arrays, BatchStats]:
        """Queue one request and wait for its rows of the outputs.

        Args:
            signature: the signature to run.
            inputs: arrays sharing the first dimension ``rows``.
            rows: the request's row count.
            deadline: ``time.monotonic()`` value after which the answer is useless.

        Raises:
            QueueFullError: the queue is full (see ``admit``).
            DeadlineExceededError: the deadline passed before the outputs were ready.
            ModelUnavailableError: the version is unloading.
        """
        self.admit(rows)
        now = time.monotonic()
        if deadline <= now:
            raise DeadlineExceededError("the request's deadline passed before it was queued")
        future: asyncio.Future[tuple[Arrays, BatchStats]] = (
            asyncio.get_running_loop().create_future()
        )
        request = _Request(
            batch_key(signature, inputs), signature, inputs, rows, deadline, now, future
        )
        self._queue.append(request)
        self._queued_rows += rows
        self._last_arrival = now
        self._arrival.set()
        # one timer per request (cheaper than asyncio.wait_for's wrapper future)
        timer = asyncio.get_running_loop().call_later(deadline - now, self._expire, request)
        try:
            return await future
        except asyncio.CancelledError:
            self._discard(request)
            raise
        finally:
            timer.cancel()

    def _expire(self, request: _Request) -> None:
        """The deadline passed before the outputs were ready: fail the request now."""
        if not request.future.done():
            self._discard(request)
            request.future.set_exception(
                DeadlineExceededError(
                    f"the request's deadline of {request.deadline - request.enqueued:.3f}s "
                    "passed while it was queued or running"
                )
            )

    def _discard(self, request: _Request) -> None:
        """Take a request that will never be answered out of the queue (if still there)."""
        try:
            self._queue.remove(request)
        except ValueError:
            return  # already taken into a batch
        self._queued_rows -= request.rows

    async def _supervise(self) -> None:
        while True:
            try:
                await self._loop()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "batch loop of %s died; failing waiters and restarting", self._name
                )
                self._fail_queued(InternalError("the batch loop failed; the request was not run"))

    async def _loop(self) -> None:
        while True:
            while not self._queue:
                self._arrival.clear()
                await self._arrival.wait()
            await self._slots.acquire()
            try:
                # the queue may have emptied (cancelled, expired) while a batch ran
                if self._queue and not self._lone_arrivals:
                    await self._wait_to_fill(self._queue[0].enqueued + self._timeout_s)
                batch = self._take_batch()
                # Under light load (a batch that holds a single request) waiting for
                # company only adds latency: run at once until requests overlap again.
                self._lone_arrivals = len(batch) == 1
            except BaseException:
                self._slots.release()
                raise
            if not batch:
                self._slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._execute(batch))
            self._running.add(task)
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._slots.release()

    async def _wait_to_fill(self, until: float) -> None:
        """Wait until the batch is full, ``until`` passes or arrivals pause for the fill gap.

        The loop's own timers tick in whole milliseconds (uvloop), too coarse for a gap of a
        few hundred microseconds, and a sleeping loop adds a thread wake-up to each of the
        several hand-offs a gRPC call makes. So within ``POLL_WINDOW_S`` of the deadline the
        wait polls: it yields one loop turn at a time (the loop keeps reading sockets and
        running every other task) and checks the clock. The gap only counts time the loop
        was free to read arrivals: a check that comes late (a busy turn, which may have left
        requests unread in the loop's sockets) starts the gap afresh; ``until`` still bounds
        the wait.
        """
        quiet_since = time.monotonic()
        busy_after = math.inf  # a check later than this means the loop was busy meanwhile
        while self._queued_rows < self._max_rows:
            now = time.monotonic()
            if now > busy_after:
                quiet_since = now
            quiet_since = max(quiet_since, self._last_arrival)
            deadline = min(until, quiet_since + self._gap_s) if self._gap_s else until
            if now >= deadline:
                return
            if deadline - now > POLL_WINDOW_S:  # far off: sleep until an arrival or near it
                busy_after = deadline
                self._arrival.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrival.wait(), deadline - now - POLL_WINDOW_S)
            else:
                busy_after = now + BUSY_TURN_S
                await asyncio.sleep(0)

    def _take_batch(self) -> list[_Request]:
        batch: list[_Request] = []
        rows = 0
        now = time.monotonic()
        while self._queue:
            request = self._queue[0]
            if request.future.done():  # cancelled: the client went away
                self._pop()
                continue
            if request.deadline <= now:
                self._pop()
                request.future.set_exception(
                    DeadlineExceededError(
                        "the request's deadline passed while it was queued; the model did not run"
                    )
                )
                continue
            if batch and (request.key != batch[0].key or rows + request.rows > self._max_rows):
                break
            self._pop()
            batch.append(request)
            rows += request.rows
        return batch

    def _pop(self) -> None:
        request = self._queue.popleft()
        self._queued_rows -= request.rows

    async def _execute(self, batch: list[_Request]) -> None:
        rows = sum(r.rows for r in batch)
        target = padded_size(rows, self._allowed)
        started = time.monotonic()
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._assemble_and_run, batch, rows, target
            )
            for name, value in outputs.items():
                if value.ndim == 0 or value.shape[0] != target:
                    raise InternalError(
                        f"model {self._name} returned {value.shape[:1]} rows for output "
                        f"{name!r} from a batch of {target}"
                    )
        except ServingError as exc:
            self._fail(batch, exc)
            return
        except Exception as exc:
            logger.exception("model %s failed on a batch of %d rows", self._name, target)
            self._fail(batch, InternalError(f"model {self._name} failed: {exc}"))
            return
        inference_s = time.monotonic() - started
        self._observer.batch_ran(target, target - rows, inference_s)
        offset = 0
        for request in batch:
            end = offset + request.rows
            if not request.future.done():
                stats = BatchStats(started - request.enqueued, inference_s, target)
                request.future.set_result(
                    ({name: value[offset:end] for name, value in outputs.items()}, stats)
                )
            offset = end

    def _assemble_and_run(self, batch: list[_Request], rows: int, target: int) -> Arrays:
        """On the executor, off the event loop: the batch's rows joined, padded and run."""
        return self._run_batch(
            batch[0].signature, joined_rows([r.inputs for r in batch], rows, target)
        )

    @staticmethod
    def _fail(batch: list[_Request], error: ServingError) -> None:
        for request in batch:
            if not request.future.done():
                request.future.set_exception(error)

    def _fail_queued(self, error: ServingError) -> None:
        while self._queue:
            request = self._queue.popleft()
            if not request.future.done():
                request.future.set_exception(error)
        self._queued_rows = 0
