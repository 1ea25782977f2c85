"""Status and metadata JSON field for field as TF Serving prints them.

TF Serving's REST handler prints proto3 JSON with the proto field names and every field that
has no presence: ``unknown_rank: false``, a dimension's ``name: ""``, ``defaults: {}``, an
empty ``dim: []`` and ``inputs: {}``, and every signature of the SavedModel, the TF2 init op
``__saved_model_init_op`` too (see TF Serving's REST API document and the metadata printed
by ``tensorflow_model_server`` 2.x for a Keras/tf.function export). The expected documents
below are written out in that form for the fixture models, not computed by the code under
test.
"""

from __future__ import annotations

import httpx

INIT_OP = {
    "inputs": {},
    "outputs": {
        "__saved_model_init_op": {
            "dtype": "DT_INVALID",
            "tensor_shape": {"dim": [], "unknown_rank": True},
            "name": "NoOp",
        }
    },
    "method_name": "",
    "defaults": {},
}


def float_tensor(name: str, *dims: int) -> dict[str, object]:
    return {
        "dtype": "DT_FLOAT",
        "tensor_shape": {
            "dim": [{"size": str(size), "name": ""} for size in dims],
            "unknown_rank": False,
        },
        "name": name,
    }


def test_metadata_of_half_plus_two_as_tf_serving_prints_it(rest: httpx.Client) -> None:
    response = rest.get("/v1/models/half_plus_two/metadata")
    assert response.status_code == 200
    assert response.json() == {
        "model_spec": {"name": "half_plus_two", "signature_name": "", "version": "1"},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    "serving_default": {
                        "inputs": {"x": float_tensor("serving_default_x:0", -1, 3)},
                        "outputs": {"y": float_tensor("StatefulPartitionedCall:0", -1, 3)},
                        "method_name": "tensorflow/serving/predict",
                        "defaults": {},
                    },
                    "__saved_model_init_op": INIT_OP,
                }
            }
        },
    }


def test_metadata_of_a_model_with_two_signatures(rest: httpx.Client) -> None:
    body = rest.get("/v1/models/two_io/versions/1/metadata").json()
    assert body["model_spec"] == {"name": "two_io", "signature_name": "", "version": "1"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "difference", "__saved_model_init_op"}
    default = signatures["serving_default"]
    assert default["inputs"] == {
        "a": float_tensor("serving_default_a:0", -1, 2),
        "b": float_tensor("serving_default_b:0", -1, 2),
    }
    assert set(default["outputs"]) == {"sum", "product"}
    for output in default["outputs"].values():
        assert output["tensor_shape"] == float_tensor("", -1, 2)["tensor_shape"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["defaults"] == {}
    assert signatures["__saved_model_init_op"] == INIT_OP


def test_status_as_tf_serving_prints_it(rest: httpx.Client) -> None:
    for path in ("/v1/models/half_plus_two", "/v1/models/half_plus_two/versions/1"):
        assert rest.get(path).json() == {
            "model_version_status": [
                {
                    "version": "1",
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }
