"""TF Serving's gRPC API against a real server, with the tensorflow-serving-api stubs."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    predict_pb2,
)

from tests.fixtures import quadrant_image
from tests.helpers import assert_serving, png_bytes


def predict_request(model: str, **inputs: tensor_pb2.TensorProto) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for name, proto in inputs.items():
        request.inputs[name].CopyFrom(proto)
    return request


def float_val_proto(values: np.ndarray) -> tensor_pb2.TensorProto:
    """A DT_FLOAT TensorProto using the typed repeated field, not tensor_content."""
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in values.shape]
        ),
        float_val=values.reshape(-1).tolist(),
    )


def test_predict_with_tensor_content(prediction) -> None:
    x = np.array([[1, 2, 5], [0, -2, 4]], dtype=np.float32)
    proto = tf.make_tensor_proto(x)
    assert proto.tensor_content  # the client really sends tensor_content
    response = prediction.Predict(predict_request("half_plus_two", x=proto), timeout=30)
    assert response.outputs["y"].float_val  # and gets typed fields back, as TF Serving does
    assert not response.outputs["y"].tensor_content
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), 0.5 * x + 2)
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == 1
    assert response.model_spec.signature_name == "serving_default"


def test_predict_with_float_val(prediction) -> None:
    x = np.array([[2, 4, 6]], dtype=np.float32)
    response = prediction.Predict(
        predict_request("half_plus_two", x=float_val_proto(x)), timeout=30
    )
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), [[3, 4, 5]])


def test_predict_typed_field_with_one_value_fills_the_shape(prediction) -> None:
    proto = float_val_proto(np.zeros((2, 3), np.float32))
    del proto.float_val[:]
    proto.float_val.append(4.0)
    response = prediction.Predict(predict_request("half_plus_two", x=proto), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), np.full((2, 3), 4.0))


def test_predict_int_val_is_converted_to_the_model_dtype(prediction) -> None:
    proto = tf.make_tensor_proto(np.array([[1, 2, 3]], dtype=np.int32))
    proto.ClearField("tensor_content")
    proto.int_val.extend([1, 2, 3])
    response = prediction.Predict(predict_request("half_plus_two", x=proto), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), [[2.5, 3, 3.5]])


def test_predict_image_bytes_go_through_preprocessing(prediction) -> None:
    images = [png_bytes(quadrant_image(q)) for q in (3, 0, 1)]
    proto = tf.make_tensor_proto(images)  # DT_STRING in string_val, shape [3]
    response = prediction.Predict(predict_request("tiny_image", image=proto), timeout=30)
    scores = tf.make_ndarray(response.outputs["probabilities"])
    assert scores.shape == (3, 4)
    assert list(scores.argmax(axis=1)) == [3, 0, 1]


def test_predict_output_filter_signature_and_version(prediction) -> None:
    request = predict_request(
        "two_io",
        a=tf.make_tensor_proto(np.array([[1, 2]], np.float32)),
        b=tf.make_tensor_proto(np.array([[3, 5]], np.float32)),
    )
    request.output_filter.append("product")
    request.model_spec.version.value = 1
    response = prediction.Predict(request, timeout=30)
    assert set(response.outputs) == {"product"}
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["product"]), [[3, 10]])

    request.ClearField("output_filter")
    request.model_spec.signature_name = "difference"
    response = prediction.Predict(request, timeout=30)
    assert set(response.outputs) == {"difference"}
    assert response.model_spec.signature_name == "difference"
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["difference"]), [[-2, -3]])


def test_unknown_version_label_is_not_found(prediction, channel) -> None:
    request = predict_request("half_plus_two", x=tf.make_tensor_proto(np.ones((1, 3), np.float32)))
    request.model_spec.version_label = "stable"
    with pytest.raises(grpc.RpcError) as info:
        prediction.Predict(request, timeout=30)
    assert info.value.code() is grpc.StatusCode.NOT_FOUND
    assert "version label" in info.value.details()
    assert_serving(channel)


def test_get_model_metadata_signature_def(prediction) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "two_io"
    response = prediction.GetModelMetadata(request, timeout=30)
    assert response.model_spec.name == "two_io"
    assert response.model_spec.version.value == 1
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def) == {
        "serving_default",
        "difference",
        "__saved_model_init_op",  # as TF Serving lists it
    }
    default = signatures.signature_def["serving_default"]
    assert set(default.inputs) == {"a", "b"}
    assert default.inputs["a"].dtype == types_pb2.DT_FLOAT
    assert [d.size for d in default.inputs["a"].tensor_shape.dim] == [-1, 2]


def test_get_model_metadata_needs_signature_def_field(prediction, channel) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "two_io"
    with pytest.raises(grpc.RpcError) as info:
        prediction.GetModelMetadata(request, timeout=30)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert_serving(channel)


def test_get_model_status(model_service) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "half_plus_two"
    response = model_service.GetModelStatus(request, timeout=30)
    (status,) = response.model_version_status
    assert status.version == 1
    assert status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert status.status.error_code == 0

    request.model_spec.version.value = 1
    assert model_service.GetModelStatus(request, timeout=30).model_version_status[0].version == 1


def test_classify_images_in_examples(prediction) -> None:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "tiny_image"
    for quadrant in (2, 1):
        example = example_pb2.Example()
        example.features.feature["image"].CopyFrom(
            feature_pb2.Feature(
                bytes_list=feature_pb2.BytesList(value=[png_bytes(quadrant_image(quadrant))])
            )
        )
        request.input.example_list.examples.append(example)
    response = prediction.Classify(request, timeout=30)
    first, second = response.result.classifications
    assert len(first.classes) == 4
    assert first.classes[0].label == "bottom_left"
    assert second.classes[0].label == "top_right"
    assert first.classes[0].score >= first.classes[1].score


def test_classify_without_image_contract_is_invalid(prediction, channel) -> None:
    """A predict signature and no image contract: neither tf.Example nor image classify."""
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "half_plus_two"
    example = request.input.example_list.examples.add()
    example.features.feature["x"].bytes_list.value.append(b"123")
    with pytest.raises(grpc.RpcError) as info:
        prediction.Classify(request, timeout=30)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith(
        "Expected classification signature method_name to be tensorflow/serving/classify. "
        "Was: tensorflow/serving/predict"
    )
    assert_serving(channel)


def test_regress_on_a_predict_signature_is_invalid(prediction, channel) -> None:
    from tensorflow_serving.apis import regression_pb2

    request = regression_pb2.RegressionRequest()
    request.model_spec.name = "half_plus_two"
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(1)
    with pytest.raises(grpc.RpcError) as info:
        prediction.Regress(request, timeout=30)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "Expected regression signature method_name" in info.value.details()
    assert_serving(channel)


def test_predict_returns_timing_and_request_id_in_trailing_metadata(server) -> None:
    """Trailing metadata carries Server-Timing's stages and echoes the caller's request id."""
    import grpc as grpc_module
    import numpy as np
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from service.protocols.tfserving.tensor_proto import array_to_tensor_proto

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "half_plus_two"
    request.inputs["x"].CopyFrom(array_to_tensor_proto(np.ones((1, 3), np.float32)))
    with grpc_module.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response, call = stub.Predict.with_call(request, metadata=(("x-request-id", "r-42"),))
    trailing = dict(call.trailing_metadata())
    assert trailing["x-request-id"] == "r-42"
    stages = dict(part.strip().split(";dur=") for part in trailing["server-timing"].split(","))
    assert set(stages) == {"preprocess", "queue", "inference", "postprocess", "total"}
    parts = sum(float(stages[k]) for k in ("preprocess", "queue", "inference", "postprocess"))
    # each of the five figures is rounded to a microsecond: their sums may differ by 2.5 µs
    assert parts <= float(stages["total"]) + 2.5e-3
    assert list(response.outputs["y"].float_val) == [2.5, 2.5, 2.5]


@pytest.mark.parametrize(
    "array",
    [
        np.float32(2.5).reshape(()),
        np.arange(6, dtype=np.int64).reshape(2, 3),
        np.zeros((0, 4), np.float16),
        np.array([b"a", "b\u00e9"], dtype=object),
    ],
    ids=["scalar", "int64", "empty", "strings"],
)
def test_output_tensor_protos_read_back_as_tensorflow_reads_them(array) -> None:
    from service.protocols.tfserving.tensor_proto import array_to_tensor_proto

    proto = array_to_tensor_proto(array)
    assert proto.HasField("tensor_shape")  # present even for a scalar
    back = tf.make_ndarray(proto)
    assert back.shape == array.shape
    if array.dtype == object:
        assert back.tolist() == [b"a", "b\u00e9".encode()]
    else:
        assert back.dtype == array.dtype and np.array_equal(back, array)
