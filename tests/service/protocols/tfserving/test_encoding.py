"""TF Serving gRPC Predict response encoding: typed fields by default, tensor_content opt-in.

The MNIST client follows TF Serving's ``mnist_client.py``: one image per Predict, futures
with bounded concurrency, the label from the output's ``float_val``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.conftest import MNIST_NPZ, SHIPPED_MODELS, ServerThread, make_settings

HISTORY = SHIPPED_MODELS / "mnist_dnn" / "1" / "assets.extra" / "history.json"


def half_plus_two_request(x: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(x))
    return request


def test_default_answers_in_typed_fields(prediction) -> None:
    x = np.array([[1, 2, 5]], np.float32)
    y = prediction.Predict(half_plus_two_request(x), timeout=30).outputs["y"]
    assert list(y.float_val) == [2.5, 3.0, 4.5]
    assert y.tensor_content == b""
    assert [d.size for d in y.tensor_shape.dim] == [1, 3]


def test_int_output_in_int64_val(prediction) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "int_doubler"
    request.inputs["ids"].CopyFrom(tf.make_tensor_proto(np.array([3, -4], np.int64)))
    doubled = prediction.Predict(request, timeout=30).outputs["doubled"]
    assert list(doubled.int64_val) == [6, -8]
    assert doubled.tensor_content == b""


@pytest.fixture(scope="module")
def content_server(fixture_repository: Path) -> Iterator[ServerThread]:
    settings = make_settings(fixture_repository, enable_serialization_as_tensor_content=True)
    thread = ServerThread(settings).start()
    yield thread
    thread.stop()


def test_tensor_content_when_enabled(content_server: ServerThread) -> None:
    x = np.array([[1, 2, 5], [0, -2, 4]], np.float32)
    with grpc.insecure_channel(content_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        y = stub.Predict(half_plus_two_request(x), timeout=30).outputs["y"]
    assert not y.float_val
    np.testing.assert_array_equal(
        np.frombuffer(y.tensor_content, np.float32).reshape(2, 3), 0.5 * x + 2
    )


def _mnist_client_accuracy(target: str, images: np.ndarray, labels: np.ndarray) -> float:
    """TF Serving's mnist_client loop: futures, a concurrency cap, argmax of float_val."""
    correct = 0
    lock = threading.Condition()
    active = 0
    done = 0
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for image, label in zip(images, labels, strict=True):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "mnist_dnn"
            request.model_spec.signature_name = "serving_default"
            request.inputs["image"].CopyFrom(
                tf.make_tensor_proto(image, shape=[1, *image.shape], dtype=tf.float32)
            )
            with lock:
                while active >= 16:
                    lock.wait()
                active += 1
            future = stub.Predict.future(request, 30.0)

            def finished(result, label=label) -> None:
                nonlocal correct, active, done
                output = next(iter(result.result().outputs.values()))
                with lock:
                    correct += int(np.argmax(np.array(output.float_val)) == label)
                    active -= 1
                    done += 1
                    lock.notify()

            future.add_done_callback(finished)
        with lock:
            while done < len(labels):
                lock.wait(timeout=60)
    return correct / len(labels)


@pytest.mark.slow
def test_mnist_client_reading_float_val_gets_the_test_accuracy(server: ServerThread) -> None:
    with np.load(MNIST_NPZ) as data:
        images = data["x_test"].astype(np.float32) / 255.0
        labels = data["y_test"]
    accuracy = _mnist_client_accuracy(server.grpc_target, images, labels)
    expected = json.loads(HISTORY.read_text())["test_accuracy"]
    assert accuracy == pytest.approx(expected, abs=1e-4)


def test_mnist_client_reading_float_val_on_a_sample(server: ServerThread) -> None:
    with np.load(MNIST_NPZ) as data:
        images = data["x_test"][:300].astype(np.float32) / 255.0
        labels = data["y_test"][:300]
    assert _mnist_client_accuracy(server.grpc_target, images, labels) > 0.95
