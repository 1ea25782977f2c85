"""Deadlines and cancellation over REST and gRPC: expired or abandoned work never runs.

The ``held`` model's batches wait 30 s to fill, so a request stays queued until its
deadline passes or its client gives up. After each case the model has not run, the queue
depth and in-flight gauges are back to 0, and the outcome is counted under its code.
(REST disconnects are covered in tests/service/test_batching.py.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from tensorflow.core.framework import types_pb2

from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2 as pb
from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2_grpc
from tests import fixtures
from tests.conftest import ServerThread, make_settings
from tests.suites.reliability.clients import predict_request, tensor_proto
from tests.suites.reliability.conftest import good_grpc, good_rest

ROW = [[1.0, 2.0, 3.0]]
HELD_QUEUE_SIZE = 48


@pytest.fixture(scope="module")
def held_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    base: Path = tmp_path_factory.mktemp("deadline_models")
    fixtures.half_plus_two(base / "half_plus_two" / "1")
    fixtures.half_plus_two(base / "held" / "1")
    settings = make_settings(
        base,
        models={
            "held": {
                "batching": {
                    "max_batch_size": 64,
                    "batch_timeout_ms": 30_000,
                    "batch_fill_gap_ms": 0,
                    "max_queue_size": HELD_QUEUE_SIZE,
                }
            }
        },
    )
    thread = ServerThread(settings).start()
    yield thread
    thread.stop()


@pytest.fixture
def ran(held_server: ServerThread) -> Iterator[list[int]]:
    """Row counts of every batch the ``held`` model runs during the test."""
    batcher = held_server.server.manager.resolve("held").batcher
    original = batcher._run_batch
    rows: list[int] = []

    def spy(signature: str, inputs: dict[str, Any]) -> Any:
        rows.append(len(next(iter(inputs.values()))))
        return original(signature, inputs)

    batcher._run_batch = spy
    yield rows
    batcher._run_batch = original


@pytest.fixture(scope="module")
def http(held_server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=held_server.rest_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def channel(held_server: ServerThread) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(held_server.grpc_target) as chan:
        yield chan


def gauges_settle(server: ServerThread, http: httpx.Client) -> str:
    """Wait until queue depth and in-flight are 0 for ``held``; return /metrics."""
    batcher = server.server.manager.resolve("held").batcher
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        metrics = http.get("/metrics").text
        if (
            batcher.queue_depth == 0
            and 'primer_inflight_requests{model="held",version="1"} 0.0' in metrics
        ):
            assert 'primer_queue_depth{model="held",version="1"} 0.0' in metrics
            return metrics
        time.sleep(0.02)  # a separate thread's gauges: poll until they settle
    raise AssertionError(f"gauges did not return to 0: queue depth {batcher.queue_depth}")


def count(metrics: str, protocol: str, code: str) -> float:
    prefix = (
        f'primer_requests_total{{code="{code}",model="held",protocol="{protocol}",version="1"}}'
    )
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


def test_rest_request_timeout_header_expires_while_queued(held_server, http, ran, channel) -> None:
    started = time.monotonic()
    response = http.post(
        "/v1/models/held:predict", json={"instances": ROW}, headers={"Request-Timeout": "0.3"}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert "deadline" in response.json()["error"]
    assert 0.25 < elapsed < 5
    metrics = gauges_settle(held_server, http)
    assert count(metrics, "rest_tfserving", "DEADLINE_EXCEEDED") >= 1
    assert ran == []
    good_rest(http)
    good_grpc(channel)


def test_v2_rest_timeout_parameter_and_header(held_server, http, ran) -> None:
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]}
    response = http.post("/v2/models/held/infer", json={**body, "parameters": {"timeout": 200_000}})
    assert response.status_code == 504, response.text
    response = http.post("/v2/models/held/infer", json=body, headers={"Request-Timeout": "0.2"})
    assert response.status_code == 504, response.text
    gauges_settle(held_server, http)
    assert ran == []


def test_grpc_deadline_expires_while_queued(held_server, http, ran, channel) -> None:
    stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
    request = pb.ModelInferRequest(model_name="held")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 3]).contents.fp32_contents.extend(
        [1, 2, 3]
    )
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request, timeout=0.3)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    metrics = gauges_settle(held_server, http)
    # the server's own deadline (from grpc-timeout) or the transport's, whichever fired
    assert (
        count(metrics, "grpc_v2", "DEADLINE_EXCEEDED") + count(metrics, "grpc_v2", "CANCELLED") >= 1
    )
    assert ran == []
    good_grpc(channel)


def test_grpc_cancel_drops_queued_work(held_server, http, ran, channel) -> None:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    proto = tensor_proto(types_pb2.DT_FLOAT, [1, 3], float_val=[1, 2, 3])
    before = count(http.get("/metrics").text, "grpc_tfserving", "CANCELLED")
    future = stub.Predict.future(predict_request("held", {"x": proto}), timeout=60)
    batcher = held_server.server.manager.resolve("held").batcher
    deadline = time.monotonic() + 10
    while batcher.queue_depth == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert batcher.queue_depth == 1
    future.cancel()
    metrics = gauges_settle(held_server, http)
    assert count(metrics, "grpc_tfserving", "CANCELLED") == before + 1
    assert ran == []
    good_grpc(channel)


def test_expired_requests_leave_room_for_new_ones(held_server, http, ran) -> None:
    """Expired work is gone, not just hidden: the queue takes new requests afterwards, and a
    request that fills the batch runs it (with only its own rows)."""
    rows = [[float(i)] * 3 for i in range(64)]
    for _ in range(3):
        response = http.post(
            "/v1/models/held:predict", json={"instances": ROW}, headers={"Request-Timeout": "0.05"}
        )
        assert response.status_code == 504
    response = http.post("/v1/models/held:predict", json={"instances": rows})
    assert response.status_code == 200, response.text
    assert ran == [64]
    gauges_settle(held_server, http)


def test_queue_capacity_is_each_versions_max_queue_size(
    held_server: ServerThread, http: httpx.Client
) -> None:
    """The saturation alert divides the queue depth by this gauge."""
    metrics = http.get("/metrics").text
    default = held_server.server.settings.batching.max_queue_size
    assert default != HELD_QUEUE_SIZE
    assert f'primer_queue_capacity{{model="held",version="1"}} {HELD_QUEUE_SIZE}.0' in metrics
    assert f'primer_queue_capacity{{model="half_plus_two",version="1"}} {default}.0' in metrics
