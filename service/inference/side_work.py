"""Side work: what runs after the primary answered, only while the primary is not busy.

Shadow mirrors, payload-log records and drift histograms are side work; none of it may delay
a client. A listener hands its work to a ``Lane`` on the event loop in O(1) (a reference
appended to a bounded deque: no copy, no serialization, no hashing). One thread, the
``SideWork`` executor, runs every lane in bulk, and only while the server is quiet: the
event loop was found idle four times in a row (not running Python: see ``_loop_idle``) and
fewer client requests than the lane's threshold are in flight. Otherwise the work waits;
and it takes at most a tenth of the time (``DUTY``). A full lane sheds what comes next.
Both outcomes are counted per lane: ``primer_side_work_items_total{kind,outcome}`` with
``done`` and ``shed``. Under saturation nearly all side work is shed, by design: clients
first.

Why one thread, and neither the loop nor a pool: all of this holds the GIL for part of its
time. On the loop it adds to every request's latency; several threads would contend with the
loop several times over. One thread that waits for a quiet moment and then takes many items
at once keeps the GIL hand-offs few and leaves the CPU to the primary while it needs it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from service.metrics import Metrics

logger = logging.getLogger(__name__)
T = TypeVar("T")
BUSY_POLL_S = 0.005
"""While the load is at a lane's threshold, the worker looks again after this long..."""
MAX_BUSY_POLL_S = 0.08
"""...doubling while the loop stays busy, up to this: under saturation each look costs the
loop a forced GIL hand-off, so a busy server is looked at about a dozen times a second."""
IDLE_POLL_S = 0.1
"""With nothing to do, the worker still wakes this often (to notice ``close``)."""
DUTY = 0.1
"""Side work rests after each bulk for nine times as long as the bulk took."""
MAX_REST_S = 0.5
QUIET_LOOKS = 4
"""Consecutive looks, ``BUSY_POLL_S`` apart, that must find the loop idle before work runs."""
GIL_WAIT_S = 0.001
"""Waiting longer than this for the GIL means another thread is busy running Python."""
MAX_LANE_BYTES = 64 * 1024 * 1024
"""The arrays a lane's waiting items may hold alive at most, by default."""
OVERLOADED = 1 << 30
"""The load assumed when it cannot be read (the repository changed under the reader)."""


class Lane(Generic[T]):
    """One kind of side work: a bounded queue and the function that runs a bulk of it.

    Args:
        kind: the ``kind`` label of its metrics (``shadow``, ``payload_log``, ``drift``).
        capacity: items waiting at most; beyond, new items are shed.
        run: runs a bulk of items on the side-work thread (exceptions are logged).
        threshold: the lane runs only while fewer client requests than this are in flight;
            a callable gives each item its own threshold (the head item's applies).
        weigh: the bytes an item holds alive (its arrays); with it the lane also sheds
            past ``max_bytes``.
        max_bytes: the most bytes the waiting items may hold.
        bulk: most items taken at once.
    """

    def __init__(
        self,
        kind: str,
        capacity: int,
        run: Callable[[list[T]], None],
        threshold: int | Callable[[T], int],
        *,
        weigh: Callable[[T], int] | None = None,
        max_bytes: int = MAX_LANE_BYTES,
        bulk: int = 256,
    ) -> None:
        self.kind = kind
        self._capacity = capacity
        self._run = run
        self._threshold = threshold
        self._weigh = weigh
        self._max_bytes = max_bytes
        self._bulk = bulk
        self._items: deque[tuple[T, int]] = deque()
        # each counter has one writer (the loop adds, the worker takes): no lock needed
        self._bytes_in = 0
        self._bytes_out = 0
        self._executor: SideWork | None = None

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: T) -> bool:
        """Queue ``item`` (never waits); False when the lane was full and shed it."""
        executor = self._executor
        size = 0 if self._weigh is None else self._weigh(item)
        if (
            executor is None
            or executor.closed
            or len(self._items) >= self._capacity
            or self._bytes_in - self._bytes_out + size > self._max_bytes
        ):
            if executor is not None:
                executor.count(self.kind, "shed")
            return False
        self._bytes_in += size
        self._items.append((item, size))  # only the loop appends; the worker only pops
        executor.wake()
        return True

    def _ready(self, load: int) -> bool:
        if not self._items:
            return False
        threshold = self._threshold
        limit = threshold if isinstance(threshold, int) else threshold(self._items[0][0])
        return load < limit

    def _take(self) -> list[T]:
        taken: list[T] = []
        while self._items and len(taken) < self._bulk:
            item, size = self._items.popleft()
            self._bytes_out += size
            taken.append(item)
        return taken

    def _clear(self) -> int:
        dropped = len(self._take())
        while self._items:
            dropped += len(self._take())
        return dropped


