"""tf.Example requests and TF1 predict requests are batched and counted like any other."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerThread, make_settings
from tests.tf1_models import CENSUS, HALF_PLUS_TWO, census_logit

HOUR_MS = 3600 * 1000.0


@pytest.fixture(scope="module")
def batching_server(tf1_repository: Path) -> Iterator[ServerThread]:
    """Batches of exactly 4 rows: nothing runs until 4 rows are queued."""
    batching = {"max_batch_size": 4, "batch_timeout_ms": HOUR_MS, "batch_fill_gap_ms": HOUR_MS}
    thread = ServerThread(make_settings(tf1_repository, batching=batching)).start()
    yield thread
    thread.stop()


def _metric(text: str, line_start: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(line_start)]
    assert len(lines) == 1, (line_start, lines)
    return float(lines[0].rsplit(" ", 1)[1])


def test_a_bad_example_fails_the_batch_it_joined(batching_server: ServerThread) -> None:
    """As in TF Serving's batching session, one session run serves the batch: an example
    missing a required feature fails every request batched with it (documented)."""
    bodies = [
        {"signature_name": "regression", "examples": [{"age": 10.0}, {"age": 20.0}]},
        {"signature_name": "regression", "examples": [{"age": 30.0, "color": "red"}, {}]},
    ]
    with httpx.Client(base_url=batching_server.rest_url, timeout=60) as client:
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(lambda b: client.post(f"/v1/models/{CENSUS}:regress", json=b), bodies)
            )
        assert [a.status_code for a in answers] == [400, 400]
        assert all("Feature: age" in a.json()["error"] for a in answers)
        with ThreadPoolExecutor(2) as pool:  # two good requests fill the next batch
            pool.submit(client.post, f"/v1/models/{CENSUS}:regress", json=bodies[0])
            alone = pool.submit(client.post, f"/v1/models/{CENSUS}:regress", json=bodies[0])
            assert alone.result().json()["results"] == pytest.approx(
                [census_logit(10.0, 0, ""), census_logit(20.0, 0, "")], abs=1e-5
            )


def test_batched_examples_and_predict_rows_are_counted(batching_server: ServerThread) -> None:
    bodies = [
        {"signature_name": "regression", "examples": [{"age": 10.0}, {"age": 20.0}]},
        {"signature_name": "regression", "examples": [{"age": 30.0, "color": "red"}]},
        {"signature_name": "regression", "examples": [{"age": 40.0, "hours": 1}]},
    ]
    model = f'model="{CENSUS}",version="1"'
    labels = f'code="OK",model="{CENSUS}",protocol="rest_tfserving",version="1"'
    with httpx.Client(base_url=batching_server.rest_url, timeout=60) as client:
        before = client.get("/metrics").text
        with ThreadPoolExecutor(3) as pool:
            answers = list(
                pool.map(lambda b: client.post(f"/v1/models/{CENSUS}:regress", json=b), bodies)
            )
            predicts = list(
                pool.map(
                    lambda v: client.post(
                        f"/v1/models/{HALF_PLUS_TWO}:predict", json={"instances": [v, v]}
                    ),
                    (2.0, 4.0),
                )
            )
        after = client.get("/metrics").text
    assert [a.json()["results"] for a in answers] == [
        pytest.approx([census_logit(10.0, 0, ""), census_logit(20.0, 0, "")], abs=1e-5),
        pytest.approx([census_logit(30.0, 0, "red")], abs=1e-5),
        pytest.approx([census_logit(40.0, 1, "")], abs=1e-5),
    ]
    assert [p.json() for p in predicts] == [
        {"predictions": [3.0, 3.0]},
        {"predictions": [4.0, 4.0]},
    ]
    ok = f"primer_requests_total{{{labels}}}"
    assert _metric(after, ok) - (_metric(before, ok) if ok in before else 0) == 3
    batches = f"primer_batch_size_count{{{model}}}"
    rows = f"primer_batch_size_sum{{{model}}}"
    assert _metric(after, batches) - _metric(before, batches) == 1  # 2 + 1 + 1 rows, one run
    assert _metric(after, rows) - _metric(before, rows) == 4
    hpt = f'model="{HALF_PLUS_TWO}",version="123"'
    assert _metric(after, f"primer_batch_size_count{{{hpt}}}") == 1  # the 2 predicts
