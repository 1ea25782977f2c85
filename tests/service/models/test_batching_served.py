"""The batcher inside a real server: disconnects drop queued work, limits map to HTTP."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

HOUR = 3600.0


def test_http_client_disconnect_drops_queued_work(tmp_path) -> None:
    """A client that gives up while queued never reaches the model; gauges return to 0."""
    import httpx

    from tests.conftest import ServerThread, make_settings
    from tests.fixtures import half_plus_two

    half_plus_two(tmp_path / "half_plus_two" / "1")
    settings = make_settings(
        tmp_path,
        batching={"max_batch_size": 2, "batch_fill_gap_ms": 0, "batch_timeout_ms": HOUR * 1000},
    )
    thread = ServerThread(settings).start()
    try:
        mv = thread.server.manager.resolve("half_plus_two")
        ran: list[int] = []
        run = mv.batcher._run_batch

        def spy(signature, inputs):
            ran.append(len(inputs["x"]))
            return run(signature, inputs)

        mv.batcher._run_batch = spy
        with (
            httpx.Client(base_url=thread.rest_url, timeout=0.5) as quitter,
            pytest.raises(httpx.ReadTimeout),
        ):
            quitter.post("/v1/models/half_plus_two:predict", json={"instances": [[9, 9, 9]]})
        deadline = time.monotonic() + 10
        while mv.batcher.queue_depth and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mv.batcher.queue_depth == 0
        with httpx.Client(base_url=thread.rest_url, timeout=30) as client:
            with ThreadPoolExecutor(2) as pool:
                answers = list(
                    pool.map(
                        lambda v: client.post(
                            "/v1/models/half_plus_two:predict", json={"instances": [[v, v, v]]}
                        ),
                        (0, 2),
                    )
                )
            assert [a.json()["predictions"][0][0] for a in answers] == [2.0, 3.0]
            assert ran == [2]  # the abandoned request never ran
            metrics = client.get("/metrics").text
        assert 'primer_inflight_requests{model="half_plus_two",version="1"} 0.0' in metrics
        assert 'primer_queue_depth{model="half_plus_two",version="1"} 0.0' in metrics
        assert 'code="CANCELLED"' in metrics
    finally:
        thread.stop()


def test_rest_queue_full_is_429_and_expired_deadline_is_504(tmp_path) -> None:
    """Over REST: a full queue sheds at once; a request whose deadline passes while queued
    is answered 504 and never reaches the model."""
    import httpx

    from tests.conftest import ServerThread, make_settings
    from tests.fixtures import half_plus_two

    half_plus_two(tmp_path / "half_plus_two" / "1")
    settings = make_settings(tmp_path, batching={"max_batch_size": 1, "max_queue_size": 1})
    thread = ServerThread(settings).start()
    try:
        mv = thread.server.manager.resolve("half_plus_two")
        ran: list[float] = []
        gate, entered = threading.Event(), threading.Event()
        run = mv.batcher._run_batch

        def held(signature, inputs):  # the model, held at a gate
            entered.set()
            gate.wait(30)
            ran.append(float(inputs["x"][0, 0]))
            return run(signature, inputs)

        mv.batcher._run_batch = held

        def predict(value: float, **headers: str) -> httpx.Response:
            return client.post(
                "/v1/models/half_plus_two:predict",
                headers=headers,
                json={"instances": [[value, value, value]]},
            )

        with (
            httpx.Client(base_url=thread.rest_url, timeout=30) as client,
            ThreadPoolExecutor(2) as pool,
        ):
            first = pool.submit(predict, 1)  # runs, held inside the model
            assert entered.wait(10)
            expired = predict(2, **{"Request-Timeout": "0.3"})  # queued, then too late
            assert expired.status_code == 504, expired.text
            assert "deadline" in expired.json()["error"]
            queued = pool.submit(predict, 3)
            deadline = time.monotonic() + 10
            while mv.batcher.queue_depth < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            shed = predict(4)  # the queue (1 request) is full
            assert shed.status_code == 429, shed.text
            assert "limit is 1" in shed.json()["error"]
            gate.set()
            assert first.result().status_code == queued.result().status_code == 200
        assert ran == [1.0, 3.0]  # neither the expired nor the shed request ran
    finally:
        thread.stop()
