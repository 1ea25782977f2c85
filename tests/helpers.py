"""Helpers shared by the server tests: image bytes and gRPC health probes."""

from __future__ import annotations

import io

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image


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
