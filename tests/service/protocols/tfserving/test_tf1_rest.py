"""TF Serving's model-server REST tests (``tensorflow_model_server_test.py``), rewritten
against TF1-style SavedModels (``tests.tf1_models``) served on a real socket.

TF Serving's own expectations are kept where its test model and ours agree:
``tf1_half_plus_two`` is its ``half_plus_two`` rebuilt (latest version 123, in a folder
named ``00000123``), so ``x = 2`` answers ``3.0``.
"""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest
import tensorflow as tf

from tests.tf1_models import CENSUS, HALF_PLUS_TWO, census_logit, census_probability
from tests.tf1_models import labels_expected as labels_of

HPT = f"/v1/models/{HALF_PLUS_TWO}"


def assert_healthy(rest: httpx.Client) -> None:
    """The server still answers TF Serving's own regress request after a refusal."""
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
    assert rest.post(f"{HPT}:regress", json=body).json() == {"results": [3.0]}


# ----- as tensorflow_model_server_test.py asks --------------------------------------------
def test_classify_rest(tf1_rest: httpx.Client) -> None:
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    response = tf1_rest.post(f"{HPT}:classify", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"results": [[["", 3.0]]]}


def test_regress_rest(tf1_rest: httpx.Client) -> None:
    body = {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}
    assert tf1_rest.post(f"{HPT}:regress", json=body).json() == {"results": [3.0]}


def test_predict_rest_row_format(tf1_rest: httpx.Client) -> None:
    response = tf1_rest.post(f"{HPT}:predict", json={"instances": [2.0, 3.0, 4.0]})
    assert response.json() == {"predictions": [3.0, 3.5, 4.0]}


def test_predict_rest_columnar_format(tf1_rest: httpx.Client) -> None:
    response = tf1_rest.post(f"{HPT}:predict", json={"inputs": [2.0, 3.0, 4.0]})
    assert response.json() == {"outputs": [3.0, 3.5, 4.0]}


def test_get_status_rest_lists_both_versions(tf1_rest: httpx.Client) -> None:
    """Version ``00000123`` on disk is version 123, as TF Serving reads it."""
    available = {"state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    assert tf1_rest.get(HPT).json() == {
        "model_version_status": [{"version": "123", **available}, {"version": "7", **available}]
    }


def test_curl_form_body_is_read_as_json(tf1_rest: httpx.Client) -> None:
    """``curl -d`` sends TF Serving's JSON as a form; it is still a tf.Example request."""
    response = tf1_rest.post(
        f"{HPT}:classify",
        content=b'{"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}',
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.json() == {"results": [[["", 3.0]]]}


# ----- versions, labels from a table over an asset, several examples ----------------------
def test_older_version_with_legacy_init_op(tf1_rest: httpx.Client) -> None:
    body = {"signature_name": "classify_x_to_labels", "examples": [{"x": 2.0}, {"x": 4.0}]}
    response = tf1_rest.post(f"{HPT}/versions/7:classify", json=body)
    assert response.headers["x-model-version"] == "7"
    results = response.json()["results"]
    for got, x in zip(results, (2.0, 4.0), strict=True):
        expected = labels_of(x, b=1.0)
        assert [label for label, _ in got] == [label for label, _ in expected]
        assert [score for _, score in got] == pytest.approx([s for _, s in expected], abs=1e-6)
    predict = tf1_rest.post(f"{HPT}/versions/00000007:predict", json={"instances": [2.0]})
    assert predict.json() == {"predictions": [2.0]}


def test_regress_second_signature_and_x2_default(tf1_rest: httpx.Client) -> None:
    body = {"signature_name": "regress_x_to_y2", "examples": [{"x": 2.0}, {"x": 1, "x2": 5.0}]}
    response = tf1_rest.post(f"{HPT}:regress", json=body)
    # x: 1 is an int64 feature; the graph parses x as float: TF Serving's 400, not a cast
    assert response.status_code == 400
    assert "x" in response.json()["error"]
    body["examples"][1]["x"] = 1.0
    assert tf1_rest.post(f"{HPT}:regress", json=body).json() == {"results": [4.0, 3.5]}


# ----- the TFX/Estimator-style export: serving_default over serialized tf.Example ----------
def census_example(age: float, hours: int, color: str) -> dict[str, object]:
    return {"age": age, "hours": hours, "color": color}


def test_census_classify_with_context(tf1_rest: httpx.Client) -> None:
    """``context`` features join every example; an example's own feature wins."""
    body = {
        "context": {"hours": 2, "color": {"b64": base64.b64encode(b"green").decode()}},
        "examples": [{"age": 30.0}, {"age": 10.0, "color": "blue"}, {"age": 1.5, "hours": [0]}],
    }
    response = tf1_rest.post(f"/v1/models/{CENSUS}:classify", json=body)
    assert response.status_code == 200, response.text
    rows = [(30.0, 2, "green"), (10.0, 2, "blue"), (1.5, 0, "green")]
    for got, row in zip(response.json()["results"], rows, strict=True):
        p = census_probability(*row)
        assert [label for label, _ in got] == ["no", "yes"]
        assert [score for _, score in got] == pytest.approx([1 - p, p], abs=1e-6)


def test_census_regress_and_unknown_color(tf1_rest: httpx.Client) -> None:
    body = {
        "signature_name": "regression",
        "examples": [census_example(20.0, 4, "red"), census_example(20.0, 4, "purple")],
    }
    results = tf1_rest.post(f"/v1/models/{CENSUS}:regress", json=body).json()["results"]
    assert results == pytest.approx(
        [census_logit(20.0, 4, "red"), census_logit(20.0, 4, "purple")], abs=1e-5
    )


def test_census_predict_takes_serialized_examples_as_b64(tf1_rest: httpx.Client) -> None:
    example = tf.train.Example()
    example.features.feature["age"].float_list.value.append(50.0)
    example.features.feature["color"].bytes_list.value.append(b"red")
    encoded = base64.b64encode(example.SerializeToString()).decode()
    body = {"signature_name": "predict", "instances": [{"b64": encoded}, {"b64": encoded}]}
    predictions = tf1_rest.post(f"/v1/models/{CENSUS}:predict", json=body).json()["predictions"]
    p = census_probability(50.0, 0, "red")
    assert len(predictions) == 2
    assert predictions[0]["classes"] == ["yes"] and predictions[0]["class_ids"] == [1]
    assert predictions[0]["probabilities"] == pytest.approx([1 - p, p], abs=1e-6)
    assert predictions[0]["logits"] == pytest.approx([census_logit(50.0, 0, "red")], abs=1e-5)


def test_image_classify_keeps_working_beside_examples(rest: httpx.Client) -> None:
    """The image top-k ``:classify`` of a model with an image contract is unchanged."""
    from tests.fixtures import quadrant_image
    from tests.service.protocols.tfserving.test_rest import png_bytes

    image = base64.b64encode(png_bytes(quadrant_image(1))).decode()
    response = rest.post("/v1/models/tiny_image:classify", json={"instances": [{"b64": image}]})
    assert response.json()["predictions"][0][0]["label"] == "top_right"


# ----- bad inputs: a clear 400, and the server stays healthy -------------------------------
@pytest.mark.parametrize(
    ("verb", "body", "expected"),
    [
        ("classify", {"examples": [{"x": 2.0}]}, "Expected classification signature method_name"),
        (
            "regress",
            {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]},
            "Expected regression signature method_name to be tensorflow/serving/regress",
        ),
        ("classify", {"signature_name": "nope", "examples": [{"x": 2.0}]}, "No signature"),
        ("regress", {"signature_name": "regress_x2_to_y3", "examples": [{}]}, "DT_FLOAT"),
        ("regress", {"signature_name": "regress_x_to_y", "examples": [{}]}, "required"),
        ("regress", {"signature_name": "regress_x_to_y", "examples": []}, "empty"),
        ("regress", {"signature_name": "regress_x_to_y"}, "'examples' is expected"),
        ("regress", {"examples": [{"x": [[2.0]]}]}, "flat list"),
        ("regress", {"examples": [{"x": [2.0, 3]}]}, "expecting type: float"),
        ("regress", {"examples": [{"x": None}]}, "Null"),
        ("regress", {"examples": [{"x": {"b64": "%%%"}}]}, "base64"),
        ("regress", {"examples": [2.0]}, "Example must be JSON object"),
        ("regress", {"examples": [{"x": 1e300}]}, "without loss of precision"),
        ("classify", {"examples": [{"x": 2.0}], "extra": 1}, "unknown request keys"),
        ("classify", {"signature_name": 3, "examples": [{"x": 2.0}]}, "signature_name"),
    ],
)
def test_bad_example_requests_are_400(
    tf1_rest: httpx.Client, verb: str, body: dict[str, object], expected: str
) -> None:
    response = tf1_rest.post(f"{HPT}:{verb}", json=body)
    assert response.status_code == 400, response.text
    assert expected in response.json()["error"]
    assert_healthy(tf1_rest)


def test_malformed_serialized_example_is_400(tf1_rest: httpx.Client) -> None:
    body = {"signature_name": "predict", "instances": [{"b64": base64.b64encode(b"\xff").decode()}]}
    response = tf1_rest.post(f"/v1/models/{CENSUS}:predict", json=body)
    assert response.status_code == 400
    assert "tf.Example" in response.json()["error"]
    assert_healthy(tf1_rest)


def test_predict_on_classify_signature_feeds_serialized_examples(tf1_rest: httpx.Client) -> None:
    """Predict may run any signature; a classification one takes serialized examples
    (``classify_x_to_labels`` is version 7's)."""
    example = tf.train.Example()
    example.features.feature["x"].float_list.value.append(2.0)
    body = {
        "signature_name": "classify_x_to_labels",
        "inputs": {"inputs": [{"b64": base64.b64encode(example.SerializeToString()).decode()}]},
    }
    outputs = tf1_rest.post(f"{HPT}/versions/7:predict", json=body).json()["outputs"]
    assert outputs["classes"] == [["negative", "positive"]]
    assert outputs["scores"][0] == pytest.approx([s for _, s in labels_of(2.0, 1.0)], abs=1e-6)
    assert np.isclose(sum(outputs["scores"][0]), 1.0)


def test_metadata_lists_every_signature_with_its_method(tf1_rest: httpx.Client) -> None:
    body = tf1_rest.get(f"/v1/models/{CENSUS}/metadata").json()
    assert body["model_spec"]["version"] == "1"
    signatures = body["metadata"]["signature_def"]["signature_def"]
    methods = {name: s["method_name"] for name, s in signatures.items()}
    assert methods == {
        "serving_default": "tensorflow/serving/classify",
        "predict": "tensorflow/serving/predict",
        "regression": "tensorflow/serving/regress",
    }
    assert signatures["serving_default"]["inputs"]["inputs"]["dtype"] == "DT_STRING"


@pytest.mark.parametrize("content", [b"null", b"[1]", b'{"instance": []}'])
def test_json_classify_without_examples_or_instances_is_400(
    tf1_rest: httpx.Client, content: bytes
) -> None:
    response = tf1_rest.post(
        f"{HPT}:classify", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert '{"examples": [' in response.json()["error"]
