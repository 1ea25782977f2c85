"""TF Serving's model-server gRPC tests (``tensorflow_model_server_test.py``), rewritten
against TF1-style SavedModels (``tests.tf1_models``) on a real socket, with TF Serving's
own stubs (``tensorflow-serving-api``)."""

from __future__ import annotations

import grpc
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    inference_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from tests.tf1_models import CENSUS, HALF_PLUS_TWO, census_logit, census_probability

CLASSIFY = "tensorflow/serving/classify"
REGRESS = "tensorflow/serving/regress"


def verify_model_spec(spec: model_pb2.ModelSpec, name: str, signature: str, version: int) -> None:
    """TF Serving's ``_VerifyModelSpec``: the response echoes name, signature and version."""
    assert (spec.name, spec.signature_name, spec.version.value) == (name, signature, version)


def add_x(examples, value: float) -> None:
    examples.add().features.feature["x"].float_list.value.extend([value])


def assert_healthy(stub) -> None:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = HALF_PLUS_TWO
    request.model_spec.signature_name = "regress_x_to_y"
    add_x(request.input.example_list.examples, 2.0)
    assert stub.Regress(request, timeout=30).result.regressions[0].value == 3.0


# ----- as tensorflow_model_server_test.py asks --------------------------------------------
@pytest.mark.parametrize("specify_output", [True, False])
def test_predict(tf1_prediction, specify_output: bool) -> None:
    """``VerifyPredictRequest``: x = [2.0] (shape [1]) → y.float_val == [3.0]."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = HALF_PLUS_TWO
    request.inputs["x"].dtype = types_pb2.DT_FLOAT
    request.inputs["x"].float_val.append(2.0)
    request.inputs["x"].tensor_shape.dim.add().size = 1
    if specify_output:
        request.output_filter.append("y")
    result = tf1_prediction.Predict(request, timeout=30)
    assert result.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert list(result.outputs["y"].float_val) == [3.0]
    verify_model_spec(result.model_spec, HALF_PLUS_TWO, "serving_default", 123)


def test_classify(tf1_prediction) -> None:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = HALF_PLUS_TWO
    request.model_spec.signature_name = "classify_x_to_y"
    add_x(request.input.example_list.examples, 2.0)
    result = tf1_prediction.Classify(request, timeout=30)
    assert len(result.result.classifications) == 1
    assert len(result.result.classifications[0].classes) == 1
    assert result.result.classifications[0].classes[0].score == 3.0
    verify_model_spec(result.model_spec, HALF_PLUS_TWO, "classify_x_to_y", 123)


def test_regress(tf1_prediction) -> None:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = HALF_PLUS_TWO
    request.model_spec.signature_name = "regress_x_to_y"
    add_x(request.input.example_list.examples, 2.0)
    result = tf1_prediction.Regress(request, timeout=30)
    assert len(result.result.regressions) == 1
    assert result.result.regressions[0].value == 3.0
    verify_model_spec(result.model_spec, HALF_PLUS_TWO, "regress_x_to_y", 123)


def test_multi_inference(tf1_prediction) -> None:
    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (("regress_x_to_y", REGRESS), ("classify_x_to_y", CLASSIFY)):
        task = request.tasks.add()
        task.model_spec.name = HALF_PLUS_TWO
        task.model_spec.signature_name = signature
        task.method_name = method
    add_x(request.input.example_list.examples, 2.0)
    result = tf1_prediction.MultiInference(request, timeout=30)
    assert len(result.results) == 2
    assert result.results[0].regression_result.regressions[0].value == 3.0
    assert result.results[1].classification_result.classifications[0].classes[0].score == 3.0
    for answer, task in zip(result.results, request.tasks, strict=True):
        verify_model_spec(answer.model_spec, HALF_PLUS_TWO, task.model_spec.signature_name, 123)


# ----- beyond TF Serving's test: context, versions, the Estimator-style default ------------
def test_classify_census_default_signature_with_context(tf1_prediction) -> None:
    """serving_default of an Estimator-style export is a classification signature."""
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = CENSUS
    with_context = request.input.example_list_with_context
    with_context.context.features.feature["color"].bytes_list.value.append(b"blue")
    with_context.context.features.feature["hours"].int64_list.value.append(6)
    first = with_context.examples.add()
    first.features.feature["age"].float_list.value.append(40.0)
    second = with_context.examples.add()
    second.features.feature["age"].float_list.value.append(40.0)
    second.features.feature["color"].bytes_list.value.append(b"green")
    result = tf1_prediction.Classify(request, timeout=30)
    verify_model_spec(result.model_spec, CENSUS, "serving_default", 1)
    for found, color in zip(result.result.classifications, ("blue", "green"), strict=True):
        p = census_probability(40.0, 6, color)
        assert [c.label for c in found.classes] == ["no", "yes"]
        assert [c.score for c in found.classes] == pytest.approx([1 - p, p], abs=1e-6)


def test_regress_pinned_version_and_label_free_multi_inference(tf1_prediction) -> None:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = HALF_PLUS_TWO
    request.model_spec.signature_name = "regress_x_to_y"
    request.model_spec.version.value = 7
    add_x(request.input.example_list.examples, 2.0)
    result = tf1_prediction.Regress(request, timeout=30)
    assert result.result.regressions[0].value == 2.0  # b = 1 at version 7
    verify_model_spec(result.model_spec, HALF_PLUS_TWO, "regress_x_to_y", 7)
    multi = inference_pb2.MultiInferenceRequest()
    for signature, method in (("serving_default", CLASSIFY), ("regression", REGRESS)):
        task = multi.tasks.add()
        task.model_spec.name = CENSUS
        task.model_spec.signature_name = signature
        task.method_name = method
    multi.input.example_list.examples.add().features.feature["age"].float_list.value.append(9.0)
    answer = tf1_prediction.MultiInference(multi, timeout=30)
    p = census_probability(9.0, 0, "")
    scores = [c.score for c in answer.results[0].classification_result.classifications[0].classes]
    assert scores == pytest.approx([1 - p, p], abs=1e-6)
    regression = answer.results[1].regression_result.regressions[0].value
    assert regression == pytest.approx(census_logit(9.0, 0, ""), abs=1e-5)


# ----- bad inputs: INVALID_ARGUMENT with a clear message, the server stays healthy ---------
def _classify(
    signature: str, model: str = HALF_PLUS_TWO
) -> classification_pb2.ClassificationRequest:
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    add_x(request.input.example_list.examples, 2.0)
    return request


@pytest.mark.parametrize(
    ("request_of", "expected"),
    [
        (lambda: _classify("serving_default"), "Expected classification signature method_name"),
        (lambda: _classify("regress_x_to_y"), "Was: tensorflow/serving/regress"),
        (lambda: _classify("missing"), "No signature was found with the name: missing"),
        (lambda: classification_pb2.ClassificationRequest(model_spec=_spec()), "Input is empty"),
    ],
)
def test_bad_classify_is_invalid_argument(tf1_prediction, request_of, expected: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        tf1_prediction.Classify(request_of(), timeout=30)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert expected in info.value.details()
    assert_healthy(tf1_prediction)


def _spec(signature: str = "classify_x_to_y") -> model_pb2.ModelSpec:
    return model_pb2.ModelSpec(name=HALF_PLUS_TWO, signature_name=signature)


def test_malformed_example_is_invalid_argument(tf1_prediction) -> None:
    request = regression_pb2.RegressionRequest(model_spec=_spec("regress_x_to_y"))
    example = request.input.example_list.examples.add()
    example.features.feature["x"].bytes_list.value.append(b"two")  # x must be a float
    with pytest.raises(grpc.RpcError) as info:
        tf1_prediction.Regress(request, timeout=30)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "x" in info.value.details()
    assert_healthy(tf1_prediction)


@pytest.mark.parametrize(
    ("tasks", "code", "expected"),
    [
        (
            [(HALF_PLUS_TWO, "regress_x_to_y", REGRESS), (CENSUS, "regression", REGRESS)],
            grpc.StatusCode.INVALID_ARGUMENT,
            "must access the same model name",
        ),
        (
            [
                (HALF_PLUS_TWO, "regress_x_to_y", REGRESS),
                (HALF_PLUS_TWO, "regress_x_to_y", REGRESS),
            ],
            grpc.StatusCode.INVALID_ARGUMENT,
            "Duplicate evaluation of signature: regress_x_to_y",
        ),
        (
            [(HALF_PLUS_TWO, "serving_default", "tensorflow/serving/predict")],
            grpc.StatusCode.UNIMPLEMENTED,
            "Unsupported signature method_name",
        ),
        (
            [
                (HALF_PLUS_TWO, "regress_x_to_y", REGRESS),
                (HALF_PLUS_TWO, "regress_x2_to_y3", REGRESS),
            ],
            grpc.StatusCode.INVALID_ARGUMENT,
            "DT_FLOAT",
        ),
        ([], grpc.StatusCode.INVALID_ARGUMENT, "no tasks"),
    ],
)
def test_bad_multi_inference(tf1_prediction, tasks, code, expected: str) -> None:
    request = inference_pb2.MultiInferenceRequest()
    for model, signature, method in tasks:
        task = request.tasks.add()
        task.model_spec.name, task.model_spec.signature_name = model, signature
        task.method_name = method
    add_x(request.input.example_list.examples, 2.0)
    with pytest.raises(grpc.RpcError) as info:
        tf1_prediction.MultiInference(request, timeout=30)
    assert info.value.code() is code
    assert expected in info.value.details()
    assert_healthy(tf1_prediction)


def test_get_model_status(tf1_server) -> None:
    """``testGetModelStatus``: each version with error code OK (both served here)."""
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = HALF_PLUS_TWO
    with grpc.insecure_channel(tf1_server.grpc_target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        result = stub.GetModelStatus(request, timeout=30)
    assert [s.version for s in result.model_version_status] == [123, 7]
    assert [s.status.error_code for s in result.model_version_status] == [0, 0]
