"""Canary rollouts under load: a good candidate is promoted step by step to 100%, one whose
outputs differ is rolled back to 0% at the first interval, and so is one that fails 5% of
requests, whose failures the baseline answers: no client request fails. Load goes over REST on
127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import httpx
import numpy as np
import pytest

from service.config import Settings
from tests import fixtures
from tests.conftest import ServerThread, reloadable_server

CONFIG = """
models:
  half_plus_two:
    version_policy: all
    rollout:
      candidate: %d
      baseline: 1
      steps: [25, 50, 100]
      interval_s: 0.4
      gates: {max_error_ratio: 0.01, min_agreement: 0.9}
"""


@pytest.fixture(scope="module")
def rolling(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("rollout")
    fixtures.rollout_candidates(base / "models" / "half_plus_two")
    config = base / "primer.yaml"
    config.write_text(CONFIG % 2)
    thread = reloadable_server(base / "models", config)
    yield thread, config
    thread.stop()


def _load_until(
    thread: ServerThread, candidate: int, phase: str, marked: float = 0.0, limit_s: float = 60
) -> tuple[Counter, int]:
    """Unversioned REST predicts from 8 concurrent clients until the rollout of
    ``candidate`` reaches ``phase`` (bounded by ``limit_s``), then 200 more; the versions
    that served those 200 (``X-Model-Version``), and how many requests failed.
    A ``marked`` share of the requests hold the value 13 (version 4 fails them)."""
    rollouts = thread.server.manager.rollouts
    rng = np.random.default_rng(5)
    failures = 0

    async def one(client: httpx.AsyncClient) -> int:
        nonlocal failures
        rows = rng.normal(size=(2, 3)).astype(np.float32)
        if rng.random() < marked:
            rows[0, 0] = 13.0
        response = await client.post(
            "/v1/models/half_plus_two:predict", json={"instances": rows.tolist()}
        )
        if response.status_code != 200:
            failures += 1
            return 0
        return int(response.headers["x-model-version"])

    async def load(client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await one(client)

    async def run() -> Counter:
        nonlocal marked
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=thread.rest_url, timeout=60, limits=limits) as client:
            stop = asyncio.Event()
            clients = [asyncio.create_task(load(client, stop)) for _ in range(8)]
            deadline = time.monotonic() + limit_s
            while time.monotonic() < deadline:
                state = rollouts.states.get("half_plus_two")
                if state and state.settings.candidate == candidate and state.phase == phase:
                    break
                await asyncio.sleep(0.05)
            marked = 0.0
            stop.set()
            await asyncio.gather(*clients)
            return Counter(await asyncio.gather(*(one(client) for _ in range(200))))

    after = asyncio.run(run())
    return after, failures


def _moves_of(state) -> list[tuple[str, float]]:
    """The rollout's moves once running, without repeats (a step can hold for intervals)."""
    moves = [move for move in state.history if move[0] != "waiting"]
    return [move for i, move in enumerate(moves) if i == 0 or move != moves[i - 1]]


def _moves(caplog: pytest.LogCaptureFixture, candidate: int) -> list[str]:
    prefix = f"rollout of half_plus_two:{candidate}: "
    return [
        r.getMessage()[len(prefix) :] for r in caplog.records if r.getMessage().startswith(prefix)
    ]


def test_a_good_candidate_is_promoted_to_100_percent_under_load(
    rolling, caplog: pytest.LogCaptureFixture
) -> None:
    thread, _ = rolling
    with caplog.at_level(logging.INFO, logger="service.models.rollout"):
        after, failures = _load_until(thread, 2, "promoted")
    state = thread.server.manager.rollouts.states["half_plus_two"]
    assert (state.phase, state.weight) == ("promoted", 100.0), _moves(caplog, 2)
    assert failures == 0
    assert after == Counter({2: 200})
    assert thread.server.metrics.rollout_step.labels("half_plus_two")._value.get() == 100
    assert _moves_of(state) == [("running", 25), ("running", 50), ("promoted", 100)]
    assert "promoted at 100%" in caplog.text


