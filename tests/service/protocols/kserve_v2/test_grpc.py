"""KServe v2 gRPC (``inference.GRPCInferenceService``) with tritonclient.grpc, unmodified."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.conftest import ServerThread
from tests.fixtures import quadrant_image
from tests.helpers import assert_serving, png_bytes


@pytest.fixture(scope="module")
def client(server: ServerThread) -> Iterator[triton_grpc.InferenceServerClient]:
    with triton_grpc.InferenceServerClient(server.grpc_target) as triton:
        yield triton


def test_server_live_ready_and_metadata(client) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata(as_json=True)
    assert metadata["name"] == "primer-serving"
    assert "binary_tensor_data" in metadata["extensions"]
    assert "model_configuration" in metadata["extensions"]


def test_model_ready(client) -> None:
    assert client.is_model_ready("half_plus_two")
    assert client.is_model_ready("half_plus_two", "1")
    assert not client.is_model_ready("half_plus_two", "9")
    with pytest.raises(InferenceServerException) as info:
        client.is_model_ready("no_such_model")
    assert info.value.status() == "StatusCode.NOT_FOUND"


def test_unknown_model_uses_tritons_wording(client) -> None:
    with pytest.raises(InferenceServerException) as info:
        client.get_model_metadata("no_such_model")
    assert info.value.status() == "StatusCode.NOT_FOUND"
    message = info.value.message()
    assert message.startswith("Request for unknown model"), message
    assert "half_plus_two" in message  # still says what is available


def test_model_metadata(client) -> None:
    metadata = client.get_model_metadata("two_io", as_json=True)
    assert metadata["name"] == "two_io"
    assert metadata["versions"] == ["1"]
    assert metadata["platform"] == "tensorflow_savedmodel"
    assert {t["name"]: (t["datatype"], t["shape"]) for t in metadata["inputs"]} == {
        "a": ("FP32", ["-1", "2"]),
        "b": ("FP32", ["-1", "2"]),
    }
    assert {t["name"] for t in metadata["outputs"]} == {"sum", "product"}


def test_model_config(client) -> None:
    config = client.get_model_config("tiny_image", as_json=True)["config"]
    assert config["name"] == "tiny_image"
    assert config["platform"] == "tensorflow_savedmodel"
    assert int(config["max_batch_size"]) > 0
    assert config["input"] == [{"name": "image", "data_type": "TYPE_FP32", "dims": ["8", "8", "1"]}]
    assert config["output"] == [{"name": "probabilities", "data_type": "TYPE_FP32", "dims": ["4"]}]


def test_infer_raw_contents_two_inputs(client) -> None:
    a = np.array([[1, 2], [3, 4]], dtype=np.float32)
    b = np.array([[5, 6], [7, 8]], dtype=np.float32)
    inputs = [
        triton_grpc.InferInput("a", list(a.shape), "FP32"),
        triton_grpc.InferInput("b", list(b.shape), "FP32"),
    ]
    inputs[0].set_data_from_numpy(a)
    inputs[1].set_data_from_numpy(b)
    result = client.infer(
        "two_io",
        inputs,
        model_version="1",
        request_id="req-7",
        outputs=[triton_grpc.InferRequestedOutput("sum")],
    )
    np.testing.assert_allclose(result.as_numpy("sum"), a + b)
    assert result.as_numpy("product") is None
    response = result.get_response()
    assert response.id == "req-7"
    assert response.model_version == "1"


def test_infer_bytes_image_input(client) -> None:
    images = np.array([png_bytes(quadrant_image(q)) for q in (0, 3)], dtype=np.object_)
    image = triton_grpc.InferInput("image", [2], "BYTES")
    image.set_data_from_numpy(images)
    result = client.infer("tiny_image", [image])
    assert list(result.as_numpy("probabilities").argmax(axis=1)) == [0, 3]


def test_infer_typed_contents(server) -> None:
    """Typed ``contents`` (no raw data), sent with tritonclient's own generated stub."""
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        request = service_pb2.ModelInferRequest(model_name="half_plus_two")
        tensor = request.inputs.add(name="x", datatype="FP32", shape=[1, 3])
        tensor.contents.fp32_contents.extend([2.0, 4.0, 6.0])
        response, call = stub.ModelInfer.with_call(
            request, timeout=30, metadata=(("x-request-id", "v2-7"),)
        )
    trailing = dict(call.trailing_metadata())
    assert trailing["x-request-id"] == "v2-7"
    assert "inference;dur=" in trailing["server-timing"]
    (output,) = response.outputs
    assert output.name == "y" and output.datatype == "FP32" and list(output.shape) == [1, 3]
    np.testing.assert_allclose(
        np.frombuffer(response.raw_output_contents[0], np.float32), [3, 4, 5]
    )


@pytest.mark.parametrize(
    ("inputs", "code", "needle"),
    [
        (
            [("x", [1, 2], "FP32", np.ones((1, 2), np.float32))],
            "INVALID_ARGUMENT",
            "expects [-1, 3]",
        ),
        (
            [
                ("x", [1, 3], "FP32", np.ones((1, 3), np.float32)),
                ("x", [1, 3], "FP32", np.ones((1, 3), np.float32)),
            ],
            "INVALID_ARGUMENT",
            "more than once",
        ),
        ([("nope", [1, 3], "FP32", np.ones((1, 3), np.float32))], "INVALID_ARGUMENT", "expects"),
    ],
)
def test_infer_errors(client, channel, inputs, code, needle) -> None:
    tensors = []
    for name, shape, datatype, data in inputs:
        tensor = triton_grpc.InferInput(name, shape, datatype)
        tensor.set_data_from_numpy(data)
        tensors.append(tensor)
    with pytest.raises(InferenceServerException) as info:
        client.infer("half_plus_two", tensors)
    assert info.value.status() == f"StatusCode.{code}"
    assert needle in info.value.message()
    assert_serving(channel)


def test_infer_int64_input_converts_to_model_dtype(client) -> None:
    tensor = triton_grpc.InferInput("x", [1, 3], "INT64")
    tensor.set_data_from_numpy(np.array([[2, 4, 6]], np.int64))
    np.testing.assert_allclose(client.infer("half_plus_two", [tensor]).as_numpy("y"), [[3, 4, 5]])


def test_raw_size_mismatch_is_invalid(server, channel) -> None:
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    request = service_pb2.ModelInferRequest(model_name="half_plus_two")
    request.inputs.add(name="x", datatype="FP32", shape=[1, 3])
    request.raw_input_contents.append(b"\0" * 8)
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request, timeout=30)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "needs 12" in info.value.details()
    assert_serving(channel)


def test_inference_statistics_follow_the_metrics(client) -> None:
    def counts() -> tuple[int, int]:
        (stats,) = client.get_inference_statistics("two_io", as_json=True)["model_stats"]
        return (
            int(stats.get("inference_count", 0)),
            int(stats["inference_stats"]["success"].get("count", 0)),
        )

    rows_before, ok_before = counts()
    a = triton_grpc.InferInput("a", [3, 2], "FP32")
    a.set_data_from_numpy(np.ones((3, 2), np.float32))
    b = triton_grpc.InferInput("b", [3, 2], "FP32")
    b.set_data_from_numpy(np.ones((3, 2), np.float32))
    client.infer("two_io", [a, b])
    assert counts() == (rows_before + 3, ok_before + 1)
