"""Fixtures of the reliability tests: one server with small limits, its clients, and checks
that the server is still live and still answers a good request correctly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2_grpc
from tests.conftest import ServerThread, make_settings

MAX_BODY_BYTES = 1 << 20
MAX_MESSAGE_BYTES = 1 << 20
MAX_ROWS = 64
MAX_PIXELS = 1_000_000


@pytest.fixture(scope="package")
def limited_server(fixture_repository: Path) -> Iterator[ServerThread]:
    """One server over the fixture models with small limits, so every limit is reachable
    with small requests; the access log is on (its escaping is tested)."""
    settings = make_settings(
        fixture_repository,
        max_body_bytes=MAX_BODY_BYTES,
        grpc_max_message_bytes=MAX_MESSAGE_BYTES,
        max_rows_per_request=MAX_ROWS,
        max_image_pixels=MAX_PIXELS,
        access_log=True,
    )
    thread = ServerThread(settings).start()
    yield thread
    thread.stop()


@pytest.fixture(scope="package")
def http(limited_server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=limited_server.rest_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="package")
def channel(limited_server: ServerThread) -> Iterator[grpc.Channel]:
    options = [("grpc.max_send_message_length", 8 * MAX_MESSAGE_BYTES)]
    with grpc.insecure_channel(limited_server.grpc_target, options=options) as chan:
        yield chan


@pytest.fixture(scope="package")
def tfs(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="package")
def v2(channel: grpc.Channel) -> grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub:
    return grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)


def good_rest(client: httpx.Client) -> None:
    """The server is live and answers a good REST request correctly."""
    assert client.get("/v2/health/live").status_code == 200
    response = client.post(
        "/v1/models/half_plus_two:predict", json={"instances": [[1.0, 2.0, 3.0]]}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [[2.5, 3.0, 3.5]]}


def good_grpc(channel: grpc.Channel) -> None:
    """The server reports SERVING and answers a good gRPC Predict correctly."""
    health = health_pb2_grpc.HealthStub(channel)
    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1, 2, 3]], np.float32)))
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
        request, timeout=10
    )
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [[2.5, 3.0, 3.5]]


@pytest.fixture
def still_serving(http: httpx.Client, channel: grpc.Channel) -> Iterator[None]:
    """After the test: the server is still live and correct over REST and gRPC."""
    yield
    good_rest(http)
    good_grpc(channel)