def test_a_candidate_whose_outputs_differ_is_rolled_back_at_the_first_interval(
    rolling, caplog: pytest.LogCaptureFixture
) -> None:
    thread, config = rolling
    config.write_text(CONFIG % 3)
    assert thread.run(thread.server.reloader.reload()) is True
    with caplog.at_level(logging.INFO, logger="service.models.rollout"):
        after, failures = _load_until(thread, 3, "rolled_back")
    state = thread.server.manager.rollouts.states["half_plus_two"]
    moves = _moves(caplog, 3)
    assert (state.phase, state.weight) == ("rolled_back", 0.0), moves
    assert "agreement" in state.reason
    assert failures == 0
    assert after == Counter({1: 200})  # all traffic back on the baseline
    # the candidate never went past its first step: 25%, then straight back to 0
    assert _moves_of(state) == [("running", 25), ("rolled_back", 0)], moves
    assert "rolled_back at 0%" in caplog.text


def test_a_candidate_that_fails_5_percent_of_requests_is_rolled_back_with_no_client_failure(
    rolling, caplog: pytest.LogCaptureFixture
) -> None:
    thread, config = rolling
    config.write_text(CONFIG % 4)
    assert thread.run(thread.server.reloader.reload()) is True
    with caplog.at_level(logging.INFO, logger="service.models.rollout"):
        after, failures = _load_until(thread, 4, "rolled_back", marked=0.05)
    state = thread.server.manager.rollouts.states["half_plus_two"]
    moves = _moves(caplog, 4)
    assert (state.phase, state.weight) == ("rolled_back", 0.0), moves
    assert "error ratio" in state.reason and state.last_gate == state.reason
    assert after == Counter({1: 200})  # all traffic back on the baseline
    assert _moves_of(state) == [("running", 25), ("rolled_back", 0)], moves
    assert "rolled_back at 0%" in caplog.text
    # every request the candidate failed was answered by the baseline: no client saw a
    # failure, and the candidate's failures are the ones its error gate counted
    assert failures == 0
    assert state.retried > 0
    assert "was answered by 1" in caplog.text
    client_errors = [
        sample
        for family in thread.server.metrics.requests.collect()
        for sample in family.samples
        if sample.labels.get("code", "OK") != "OK" and sample.value > 0
    ]
    assert client_errors == []
    with httpx.Client(base_url=thread.rest_url, timeout=30) as client:
        shown = client.get("/v1/experiments/half_plus_two").json()
    assert shown["split_by"] == "rollout"
    assert shown["traffic"] == {"1": 1.0, "4": 0.0}
    rollout = shown["rollout"]
    assert (rollout["phase"], rollout["candidate"], rollout["step"]) == ("rolled_back", 4, 0)
    assert rollout["retried_on_baseline"] == state.retried
    assert rollout["last_gate"].startswith("error ratio")


def test_a_request_naming_the_candidate_sees_its_failure(rolling) -> None:
    """The retry covers routed requests only: a client that names a version gets it."""
    thread, _ = rolling
    with httpx.Client(base_url=thread.rest_url, timeout=30) as client:
        answer = client.post(
            "/v1/models/half_plus_two/versions/4:predict", json={"instances": [[13.0, 0, 0]]}
        )
    assert answer.status_code == 500 and "x holds 13" in answer.text


def test_the_control_endpoint_is_off_by_default(rolling) -> None:
    thread, _ = rolling
    with httpx.Client(base_url=thread.rest_url, timeout=30) as client:
        assert client.get("/v1/experiments/half_plus_two/rollout").status_code == 404
        assert client.post("/v1/experiments/half_plus_two/rollout:abort").status_code == 404
        # the read-only view of the split and the rollout is always served
        shown = client.get("/v1/experiments/half_plus_two").json()
        assert shown["split_by"] == "rollout" and shown["rollout"]["baseline"] == 1
        missing = client.get("/v1/experiments/nothing")
        assert missing.status_code == 404 and "unknown model" in missing.text


