"""Side work waits while clients are in flight, runs in bulk when they are not, and sheds
(counted, never raised) when its lane is full; a failing bulk stops nothing."""

from __future__ import annotations

from service.inference.side_work import Lane, SideWork
from service.metrics import Metrics


def _count(metrics: Metrics, kind: str, outcome: str) -> float | None:
    return metrics.registry.get_sample_value(
        "primer_side_work_items_total", {"kind": kind, "outcome": outcome}
    )


def test_side_work_waits_while_clients_are_in_flight_and_sheds_when_full() -> None:
    metrics = Metrics()
    load = [10]
    ran: list[list[int]] = []
    side_work = SideWork(lambda: load[0], metrics)
    lane = side_work.add(Lane("unit", 3, ran.append, threshold=4))
    assert [lane.offer(n) for n in range(5)] == [True, True, True, False, False]
    assert not side_work.flush(timeout=0.2)  # busy: the work waits, it is not run
    assert ran == []
    load[0] = 3  # below the threshold: the queued work runs, in one bulk
    assert side_work.flush()
    assert ran == [[0, 1, 2]]
    assert _count(metrics, "unit", "done") == 3
    assert _count(metrics, "unit", "shed") == 2


def test_a_lane_sheds_past_its_byte_budget_and_a_failing_bulk_stops_nothing() -> None:
    metrics = Metrics()
    ran: list[list[bytes]] = []

    def fail(items: list[bytes]) -> None:
        raise RuntimeError("a side-work bug")

    side_work = SideWork(lambda: 0, metrics)
    broken = side_work.add(Lane("broken", 10, fail, threshold=1))
    sized = side_work.add(Lane("sized", 10, ran.append, threshold=1, weigh=len, max_bytes=8))
    assert broken.offer(b"x")
    assert side_work.flush()
    assert _count(metrics, "broken", "done") == 1  # ran (and failed, logged): not retried
    side_work._load = lambda: 5  # hold the lane while it fills
    assert [sized.offer(b"abc") for _ in range(3)] == [True, True, False]  # 6 + 3 > 8 bytes
    side_work._load = lambda: 0
    assert side_work.flush()
    assert ran == [[b"abc", b"abc"]]
    assert sized.offer(b"abcdefgh")  # taken items no longer count against the budget
    assert side_work.flush()
    assert _count(metrics, "sized", "shed") == 1


def test_per_item_thresholds_hold_each_item_to_its_own_load() -> None:
    metrics = Metrics()
    load = [5]
    ran: list[list[tuple[str, int]]] = []
    side_work = SideWork(lambda: load[0], metrics)
    lane = side_work.add(Lane("pairs", 10, ran.append, threshold=lambda item: item[1]))
    assert lane.offer(("live comparison", 64))
    assert side_work.flush()  # 5 in flight < 64: runs
    assert lane.offer(("shadow", 4))
    assert not side_work.flush(timeout=0.2)  # 5 in flight >= 4: waits
    load[0] = 0
    assert side_work.flush()
    assert ran == [[("live comparison", 64)], [("shadow", 4)]]
