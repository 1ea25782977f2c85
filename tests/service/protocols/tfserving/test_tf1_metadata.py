"""The metadata and status of a TF1 model field for field as TF Serving prints them.

TF Serving's ``testGetModelMetadataREST`` serves its TF1 ``half_plus_two`` (version folder
``00000123``) and compares ``GET /v1/models/default/versions/123/metadata`` with
``servables/tensorflow/testdata/half_plus_two_model_metadata.json``. ``tf1_half_plus_two``
at version 123 has that model's signatures and tensor names, so the document below is that
file, written out, with two differences:

* ``model_spec.name`` is our model's name (TF Serving's test serves it as ``default``);
* every signature carries ``"defaults": {}``. The file predates TensorFlow's
  ``SignatureDef.defaults`` map field. Current TF Serving prints the metadata with
  ``JsonPrintOptions.always_print_primitive_fields`` (``http_rest_api_util.cc``,
  ``ToJsonString``), which prints every field without presence, and a map has none: so an
  empty map prints as ``{}``, just as the empty repeated ``dim`` prints as ``[]`` in the
  file itself. ``tensorflow_model_server`` 2.x prints ``"defaults": {}`` (see also
  ``test_metadata_json.py`` for the TF2 models).

The same document, parsed into a ``SignatureDefMap``, is what gRPC ``GetModelMetadata``
must pack; the status forms are TF Serving's ``testGetModelStatus`` expectations.
"""

from __future__ import annotations

import grpc
import httpx
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from tests.conftest import ServerThread
from tests.tf1_models import HALF_PLUS_TWO

BY_ROWS = {"dim": [{"size": "-1", "name": ""}, {"size": "1", "name": ""}], "unknown_rank": False}
UNKNOWN_RANK = {"dim": [], "unknown_rank": True}


def tensor(name: str, dtype: str = "DT_FLOAT", shape: dict[str, object] = BY_ROWS) -> dict:
    return {"dtype": dtype, "tensor_shape": shape, "name": name}


def signature(inputs: dict, outputs: dict, method: str) -> dict[str, object]:
    return {
        "inputs": inputs,
        "outputs": outputs,
        "method_name": f"tensorflow/serving/{method}",
        "defaults": {},
    }


EXAMPLES = {"inputs": tensor("tf_example:0", "DT_STRING", UNKNOWN_RANK)}
SIGNATURES = {
    "signature_def": {
        "regress_x2_to_y3": signature(
            {"inputs": tensor("x2:0")}, {"outputs": tensor("y3:0")}, "regress"
        ),
        "serving_default": signature({"x": tensor("x:0")}, {"y": tensor("y:0")}, "predict"),
        "classify_x_to_y": signature(EXAMPLES, {"scores": tensor("y:0")}, "classify"),
        "regress_x_to_y2": signature(EXAMPLES, {"outputs": tensor("y2:0")}, "regress"),
        "regress_x_to_y": signature(EXAMPLES, {"outputs": tensor("y:0")}, "regress"),
    }
}
EXPECTED = {
    "model_spec": {"name": HALF_PLUS_TWO, "signature_name": "", "version": "123"},
    "metadata": {"signature_def": SIGNATURES},
}


def test_rest_metadata_is_tf_servings_half_plus_two_document(tf1_rest: httpx.Client) -> None:
    for path in ("versions/123", "versions/00000123"):
        response = tf1_rest.get(f"/v1/models/{HALF_PLUS_TWO}/{path}/metadata")
        assert response.status_code == 200, response.text
        assert response.json() == EXPECTED


def test_grpc_metadata_packs_the_same_signature_def_map(tf1_server: ServerThread) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = HALF_PLUS_TWO
    request.model_spec.version.value = 123
    with grpc.insecure_channel(tf1_server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.GetModelMetadata(request, timeout=30)
    assert (response.model_spec.name, response.model_spec.version.value) == (HALF_PLUS_TWO, 123)
    assert response.model_spec.signature_name == ""
    assert list(response.metadata) == ["signature_def"]
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signature_map)
    expected = json_format.ParseDict(SIGNATURES, get_model_metadata_pb2.SignatureDefMap())
    assert signature_map == expected


def test_rest_status_of_one_version_as_tf_serving_prints_it(tf1_rest: httpx.Client) -> None:
    """``testGetModelStatus`` asks for the model; a version path narrows the list to it."""
    response = tf1_rest.get(f"/v1/models/{HALF_PLUS_TWO}/versions/123")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "model_version_status": [
            {
                "version": "123",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def test_grpc_status_of_one_version(tf1_server: ServerThread) -> None:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = HALF_PLUS_TWO
    request.model_spec.version.value = 123
    with grpc.insecure_channel(tf1_server.grpc_target) as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        response = stub.GetModelStatus(request, timeout=30)
    expected = json_format.ParseDict(
        {"model_version_status": [{"version": "123", "state": "AVAILABLE", "status": {}}]},
        get_model_status_pb2.GetModelStatusResponse(),
    )
    assert response == expected
