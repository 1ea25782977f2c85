"""Fixtures of the protocol tests: gRPC channels and stubs of real, unmodified clients."""

from __future__ import annotations

import io
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from tests.conftest import ServerThread


def png_bytes(pixels: np.ndarray) -> bytes:
    """An 8-bit grayscale array encoded as PNG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def health_status(channel: grpc.Channel, service: str = "") -> int:
    """The gRPC health status of ``service`` ("" = the whole server)."""
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def assert_serving(channel: grpc.Channel) -> None:
    """The server still answers SERVING, overall and for the gRPC services."""
    assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING
    assert (
        health_status(channel, "tensorflow.serving.PredictionService")
        == health_pb2.HealthCheckResponse.SERVING
    )


@pytest.fixture(scope="session")
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    """A gRPC channel to the shared server."""
    with grpc.insecure_channel(server.grpc_target) as chan:
        yield chan


@pytest.fixture(scope="session")
def prediction(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    """TF Serving's PredictionService stub (tensorflow-serving-api)."""
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="session")
def model_service(channel: grpc.Channel) -> model_service_pb2_grpc.ModelServiceStub:
    """TF Serving's ModelService stub (tensorflow-serving-api)."""
    return model_service_pb2_grpc.ModelServiceStub(channel)
