"""Every row of the error table, driven through the real gRPC server, maps to its gRPC code.

A dedicated server carries the settings that make each error reachable: a tiny row limit
and message size, a model whose queue holds one request and whose batch waits longer than
the server's request timeout, a version that fails to load, and a model that fails at run
time. After every bad request the server must still report SERVING.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf
from grpc_health.v1 import health_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from service import errors
from service.transport.grpc_errors import serving_errors
from tests import fixtures
from tests.conftest import ServerThread, make_settings
from tests.helpers import assert_serving, health_status

MAX_MESSAGE_BYTES = 64 * 1024
REQUEST_TIMEOUT_S = 1.0


class _Numerics(tf.Module):
    """Fails at run time (inside TensorFlow) on a NaN input: an unexpected model error."""

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": tf.debugging.check_numerics(x, "x holds NaN") + 1.0}


@pytest.fixture(scope="module")
def error_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    base = tmp_path_factory.mktemp("error_models")
    fixtures.half_plus_two(base / "half_plus_two" / "1")
    broken = base / "half_plus_two" / "2"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a SavedModel")
    fixtures.two_io(base / "slow" / "1")
    module = _Numerics()
    tf.saved_model.save(
        module, str(base / "numerics" / "1"), signatures={"serving_default": module.serve}
    )
    settings = make_settings(
        base,
        max_rows_per_request=4,
        grpc_max_message_bytes=MAX_MESSAGE_BYTES,
        request_timeout_s=REQUEST_TIMEOUT_S,
        models={
            "slow": {
                "batching": {
                    "max_batch_size": 64,
                    "batch_timeout_ms": 30_000,
                    "batch_fill_gap_ms": 0,
                    "max_queue_size": 1,
                }
            }
        },
    )
    thread = ServerThread(settings).start()
    with grpc.insecure_channel(thread.grpc_target) as channel:
        deadline = time.monotonic() + 120
        while health_status(channel) != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, "the error server never became ready"
            time.sleep(0.05)
    yield thread
    thread.stop()


@pytest.fixture(scope="module")
def channel(error_server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(error_server.grpc_target) as chan:
        yield chan


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> prediction_service_pb2_grpc.PredictionServiceStub:
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


def request(
    model: str, version: int | None = None, **inputs: np.ndarray
) -> predict_pb2.PredictRequest:
    message = predict_pb2.PredictRequest()
    message.model_spec.name = model
    if version is not None:
        message.model_spec.version.value = version
    for name, value in inputs.items():
        message.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return message


def expect(
    stub: Any,
    message: predict_pb2.PredictRequest,
    code: grpc.StatusCode,
    needle: str,
    channel: grpc.Channel,
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(message, timeout=60)
    assert info.value.code() is code, info.value.details()
    assert needle in info.value.details()
    assert_serving(channel)


ROW = np.ones((1, 3), np.float32)


def test_not_found(stub, channel) -> None:
    expect(stub, request("no_such_model", x=ROW), grpc.StatusCode.NOT_FOUND, "not found", channel)
    expect(
        stub, request("half_plus_two", 9, x=ROW), grpc.StatusCode.NOT_FOUND, "no version 9", channel
    )


def test_unavailable_for_a_version_that_failed_to_load(stub, channel) -> None:
    expect(stub, request("half_plus_two", 2, x=ROW), grpc.StatusCode.UNAVAILABLE, "FAILED", channel)


def test_invalid_argument(stub, channel) -> None:
    expect(
        stub,
        request("half_plus_two", x=np.ones((1, 2), np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "expects [-1, 3]",
        channel,
    )
    expect(
        stub,
        request("half_plus_two", x=np.array([b"text"], dtype=object)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not bytes",
        channel,
    )


def test_resource_exhausted_for_too_many_rows(stub, channel) -> None:
    expect(
        stub,
        request("half_plus_two", x=np.ones((5, 3), np.float32)),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "the limit is 4",
        channel,
    )


def test_resource_exhausted_for_a_message_over_the_limit(stub, channel) -> None:
    big = np.ones((4, MAX_MESSAGE_BYTES // 4), np.float32)  # 4x the limit, within 4 rows
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(request("half_plus_two", x=big), timeout=60)
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert_serving(channel)


def test_queue_full_then_deadline(error_server, stub, channel) -> None:
    """One request waits in 'slow''s queue (its batch waits 30 s for company); a second is
    shed; the first, sent without a gRPC deadline, passes the server's 1 s default request
    timeout while queued (a client deadline would override the default)."""
    a = {"a": ROW[:, :2], "b": ROW[:, :2]}
    waiting = stub.Predict.future(request("slow", **a))
    batcher = error_server.server.manager.resolve("slow").batcher
    deadline = time.monotonic() + 30
    while batcher.queue_depth < 1 and time.monotonic() < deadline:  # poll, no fixed sleep
        time.sleep(0.005)
    assert batcher.queue_depth == 1
    expect(stub, request("slow", **a), grpc.StatusCode.RESOURCE_EXHAUSTED, "queued", channel)
    with pytest.raises(grpc.RpcError) as info:
        waiting.result()
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert "deadline" in info.value.details()
    assert_serving(channel)


def test_internal_error_carries_a_request_id(stub, channel, caplog) -> None:
    message = request("numerics", x=np.full((1, 3), np.nan, np.float32))
    with pytest.raises(grpc.RpcError) as info:
        stub.Predict(message, timeout=60, metadata=[("x-request-id", "trace-42")])
    assert info.value.code() is grpc.StatusCode.INTERNAL
    assert "request id trace-42" in info.value.details()
    assert "trace-42" in caplog.text
    assert_serving(channel)


def test_health_per_model(channel) -> None:
    serving = health_pb2.HealthCheckResponse.SERVING
    assert health_status(channel, "half_plus_two") == serving  # version 1 serves
    assert health_status(channel, "inference.GRPCInferenceService") == serving
    with pytest.raises(grpc.RpcError) as info:
        health_status(channel, "no_such_model")
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


# ----- the mapping itself, for every class of the error family ----------------------------
class _Aborted(Exception):
    pass


class _Context:
    def __init__(self) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return [("x-request-id", "unit-1")]

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise _Aborted


@pytest.mark.parametrize("error", [*errors.ERROR_TABLE, RuntimeError])
async def test_decorator_maps_every_error_class(error: type[Exception]) -> None:
    class Servicer:
        @serving_errors
        async def Call(self, request: object, context: Any) -> None:
            raise error("boom")

    context = _Context()
    with pytest.raises(_Aborted):
        await Servicer().Call(None, context)
    expected = getattr(error, "grpc_code", grpc.StatusCode.INTERNAL)
    assert context.code is expected
    if expected is grpc.StatusCode.INTERNAL:
        assert "request id unit-1" in context.details
    else:
        assert context.details == "boom"
