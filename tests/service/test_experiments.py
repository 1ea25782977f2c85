"""Experiments on a served model: a weighted traffic split and sticky assignment, over the
in-process core, gRPC and REST, and bad traffic settings refused at load and at reload."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from pydantic import ValidationError
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from service.config import Settings
from service.inference.request import InferenceRequest
from tests import fixtures
from tests.conftest import ServerThread, reloadable_server

SPLIT = """
models:
  half_plus_two:
    version_policy: all
    version_labels: {stable: 1, canary: 2}
    traffic: {stable: 90, canary: 10}
    sticky_key: "header:x-user"
"""
ROW = np.ones((1, 3), np.float32)


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("experiments")
    fixtures.two_versions(base / "models" / "half_plus_two")
    config = base / "primer.yaml"
    config.write_text(SPLIT)
    thread = reloadable_server(base / "models", config)
    yield thread, config
    thread.stop()


def _versions(thread: ServerThread, count: int, metadata: dict[str, str] | None = None) -> Counter:
    """Serve ``count`` unversioned requests in process; count the versions that answered."""
    core = thread.server.core

    async def one() -> int:
        request = InferenceRequest("half_plus_two", {"x": ROW}, metadata=metadata or {})
        with core.scope("experiments_test", "half_plus_two") as scope:
            (version, y), _ = await scope.infer(
                request, lambda result: (result.version, result.outputs["y"])
            )
        assert y[0, 0] == (2.5 if version == 1 else 3.0)  # the outputs agree with the version
        return version

    async def run() -> Counter:
        counts: Counter = Counter()
        for start in range(0, count, 250):
            done = await asyncio.gather(*(one() for _ in range(min(250, count - start))))
            counts.update(done)
        return counts

    return thread.run(run(), timeout=300)


def test_ten_thousand_requests_under_a_90_10_split_land_10_percent_on_the_minor_arm(
    split,
) -> None:
    thread, _ = split
    counts = _versions(thread, 10_000)
    assert sum(counts.values()) == 10_000
    print(f"minor arm share: {counts[2] / 10_000:.4f} ({counts})")
    assert abs(counts[2] / 10_000 - 0.10) <= 0.01, counts
    weight = thread.server.metrics.traffic_weight
    assert weight.labels("half_plus_two", "2")._value.get() == pytest.approx(0.1)
    assert weight.labels("half_plus_two", "1")._value.get() == pytest.approx(0.9)
    with httpx.Client(base_url=thread.rest_url, timeout=30) as client:
        shown = client.get("/v1/experiments/half_plus_two").json()
    assert (shown["split_by"], shown["sticky_key"], shown["rollout"]) == (
        "traffic",
        "header:x-user",
        None,
    )
    assert shown["traffic"] == {"1": pytest.approx(0.9), "2": pytest.approx(0.1)}


def test_a_named_version_or_label_gets_exactly_that_version(split) -> None:
    thread, _ = split
    with httpx.Client(base_url=thread.rest_url, timeout=30) as client:
        for path, version in (
            ("/v1/models/half_plus_two/versions/2:predict", "2"),
            ("/v1/models/half_plus_two/labels/stable:predict", "1"),
        ):
            for _ in range(20):
                response = client.post(path, json={"instances": [[1, 1, 1]]})
                assert response.status_code == 200, response.text
                assert response.headers["x-model-version"] == version


def test_a_sticky_header_keeps_each_user_on_one_version_over_rest_and_grpc(split) -> None:
    thread, _ = split
    seen: dict[str, set[str]] = {}
    with httpx.Client(base_url=thread.rest_url, timeout=30) as client:
        for user in range(40):
            for _ in range(5):
                response = client.post(
                    "/v2/models/half_plus_two/infer",
                    headers={"X-User": f"user-{user}"},
                    json={
                        "inputs": [
                            {"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 1, 1]}
                        ]
                    },
                )
                assert response.status_code == 200, response.text
                body = response.json()
                assert body["model_version"] == response.headers["x-model-version"]
                seen.setdefault(f"user-{user}", set()).add(body["model_version"])
    with grpc.insecure_channel(thread.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half_plus_two"
        request.inputs["x"].CopyFrom(_tensor(ROW))
        for user in range(40):
            for _ in range(5):
                response = stub.Predict(request, metadata=[("x-user", f"user-{user}")], timeout=30)
                seen[f"user-{user}"].add(str(response.model_spec.version.value))
    assert all(len(versions) == 1 for versions in seen.values()), seen
    assert {v for versions in seen.values() for v in versions} == {"1", "2"}  # both arms used
    counts = _versions(thread, 200, {"x-user": "user-7"})
    assert set(counts) == {int(next(iter(seen["user-7"])))}


def test_bad_traffic_settings_are_refused_at_load_and_the_running_split_stays_on_reload(
    split, caplog: pytest.LogCaptureFixture
) -> None:
    thread, config = split
    bad = {
        "weights that do not sum to a positive number": ("{stable: 90, canary: 10}", "{1: 0}"),
        "a negative weight": ("{stable: 90, canary: 10}", "{stable: -1, canary: 2}"),
        "an unknown label": ("{stable: 90, canary: 10}", "{stable: 90, nightly: 10}"),
        "a malformed sticky key": ("header:x-user", "cookie:x"),
    }
    for case, (old, new) in bad.items():
        text = SPLIT.replace(old, new)
        assert text != SPLIT
        with pytest.raises(ValidationError):
            Settings.load(_write(config.parent / "bad.yaml", text))
        config.write_text(text)
        with caplog.at_level(logging.ERROR, logger="service.reload"):
            assert thread.run(thread.server.reloader.reload()) is False, case
        assert "the running settings stay" in caplog.text
    config.write_text(SPLIT)
    assert thread.server.settings.for_model("half_plus_two").traffic == {"stable": 90, "canary": 10}


def test_a_reloaded_split_applies_without_a_restart(split) -> None:
    thread, config = split
    try:
        config.write_text(SPLIT.replace("{stable: 90, canary: 10}", "{canary: 1}"))
        assert thread.run(thread.server.reloader.reload()) is True
        assert _versions(thread, 100) == Counter({2: 100})
    finally:
        config.write_text(SPLIT)
        thread.run(thread.server.reloader.reload())


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _tensor(array: np.ndarray):
    import tensorflow as tf

    return tf.make_tensor_proto(array)
