"""The /metrics catalogue against a live server: lint, exact counts, stage sums, batching."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import grpc
import httpx
import numpy as np
import orjson
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2 as v2
from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2_grpc as v2_grpc
from tests.conftest import ServerThread
from tests.suites.observability.helpers import (
    instances_for,
    require_binary,
    scrape,
    series_names,
    value,
)
from tests.suites.observability.load import LoadResult, closed_loop_process

STAGES = ("preprocess", "queue", "inference", "postprocess")
PROTOCOL = "rest_tfserving"


def model_version(rest: httpx.Client, model: str) -> str:
    return rest.get(f"/v1/models/{model}/metadata").json()["model_spec"]["version"]


def server_timing(header: str) -> dict[str, float]:
    """``name;dur=ms`` entries of a Server-Timing header, in milliseconds."""
    return {
        m["name"]: float(m["dur"])
        for m in re.finditer(r"(?P<name>\w+);dur=(?P<dur>[0-9.]+)", header)
    }


def test_live_metrics_pass_promtool_check(rest: httpx.Client, traffic_model: str) -> None:
    promtool = require_binary("promtool")
    rest.post(f"/v1/models/{traffic_model}:predict", json=instances_for(rest, traffic_model))
    rest.post("/v1/models/no_such_model:predict", json={"instances": [[1.0]]})
    text, samples = scrape(rest)
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == "" and checked.stderr.strip() == ""
    names = series_names(samples)
    assert not [n for n in names if n.endswith("_created")], "no _created series"
    assert {n.split("_", 1)[0] for n in names} <= {"primer", "process", "python"}


def test_counts_equal_requests_per_model_version_protocol(
    rest: httpx.Client, traffic_model: str
) -> None:
    version = model_version(rest, traffic_model)
    body = instances_for(rest, traffic_model, rows=2)
    labels = {"model": traffic_model, "version": version}
    _, before = scrape(rest)
    ok, bad = 7, 3
    for _ in range(ok):
        assert rest.post(f"/v1/models/{traffic_model}:predict", json=body).status_code == 200
    for _ in range(bad):  # a row of the wrong width: INVALID_ARGUMENT after resolving
        response = rest.post(
            f"/v1/models/{traffic_model}:predict", json={"instances": [[1.0, 2.0]]}
        )
        assert response.status_code == 400
    _, after = scrape(rest)

    def delta(name: str, **extra: str) -> float:
        return value(after, name, **labels, **extra) - value(before, name, **labels, **extra)

    assert delta("primer_requests_total", protocol=PROTOCOL, code="OK") == ok
    assert delta("primer_requests_total", protocol=PROTOCOL, code="INVALID_ARGUMENT") == bad
    assert delta("primer_requests_total") == ok + bad
    assert delta("primer_request_duration_seconds_count", protocol=PROTOCOL) == ok + bad
    assert delta("primer_request_duration_seconds_bucket", protocol=PROTOCOL, le="+Inf") == ok + bad
    for stage in STAGES:  # observed once per request that ran
        assert delta(f"primer_{stage}_duration_seconds_count") == ok, stage
    assert delta("primer_items_total") == 2 * ok
    assert delta("primer_batch_size_count") == ok  # sequential: one batch per request
    assert delta("primer_batch_size_sum") == 2 * ok
    assert delta("primer_batch_duration_seconds_count") == ok
    assert value(after, "primer_inflight_requests", **labels) == 0
    assert value(after, "primer_queue_depth", **labels) == 0


def send_predictions(
    server: ServerThread, rest: httpx.Client, model: str, protocol: str, count: int
) -> None:
    """``count`` successful one-row predictions of zeros over ``protocol``."""
    body = instances_for(rest, model)
    array = np.asarray(body["instances"], dtype=np.float32)
    metadata = rest.get(f"/v1/models/{model}/metadata").json()["metadata"]
    input_name = next(iter(metadata["signature_def"]["signature_def"]["serving_default"]["inputs"]))
    if protocol.startswith("grpc"):
        channel = grpc.insecure_channel(server.grpc_target)
    for _ in range(count):
        if protocol == "rest_tfserving":
            assert rest.post(f"/v1/models/{model}:predict", json=body).status_code == 200
        elif protocol == "rest_v2":
            response = rest.post(
                f"/v2/models/{model}/infer",
                json={
                    "inputs": [
                        {
                            "name": input_name,
                            "shape": list(array.shape),
                            "datatype": "FP32",
                            "data": array.reshape(-1).tolist(),
                        }
                    ]
                },
            )
            assert response.status_code == 200, response.text
        elif protocol == "grpc_tfserving":
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model
            request.inputs[input_name].CopyFrom(tf.make_tensor_proto(array))
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
        else:
            request = v2.ModelInferRequest(
                model_name=model,
                inputs=[
                    v2.ModelInferRequest.InferInputTensor(
                        name=input_name, datatype="FP32", shape=list(array.shape)
                    )
                ],
                raw_input_contents=[array.tobytes()],
            )
            v2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    if protocol.startswith("grpc"):
        channel.close()


@pytest.mark.parametrize("protocol", ["rest_tfserving", "rest_v2", "grpc_tfserving", "grpc_v2"])
def test_counts_are_exact_per_protocol(
    server: ServerThread, rest: httpx.Client, traffic_model: str, protocol: str
) -> None:
    if protocol.startswith("grpc") and not getattr(server.server, "grpc_port", 0):
        pytest.skip("the server has no gRPC port")
    labels = {"model": traffic_model, "version": model_version(rest, traffic_model)}
    _, before = scrape(rest)
    send_predictions(server, rest, traffic_model, protocol, 5)
    _, after = scrape(rest)

    def delta(name: str, **extra: str) -> float:
        return value(after, name, **labels, **extra) - value(before, name, **labels, **extra)

    assert delta("primer_requests_total", protocol=protocol, code="OK") == 5
    assert delta("primer_requests_total") == 5, "no other protocol or code moved"
    assert delta("primer_request_duration_seconds_count", protocol=protocol) == 5
    for stage in STAGES:
        assert delta(f"primer_{stage}_duration_seconds_count") == 5, stage
    assert delta("primer_items_total") == 5


def test_server_timing_stages_add_up_to_total(rest: httpx.Client, traffic_model: str) -> None:
    body = instances_for(rest, traffic_model)
    for _ in range(20):
        response = rest.post(f"/v1/models/{traffic_model}:predict", json=body)
        timing = server_timing(response.headers["server-timing"])
        assert set(timing) == {*STAGES, "total"}
        assert all(v >= 0 for v in timing.values())
        # each figure is rounded to 1 µs in the header
        assert sum(timing[s] for s in STAGES) <= timing["total"] + 0.003, timing


def test_stage_timing_of_an_image_request(rest: httpx.Client, traffic_model: str) -> None:
    if traffic_model != "mnist_dnn":
        pytest.skip("the image path needs the shipped mnist_dnn model")
    digit = sorted((Path(__file__).resolve().parents[3] / "loadtest" / "data").glob("*.png"))
    if not digit:
        pytest.skip("no sample digits in loadtest/data")
    response = rest.post(
        "/v1/models/mnist_dnn:classify",
        content=digit[0].read_bytes(),
        headers={"content-type": "image/png"},
    )
    assert response.status_code == 200
    timing = server_timing(response.headers["server-timing"])
    assert timing["preprocess"] > 0
    assert sum(timing[s] for s in STAGES) <= timing["total"] + 0.003, timing


@pytest.fixture(scope="module")
def load_run(
    server: ServerThread,
    rest: httpx.Client,
    traffic_model: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[LoadResult, dict[str, float]]:
    """32 concurrent connections for 4 s from a child process; metric deltas per model."""
    version = model_version(rest, traffic_model)
    body = orjson.dumps(instances_for(rest, traffic_model))
    _, before = scrape(rest)
    result = closed_loop_process(
        server.rest_url,
        f"/v1/models/{traffic_model}:predict",
        body,
        concurrency=32,
        duration_s=4.0,
        workdir=tmp_path_factory.mktemp("load"),
    )
    _, after = scrape(rest)
    labels = {"model": traffic_model, "version": version}
    names = [
        "primer_request_duration_seconds_sum",
        "primer_request_duration_seconds_count",
        "primer_batch_size_sum",
        "primer_batch_size_count",
        "primer_requests_total",
        *(f"primer_{s}_duration_seconds_{k}" for s in STAGES for k in ("sum", "count")),
    ]
    deltas = {n: value(after, n, **labels) - value(before, n, **labels) for n in names}
    print(
        f"\nload run: {result.sent} requests in {result.elapsed_s:.1f}s "
        f"({result.sent / result.elapsed_s:.0f} req/s), statuses {result.statuses}, "
        f"mean batch {deltas['primer_batch_size_sum'] / deltas['primer_batch_size_count']:.1f}"
    )
    return result, deltas


def test_load_run_is_counted_exactly(load_run: tuple[LoadResult, dict[str, float]]) -> None:
    result, deltas = load_run
    assert result.ok == result.sent > 100
    assert deltas["primer_requests_total"] == result.sent
    assert deltas["primer_request_duration_seconds_count"] == result.sent
    for stage in STAGES:
        assert deltas[f"primer_{stage}_duration_seconds_count"] == result.sent


def test_stage_histogram_sums_match_request_durations(
    load_run: tuple[LoadResult, dict[str, float]],
) -> None:
    _, deltas = load_run
    total = deltas["primer_request_duration_seconds_sum"]
    stages = sum(deltas[f"primer_{s}_duration_seconds_sum"] for s in STAGES)
    assert total > 0
    assert abs(stages - total) <= 0.10 * total, (stages, total)


def test_batches_form_under_concurrency_32(load_run: tuple[LoadResult, dict[str, float]]) -> None:
    _, deltas = load_run
    mean = deltas["primer_batch_size_sum"] / deltas["primer_batch_size_count"]
    assert mean >= 8, f"mean batch size {mean:.2f} under concurrency 32"
