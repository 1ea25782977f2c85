"""Many deadlines that share one timeout, kept in one queue behind one loop timer.

The REST edge arms a header deadline for every connection. As one ``TimerHandle`` each, a
flood of connections costs a loop timer apiece, and the connections accepted in one loop
iteration (uvloop reads its clock once per iteration) share one deadline: their callbacks
all run in one iteration later, a wave of closes that holds every other client back.

Deadlines added with the same timeout come due in the order they were added, so a deque and
a single timer armed for its head are enough. Due callbacks run at most ``per_tick`` per loop
iteration; the rest wait for the next one (``call_soon``), so other clients' I/O is served
between the chunks.
"""

from __future__ import annotations

import asyncio
from asyncio import TimerHandle
from collections import deque
from collections.abc import Callable


class Deadline:
    """One pending deadline; ``cancel`` it when what it guards is done."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback: Callable[[], None] | None = callback

    def cancel(self) -> None:
        self.callback = None


class DeadlineQueue:
    """Runs each added callback ``timeout_s`` after it was added, unless cancelled.

    Args:
        loop: the event loop the callbacks run on.
        timeout_s: the timeout every deadline shares.
        per_tick: most callbacks run in one loop iteration.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, timeout_s: float, per_tick: int = 64
    ) -> None:
        self._loop = loop
        self.timeout_s = timeout_s
        self._per_tick = per_tick
        self._queue: deque[tuple[float, Deadline]] = deque()
        self._timer: TimerHandle | None = None
        self._draining = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, callback: Callable[[], None]) -> Deadline:
        """``callback`` will run ``timeout_s`` from now unless the deadline is cancelled."""
        deadline = Deadline(callback)
        due = self._loop.time() + self.timeout_s
        self._queue.append((due, deadline))
        if self._timer is None and not self._draining:
            self._timer = self._loop.call_at(due, self._run_due)
        return deadline

    def _run_due(self) -> None:
        self._timer = None
        self._draining = False
        queue, now, ran = self._queue, self._loop.time(), 0
        while queue and queue[0][0] <= now and ran < self._per_tick:
            deadline = queue.popleft()[1]
            callback = deadline.callback
            if callback is not None:
                deadline.callback = None
                ran += 1
                callback()
        if not queue:
            return
        if queue[0][0] <= now:  # more are due: after the loop has polled for I/O
            self._draining = True
            self._loop.call_soon(self._run_due)
        else:
            self._timer = self._loop.call_at(queue[0][0], self._run_due)

    def close(self) -> None:
        """Drop every deadline and the timer."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()