class SideWork:
    """The one low-priority thread that runs every lane (see the module docstring).

    Args:
        load: client requests in flight now (read from the side-work thread).
        metrics: the metric catalogue.
    """

    def __init__(self, load: Callable[[], int], metrics: Metrics) -> None:
        self._load = load
        self._metrics = metrics
        self._counters: dict[tuple[str, str], Any] = {}
        self._lanes: list[Lane] = []
        self._wake = threading.Event()
        self._settled = threading.Condition()
        self._running_bulk = False
        self.closed = False
        self._thread = threading.Thread(target=self._work, name="side-work", daemon=True)
        self._thread.start()

    def add(self, lane: Lane[T]) -> Lane[T]:
        """Serve ``lane`` from now on; returns it."""
        lane._executor = self
        self._lanes = [*self._lanes, lane]
        return lane

    def wake(self) -> None:
        """Tell the worker there is work (cheap when it already knows)."""
        if not self._wake.is_set():
            self._wake.set()

    def count(self, kind: str, outcome: str, items: int = 1) -> None:
        """Count side-work items by kind and outcome (``done`` or ``shed``)."""
        child = self._counters.get((kind, outcome))
        if child is None:  # one label lookup per pair: a full lane sheds on every request
            child = self._counters[kind, outcome] = self._metrics.side_work_items.labels(
                kind, outcome
            )
        child.inc(items)

    def pending(self) -> bool:
        """Whether any lane holds work or a bulk is running."""
        return self._running_bulk or any(len(lane) for lane in self._lanes)

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until every lane is empty (False after ``timeout``). Not on the event loop:
        shadow work needs it."""
        deadline = time.monotonic() + timeout
        with self._settled:
            while self.pending():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.wake()
                self._settled.wait(min(left, IDLE_POLL_S))
        return True

    async def drain(self, timeout: float = 30.0) -> bool:
        """``flush`` for the event loop: waits without blocking it."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() >= deadline:
                return False
            self.wake()
            await asyncio.sleep(BUSY_POLL_S)
        return True

    async def close(self, timeout: float = 5.0) -> None:
        """Refuse new work, let queued work finish for up to ``timeout``, stop the thread."""
        self.closed = True
        await self.drain(timeout)
        for lane in self._lanes:
            self.count(lane.kind, "shed", lane._clear())
        self.wake()
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join, timeout)

    @staticmethod
    def _loop_idle() -> bool:
        """Whether no other thread (above all the event loop) is running Python now: this
        thread gives up the GIL and times how long it waits to get it back (about the
        interpreter's 5 ms switch interval while the loop is busy, microseconds when it
        waits for sockets)."""
        started = time.perf_counter()
        time.sleep(0)
        return time.perf_counter() - started < GIL_WAIT_S

    def _load_now(self) -> int:
        try:
            return self._load()
        except RuntimeError:  # a dict of versions changed while it was read
            return OVERLOADED

    def _work(self) -> None:
        quiet = 0  # consecutive looks that found the event loop idle
        poll = BUSY_POLL_S
        while True:
            self._wake.wait(IDLE_POLL_S)
            self._wake.clear()
            while any(len(lane) for lane in self._lanes):
                if self._loop_idle():
                    quiet, poll = quiet + 1, BUSY_POLL_S
                else:
                    quiet, poll = 0, min(poll * 2, MAX_BUSY_POLL_S)
                if quiet < QUIET_LOOKS or not self._run_ready(self._lanes, self._load_now()):
                    time.sleep(poll)  # clients first: look again shortly
            with self._settled:
                self._settled.notify_all()
            if self.closed and not any(len(lane) for lane in self._lanes):
                return

    def _run_ready(self, lanes: Sequence[Lane], load: int) -> bool:
        ran = False
        for lane in lanes:
            if not lane._ready(load):
                continue
            self._running_bulk = True
            items = lane._take()
            started = time.monotonic()
            try:
                lane._run(items)
            except Exception:  # side work never stops the thread, nor reaches a client
                logger.exception("side work %s failed on %d items", lane.kind, len(items))
            finally:
                self._running_bulk = False
            self.count(lane.kind, "done", len(items))
            ran = True
            # at most DUTY of the time, even when quiet: the quiet may end during a bulk
            time.sleep(min((time.monotonic() - started) * (1 / DUTY - 1), MAX_REST_S))
        return ran
