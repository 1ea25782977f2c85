"""The benchmark's gRPC load generator: h2load replaying a framed message is real gRPC."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.grpc_clients import METHODS, predict_request_bytes
from loadtest.h2load import connection_split, grpc_frame, run_h2load_grpc
from loadtest.processes import failed_calls, request_codes
from tests.conftest import ServerThread


def test_grpc_frame_is_the_length_prefixed_message() -> None:
    assert grpc_frame(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert grpc_frame(b"") == b"\x00" * 5


@pytest.mark.parametrize(
    ("concurrency", "connections", "expected"),
    [(32, 2, (2, 16)), (1, 2, (1, 1)), (8, 3, (2, 4)), (7, 2, (1, 7))],
)
def test_connection_split_keeps_the_concurrency_exact(
    concurrency: int, connections: int, expected: tuple[int, int]
) -> None:
    assert connection_split(concurrency, connections) == expected


def test_h2load_calls_are_served_and_counted(server: ServerThread) -> None:
    digit = np.random.default_rng(0).random((1, 28, 28), np.float32)
    metrics = f"{server.rest_url}/metrics"
    before = request_codes(metrics, "mnist_dnn", "grpc_tfserving")
    result = run_h2load_grpc(
        server.grpc_target,
        METHODS["tfserving"],
        predict_request_bytes("mnist_dnn", "image", digit),
        concurrency=4,
        seconds=1,
        warmup_s=0.2,
    )
    after = request_codes(metrics, "mnist_dnn", "grpc_tfserving")
    assert result.requests > 0 and result.errors == 0
    assert 0 < result.p50_ms <= result.p99_ms
    assert after["OK"] - before.get("OK", 0) >= result.requests  # and the warm-up calls
    # the calls in flight when h2load stops are cancelled; nothing else fails
    assert set(after) <= {"OK", "CANCELLED"}
    assert after.get("CANCELLED", 0) - before.get("CANCELLED", 0) <= 4
    assert failed_calls(before, after, result.requests, concurrency=4) == 0


def test_grpc_failures_show_in_the_server_counts_not_in_http_status(server: ServerThread) -> None:
    """A failed call is HTTP 200 with a grpc-status trailer: only the server's count sees it."""
    wrong_input = predict_request_bytes("mnist_dnn", "pixels", np.zeros((1, 28, 28), np.float32))
    metrics = f"{server.rest_url}/metrics"
    before = request_codes(metrics, "mnist_dnn", "grpc_tfserving")
    result = run_h2load_grpc(
        server.grpc_target, METHODS["tfserving"], wrong_input, concurrency=2, seconds=1, warmup_s=0
    )
    after = request_codes(metrics, "mnist_dnn", "grpc_tfserving")
    assert result.requests > 0 and result.errors == 0
    invalid = after["INVALID_ARGUMENT"] - before.get("INVALID_ARGUMENT", 0)
    assert invalid >= result.requests
    assert failed_calls(before, after, result.requests, concurrency=2) >= result.requests


def test_failed_calls_forgives_only_the_cancelled_tail() -> None:
    before = {"OK": 10.0}
    assert failed_calls(before, {"OK": 110.0, "CANCELLED": 4.0}, 100, 4) == 0
    assert failed_calls(before, {"OK": 110.0, "CANCELLED": 9.0}, 100, 4) == 5
    assert failed_calls(before, {"OK": 60.0, "UNAVAILABLE": 3.0}, 100, 4) == 53
