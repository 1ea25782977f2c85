"""KServe v2 REST (``/v2/...``) with tritonclient.http, unmodified, and plain HTTP."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from tests.conftest import ServerThread
from tests.fixtures import quadrant_image
from tests.helpers import assert_serving, png_bytes


@pytest.fixture(scope="module")
def client(server: ServerThread) -> Iterator[triton_http.InferenceServerClient]:
    triton = triton_http.InferenceServerClient(f"127.0.0.1:{server.server.rest_port}")
    yield triton
    triton.close()


def test_server_metadata_and_health(client, rest: httpx.Client) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert metadata["name"] == "primer-serving"
    assert set(metadata["extensions"]) >= {"binary_tensor_data", "model_configuration"}
    assert rest.get("/v2").json() == metadata


def test_model_ready(client, rest: httpx.Client) -> None:
    assert client.is_model_ready("half_plus_two")
    assert client.is_model_ready("half_plus_two", "1")
    assert not client.is_model_ready("half_plus_two", "3")
    assert not client.is_model_ready("no_such_model")
    assert rest.get("/v2/models/no_such_model/ready").status_code == 404
    unknown = rest.get("/v2/models/no_such_model")
    assert unknown.status_code == 404
    assert unknown.json()["error"].startswith("Request for unknown model")
    assert "half_plus_two" in unknown.json()["error"]


def test_model_metadata_and_config(client) -> None:
    metadata = client.get_model_metadata("two_io", "1")
    assert metadata == {
        "name": "two_io",
        "versions": ["1"],
        "platform": "tensorflow_savedmodel",
        "inputs": [
            {"name": "a", "datatype": "FP32", "shape": [-1, 2]},
            {"name": "b", "datatype": "FP32", "shape": [-1, 2]},
        ],
        "outputs": [
            {"name": "product", "datatype": "FP32", "shape": [-1, 2]},
            {"name": "sum", "datatype": "FP32", "shape": [-1, 2]},
        ],
    }
    config = client.get_model_config("half_plus_two")
    assert config["name"] == "half_plus_two"
    assert config["platform"] == "tensorflow_savedmodel"
    assert config["max_batch_size"] > 0
    assert config["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [3]}]
    assert config["output"] == [{"name": "y", "data_type": "TYPE_FP32", "dims": [3]}]


@pytest.mark.parametrize("binary", [False, True])
def test_infer_json_and_binary(client, binary: bool) -> None:
    x = np.array([[1, 2, 5], [0, -2, 4]], dtype=np.float32)
    tensor = triton_http.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    output = triton_http.InferRequestedOutput("y", binary_data=binary)
    result = client.infer("half_plus_two", [tensor], outputs=[output], request_id="r1")
    np.testing.assert_allclose(result.as_numpy("y"), 0.5 * x + 2)
    response = result.get_response()
    assert response["id"] == "r1"
    assert response["model_version"] == "1"
    assert ("binary_data_size" in response["outputs"][0].get("parameters", {})) is binary


def test_infer_bytes_image_input(client) -> None:
    """Encoded images as BYTES (binary data: JSON strings cannot carry arbitrary bytes)."""
    images = np.array([png_bytes(quadrant_image(q)) for q in (1, 2)], dtype=np.object_)
    tensor = triton_http.InferInput("image", [2], "BYTES")
    tensor.set_data_from_numpy(images, binary_data=True)
    result = client.infer("tiny_image", [tensor])
    assert list(result.as_numpy("probabilities").argmax(axis=1)) == [1, 2]


def test_infer_plain_json(rest: httpx.Client) -> None:
    body = {
        "inputs": [
            {"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]},
            {"name": "b", "shape": [1, 2], "datatype": "FP32", "data": [[3, 5]]},
        ],
        "outputs": [{"name": "product"}],
    }
    response = rest.post("/v2/models/two_io/versions/1/infer", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "model_name": "two_io",
        "model_version": "1",
        "outputs": [{"name": "product", "datatype": "FP32", "shape": [1, 2], "data": [3.0, 10.0]}],
    }


def test_infer_binary_output_by_request_parameter(rest: httpx.Client) -> None:
    body = {
        "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [0, 2, 4]}],
        "parameters": {"binary_data_output": True},
    }
    response = rest.post("/v2/models/half_plus_two/infer", json=body)
    assert response.status_code == 200
    length = int(response.headers["inference-header-content-length"])
    header = json.loads(response.content[:length])
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 12}
    np.testing.assert_allclose(np.frombuffer(response.content[length:], np.float32), [2, 3, 4])


def test_infer_binary_request_by_hand(rest: httpx.Client) -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 3],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 12},
                }
            ]
        }
    ).encode()
    body = header + np.array([2, 4, 6], np.float32).tobytes()
    response = rest.post(
        "/v2/models/half_plus_two/infer",
        content=body,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [3.0, 4.0, 5.0]


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        (
            "/v2/models/half_plus_two/infer",
            {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]},
            400,
            "[-1, 3]",
        ),
        (
            "/v2/models/half_plus_two/infer",
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2]}]},
            400,
            "needs 3",
        ),
        (
            "/v2/models/half_plus_two/infer",
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP99", "data": [1, 2, 3]}]},
            400,
            "FP99",
        ),
        (
            "/v2/models/half_plus_two/infer",
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "INT32", "data": [1.5, 2, 3]}]},
            400,
            "non-integer",
        ),
        (
            "/v2/models/half_plus_two/infer",
            {"inputs": [{"name": "x", "shape": [1, -3], "datatype": "FP32", "data": [1, 2, 3]}]},
            400,
            "non-negative",
        ),
        ("/v2/models/half_plus_two/infer", {"inputs": []}, 400, "non-empty"),
        (
            "/v2/models/half_plus_two/infer",
            {
                "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}],
                "outputs": [{"name": "nope"}],
            },
            400,
            "unknown output",
        ),
        (
            "/v2/models/half_plus_two/infer",
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 3],
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": 12},
                    }
                ]
            },
            400,
            "binary_data_size",
        ),
        (
            "/v2/models/nope/infer",
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
            404,
            "not found",
        ),
        (
            "/v2/models/half_plus_two/versions/5/infer",
            {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]},
            404,
            "no version 5",
        ),
    ],
)
def test_infer_errors(rest: httpx.Client, channel, path, body, status, needle) -> None:
    response = rest.post(path, json=body)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]
    assert_serving(channel)


def test_malformed_bodies(rest: httpx.Client, channel) -> None:
    assert rest.post("/v2/models/half_plus_two/infer", content=b"{nope").status_code == 400
    response = rest.post(
        "/v2/models/half_plus_two/infer",
        content=b"{}",
        headers={"Inference-Header-Content-Length": "99"},
    )
    assert response.status_code == 400
    assert "Inference-Header-Content-Length" in response.json()["error"]
    header = json.dumps(
        {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}
    ).encode()
    response = rest.post(
        "/v2/models/half_plus_two/infer",
        content=header + b"junk",
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400
    assert "no input claims" in response.json()["error"]
    broken = struct.pack("<I", 100) + b"short"
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": [1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(broken)},
                }
            ]
        }
    ).encode()
    response = rest.post(
        "/v2/models/tiny_image/infer",
        content=header + broken,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 400
    assert "runs past" in response.json()["error"]
    assert rest.get("/v2/models/half_plus_two/bogus").status_code == 404
    assert_serving(channel)


def test_tritonclient_http_error_surfaces_message(client) -> None:
    tensor = triton_http.InferInput("x", [1, 2], "FP32")
    tensor.set_data_from_numpy(np.ones((1, 2), np.float32))
    with pytest.raises(InferenceServerException) as info:
        client.infer("half_plus_two", [tensor])
    assert "expects [-1, 3]" in info.value.message()


def test_inference_statistics(client, rest: httpx.Client) -> None:
    rest.post(
        "/v2/models/half_plus_two/infer",
        json={
            "inputs": [
                {"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}
            ]
        },
    )
    (stats,) = client.get_inference_statistics("half_plus_two")["model_stats"]
    assert stats["name"] == "half_plus_two" and stats["version"] == "1"
    assert stats["inference_count"] >= 2
    assert stats["inference_stats"]["success"]["count"] >= 1
    assert (
        stats["inference_stats"]["compute_infer"]["count"]
        == stats["inference_stats"]["success"]["count"]
    )
