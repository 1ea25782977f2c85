"""The shared-timeout deadline queue: callbacks run in the order added, cancelled ones never
run, and at most ``per_tick`` run per loop iteration (the rest after the loop polled I/O)."""

from __future__ import annotations

import asyncio

from service.transport.deadlines import DeadlineQueue


async def test_due_callbacks_run_in_order_and_cancelled_ones_never() -> None:
    queue = DeadlineQueue(asyncio.get_running_loop(), timeout_s=0.05)
    ran: list[int] = []
    deadlines = [queue.add(lambda i=i: ran.append(i)) for i in range(5)]
    deadlines[1].cancel()
    deadlines[3].cancel()
    await asyncio.sleep(0.3)
    assert ran == [0, 2, 4]
    assert len(queue) == 0


async def test_at_most_per_tick_callbacks_run_per_loop_iteration() -> None:
    loop = asyncio.get_running_loop()
    queue = DeadlineQueue(loop, timeout_s=0.0, per_tick=2)
    done = loop.create_future()
    iterations: list[int] = []
    tick = [0]

    def count_ticks() -> None:  # one call per loop iteration
        tick[0] += 1
        if not done.done():
            loop.call_soon(count_ticks)

    for _ in range(5):
        queue.add(lambda: iterations.append(tick[0]))
    queue.add(lambda: done.set_result(None))
    loop.call_soon(count_ticks)
    await asyncio.wait_for(done, 5)
    assert len(iterations) == 5
    per_iteration = {t: iterations.count(t) for t in iterations}
    assert max(per_iteration.values()) <= 2
    assert len(per_iteration) >= 3


async def test_a_deadline_added_later_is_served_after_the_earlier_ones() -> None:
    queue = DeadlineQueue(asyncio.get_running_loop(), timeout_s=0.05)
    ran: list[str] = []
    queue.add(lambda: ran.append("first"))
    await asyncio.sleep(0.2)
    queue.add(lambda: ran.append("second"))  # the timer is re-armed for it
    await asyncio.sleep(0.2)
    assert ran == ["first", "second"]
    queue.close()
