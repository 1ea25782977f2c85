"""The same 1,000 MNIST test images give the same predictions over all four protocols.

TF Serving REST, TF Serving gRPC (tensor_content), KServe v2 REST (tritonclient.http, binary
data) and KServe v2 gRPC (tritonclient.grpc) against one server with the shipped mnist_dnn.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
import httpx
import numpy as np
import pytest
import tensorflow as tf
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.conftest import MNIST_NPZ, SHIPPED_MODELS, ServerThread

MODEL = "mnist_dnn"
IMAGES = 1000
CHUNK = 100

pytestmark = pytest.mark.skipif(
    not (SHIPPED_MODELS / MODEL).exists(), reason="models/mnist_dnn is not in the repository"
)


def tfserving_rest(server: ServerThread) -> Callable[[np.ndarray], np.ndarray]:
    client = httpx.Client(base_url=server.rest_url, timeout=60)

    def call(x: np.ndarray) -> np.ndarray:
        response = client.post(f"/v1/models/{MODEL}:predict", json={"instances": x.tolist()})
        assert response.status_code == 200, response.text
        return np.asarray(response.json()["predictions"], np.float32)

    return call


def tfserving_grpc(server: ServerThread) -> Callable[[np.ndarray], np.ndarray]:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel(server.grpc_target)
    )

    def call(x: np.ndarray) -> np.ndarray:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.inputs["image"].CopyFrom(tf.make_tensor_proto(x))
        return tf.make_ndarray(stub.Predict(request, timeout=60).outputs["probabilities"])

    return call


def v2_rest(server: ServerThread) -> Callable[[np.ndarray], np.ndarray]:
    client = triton_http.InferenceServerClient(f"127.0.0.1:{server.server.rest_port}")

    def call(x: np.ndarray) -> np.ndarray:
        tensor = triton_http.InferInput("image", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=True)
        return client.infer(MODEL, [tensor]).as_numpy("probabilities")

    return call


def v2_grpc(server: ServerThread) -> Callable[[np.ndarray], np.ndarray]:
    client = triton_grpc.InferenceServerClient(server.grpc_target)

    def call(x: np.ndarray) -> np.ndarray:
        tensor = triton_grpc.InferInput("image", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        return client.infer(MODEL, [tensor]).as_numpy("probabilities")

    return call


def test_four_protocols_agree_on_1000_mnist_images(server: ServerThread) -> None:
    data = np.load(MNIST_NPZ)
    x = data["x_test"][:IMAGES].astype(np.float32) / 255.0  # the model's unit normalization
    labels = data["y_test"][:IMAGES]
    scores = {}
    for protocol in (tfserving_rest, tfserving_grpc, v2_rest, v2_grpc):
        call = protocol(server)
        scores[protocol.__name__] = np.concatenate(
            [call(x[i : i + CHUNK]) for i in range(0, IMAGES, CHUNK)]
        )
    reference = scores["tfserving_rest"]
    assert reference.shape == (IMAGES, 10)
    assert (reference.argmax(axis=1) == labels).mean() > 0.95
    for name, value in scores.items():
        assert np.array_equal(value.argmax(axis=1), reference.argmax(axis=1)), name
        np.testing.assert_allclose(value, reference, atol=1e-5, err_msg=name)
