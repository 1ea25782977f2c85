"""TF Serving's README quickstart, sent as written, against a ``x: [-1, 1]`` half_plus_two.

TF Serving feeds ``[1.0, 2.0, 5.0]`` to ``x: [-1, 1]`` unchecked and the graph broadcasts;
this server adds the missing trailing size-1 dimension and drops it from the outputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.conftest import ServerThread, make_settings


class _QuickstartHalfPlusTwo(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32, name="x")])
    def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"y": 0.5 * x + 2.0}


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    base: Path = tmp_path_factory.mktemp("quickstart")
    module = _QuickstartHalfPlusTwo()
    tf.saved_model.save(
        module, str(base / "half_plus_two" / "1"), signatures={"serving_default": module.serve}
    )
    thread = ServerThread(make_settings(base)).start()
    yield thread
    thread.stop()


def test_readme_quickstart_row_format(quickstart: ServerThread) -> None:
    response = httpx.post(
        f"{quickstart.rest_url}/v1/models/half_plus_two:predict",
        content=b'{"instances": [1.0, 2.0, 5.0]}',
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [2.5, 3.0, 4.5]}


def test_quickstart_columnar_format(quickstart: ServerThread) -> None:
    response = httpx.post(
        f"{quickstart.rest_url}/v1/models/half_plus_two:predict",
        json={"inputs": [1.0, 2.0, 5.0]},
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"outputs": [2.5, 3.0, 4.5]}


def test_full_shape_keeps_its_dimension(quickstart: ServerThread) -> None:
    response = httpx.post(
        f"{quickstart.rest_url}/v1/models/half_plus_two:predict",
        json={"instances": [[1.0], [2.0]]},
    )
    assert response.json() == {"predictions": [[2.5], [3.0]]}


def test_wrong_size_is_still_refused(quickstart: ServerThread) -> None:
    response = httpx.post(
        f"{quickstart.rest_url}/v1/models/half_plus_two:predict",
        json={"instances": [[1.0, 2.0]]},
    )
    assert response.status_code == 400
    assert "expects [-1, 1]" in response.json()["error"]
    again = httpx.post(
        f"{quickstart.rest_url}/v1/models/half_plus_two:predict",
        json={"instances": [4.0]},
    )
    assert again.json() == {"predictions": [4.0]}


def test_grpc_predict_with_shape_one(quickstart: ServerThread) -> None:
    with grpc.insecure_channel(quickstart.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "half_plus_two"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([2.0], dtype=tf.float32))
        response = stub.Predict(request, timeout=30)
    y = tf.make_ndarray(response.outputs["y"])
    assert y.shape == (1,)
    assert y.tolist() == [3.0]
