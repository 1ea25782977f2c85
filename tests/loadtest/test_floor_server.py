"""The bench's protocol floor: no-op REST and gRPC stacks, and how the summary uses them."""

from __future__ import annotations

import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from loadtest.bench import served_batch_size, summarize
from loadtest.floor_server import REST_REPLY
from loadtest.grpc_clients import METHODS, predict_request_bytes
from loadtest.h2load import run_h2load_grpc
from loadtest.processes import free_port, running, stop
from loadtest.wrk import run_wrk


@pytest.fixture(scope="module")
def floor() -> Iterator[tuple[int, int]]:
    """(REST port, gRPC port) of a running floor server."""
    rest_port, grpc_port = free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "loadtest.floor_server",
        "--rest-port",
        str(rest_port),
        "--grpc-port",
        str(grpc_port),
    ]
    with running(command, rest_port, health_path="/", timeout=60) as process:
        yield rest_port, grpc_port
        # uvicorn shuts down gracefully, then re-raises the SIGTERM it captured
        assert stop(process, timeout=20) == -signal.SIGTERM, "not killed after a timeout"


def test_rest_reads_the_body_and_answers_the_fixed_reply(floor: tuple[int, int]) -> None:
    response = httpx.post(
        f"http://127.0.0.1:{floor[0]}/v1/models/any:predict",
        content=b'{"instances": [[1.0]]}' * 1000,
        timeout=10,
    )
    assert response.status_code == 200
    assert response.content == REST_REPLY
    assert response.headers["content-type"] == "application/json"


def test_grpc_answers_any_unary_method_with_an_empty_message(floor: tuple[int, int]) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "any"
    with grpc.insecure_channel(f"127.0.0.1:{floor[1]}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=10
        )
    assert response == predict_pb2.PredictResponse()


def test_the_bench_load_generators_drive_it_without_errors(floor: tuple[int, int]) -> None:
    digit = np.zeros((1, 28, 28), np.float32)
    grpc_result = run_h2load_grpc(
        f"127.0.0.1:{floor[1]}",
        METHODS["tfserving"],
        predict_request_bytes("mnist_dnn", "image", digit),
        concurrency=4,
        seconds=1,
        warmup_s=0.2,
    )
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.json"
        body.write_text('{"instances": [[0.5]]}')
        rest_result = run_wrk(
            f"http://127.0.0.1:{floor[0]}/v1/models/m:predict", body, concurrency=4, seconds=1
        )
    for result in (grpc_result, rest_result):
        assert result.requests > 0 and result.errors == 0


def test_summary_compares_served_runs_with_their_protocols_floor() -> None:
    def run(concurrency: int, rps: float) -> dict[str, float]:
        return {"concurrency": concurrency, "requests_per_s": rps}

    report = {
        "raw_ceiling": {"mnist_dnn": {1: 1000.0, 32: 20000.0}},
        "scenarios": {"mnist_json": {"model": "mnist_dnn"}},
        "served": {
            "mnist_json": [run(8, 3000.0), run(32, 6000.0)],
            "mnist_grpc_tfserving": [run(32, 5000.0)],
        },
        "naive": {},
        "floor": {"rest": run(32, 48000.0), "grpc": run(32, 10000.0)},
    }
    summary = summarize(report)
    assert summary["mnist_json@c32"]["fraction_of_floor"] == 0.125
    assert summary["mnist_grpc_tfserving@c32"]["fraction_of_floor"] == 0.5
    assert "fraction_of_floor" not in summary["mnist_json@c8"], "floor measured at c=32 only"
    assert summary["mnist_grpc_tfserving@c32"]["efficiency"] == 0.25


def test_the_served_resnet_batch_leaves_room_to_pipeline() -> None:
    plateau = {1: 33.2, 2: 41.7, 4: 43.2, 8: 46.3, 16: 47.3, 32: 48.2}  # a session-5 run
    assert served_batch_size(plateau, concurrency=32) == 8
    assert served_batch_size({**plateau, 4: 47.0}, concurrency=32) == 4
    assert served_batch_size(plateau, concurrency=64) == 16
    assert served_batch_size(plateau, concurrency=1) == 1