def test_the_control_endpoint_pauses_resumes_and_aborts_behind_the_token(tmp_path) -> None:
    fixtures.rollout_candidates(tmp_path / "models" / "half_plus_two")
    config = tmp_path / "primer.yaml"
    config.write_text((CONFIG % 2).replace("interval_s: 0.4", "interval_s: 600"))
    settings = Settings.load(
        config,
        model_base_path=str(tmp_path / "models"),
        host="127.0.0.1",
        rest_port=0,
        grpc_port=0,
        poll_interval_s=0,
        rollout_control=True,
        auth_token="s3cret",
    )
    thread = ServerThread(settings).start()
    path = "/v1/experiments/half_plus_two/rollout"
    try:
        with httpx.Client(base_url=thread.rest_url, timeout=30) as client:
            assert client.get(path).status_code == 401
            client.headers["authorization"] = "Bearer s3cret"
            state = client.get(path).json()
            assert (state["candidate"], state["baseline"]) == (2, 1)
            assert (state["steps"], state["interval_s"]) == ([25, 50, 100], 600)
            assert client.post(path + ":pause").json()["phase"] == "paused"
            conflict = client.post(path + ":pause")
            assert conflict.status_code == 400
            assert "cannot pause a rollout that is paused" in conflict.text
            assert client.post(path + ":resume").json()["phase"] == "running"
            aborted = client.post(path + ":abort").json()
            assert (aborted["phase"], aborted["candidate_percent"]) == ("aborted", 0.0)
            versions = {
                client.post(
                    "/v1/models/half_plus_two:predict", json={"instances": [[1, 2, 3]]}
                ).headers["x-model-version"]
                for _ in range(50)
            }
            assert versions == {"1"}
            assert client.post(path + ":explode").status_code == 400
            missing = client.get("/v1/experiments/nothing/rollout")
            assert missing.status_code == 404 and "has no rollout" in missing.text
    finally:
        thread.stop()


def test_the_baseline_answers_a_candidate_failure_over_grpc_and_v2(tmp_path) -> None:
    """A rollout in progress at 100%: every routed request goes to the failing candidate 4;
    the ones it fails are answered by the baseline over TF Serving gRPC and KServe v2 REST,
    and the response names the version that answered."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    fixtures.rollout_candidates(tmp_path / "models" / "half_plus_two")
    config = tmp_path / "primer.yaml"
    config.write_text(
        (CONFIG % 4).replace("interval_s: 0.4", "interval_s: 600").replace("[25, 50, 100]", "[100]")
    )
    thread = reloadable_server(tmp_path / "models", config)
    try:
        with grpc.insecure_channel(thread.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            answered = {}
            for first in (1.0, 13.0):
                request = predict_pb2.PredictRequest()
                request.model_spec.name = "half_plus_two"
                rows = np.asarray([[first, 2.0, 4.0]], np.float32)
                request.inputs["x"].CopyFrom(tf.make_tensor_proto(rows))
                response = stub.Predict(request, timeout=30)
                answered[first] = (
                    response.model_spec.version.value,
                    list(tf.make_ndarray(response.outputs["y"]).ravel()),
                )
        assert answered == {1.0: (4, [2.5, 3.0, 4.0]), 13.0: (1, [8.5, 3.0, 4.0])}
        with httpx.Client(base_url=thread.rest_url, timeout=30) as client:
            tensor = {"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [13, 0, 2]}
            v2 = client.post("/v2/models/half_plus_two/infer", json={"inputs": [tensor]})
            assert v2.status_code == 200, v2.text
            assert v2.json()["model_version"] == "1"
            assert v2.json()["outputs"][0]["data"] == [8.5, 2.0, 3.0]
            shown = client.get("/v1/experiments/half_plus_two").json()["rollout"]
        assert (shown["phase"], shown["candidate_percent"]) == ("running", 100.0)
        assert shown["retried_on_baseline"] == 2
    finally:
        thread.stop()
