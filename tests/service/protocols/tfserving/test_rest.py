"""Conformance of TF Serving's REST API against a real server on 127.0.0.1."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.fixtures import quadrant_image


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def assert_live(rest: httpx.Client) -> None:
    assert rest.get("/v2/health/live").status_code == 200
    response = rest.post("/v1/models/half_plus_two:predict", json={"instances": [[0, 0, 0]]})
    assert response.json() == {"predictions": [[2.0, 2.0, 2.0]]}


# ----- status and metadata ---------------------------------------------------------------
def test_model_status_lists_available_version(rest: httpx.Client) -> None:
    response = rest.get("/v1/models/half_plus_two")
    assert response.status_code == 200
    assert response.json() == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def test_model_status_of_explicit_version(rest: httpx.Client) -> None:
    response = rest.get("/v1/models/half_plus_two/versions/1")
    assert response.status_code == 200
    assert response.json()["model_version_status"][0]["version"] == "1"


def test_metadata_reports_signature_defs(rest: httpx.Client) -> None:
    body = rest.get("/v1/models/two_io/metadata").json()
    assert body["model_spec"] == {"name": "two_io", "version": "1", "signature_name": ""}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "difference", "__saved_model_init_op"}
    default = signatures["serving_default"]
    assert set(default["inputs"]) == {"a", "b"}
    assert set(default["outputs"]) == {"sum", "product"}
    assert default["inputs"]["a"]["dtype"] == "DT_FLOAT"
    assert default["inputs"]["a"]["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""},
        {"size": "2", "name": ""},
    ]
    assert default["method_name"] == "tensorflow/serving/predict"


def test_metadata_of_explicit_version(rest: httpx.Client) -> None:
    body = rest.get("/v1/models/half_plus_two/versions/1/metadata").json()
    assert body["model_spec"]["version"] == "1"


# ----- predict: request and response forms ------------------------------------------------
def test_row_format_single_input(rest: httpx.Client) -> None:
    response = rest.post(
        "/v1/models/half_plus_two:predict", json={"instances": [[1.0, 2.0, 5.0], [0, -2, 4]]}
    )
    assert response.status_code == 200
    assert response.json() == {"predictions": [[2.5, 3.0, 4.5], [2.0, 1.0, 4.0]]}


def test_columnar_single_input(rest: httpx.Client) -> None:
    response = rest.post("/v1/models/half_plus_two:predict", json={"inputs": [[2, 4, 6]]})
    assert response.json() == {"outputs": [[3.0, 4.0, 5.0]]}


def test_row_format_named_inputs_multiple_outputs(rest: httpx.Client) -> None:
    response = rest.post(
        "/v1/models/two_io:predict",
        json={"instances": [{"a": [1, 2], "b": [3, 4]}, {"a": [0, 1], "b": [5, 5]}]},
    )
    assert response.json() == {
        "predictions": [
            {"sum": [4.0, 6.0], "product": [3.0, 8.0]},
            {"sum": [5.0, 6.0], "product": [0.0, 5.0]},
        ]
    }


def test_columnar_named_inputs_multiple_outputs(rest: httpx.Client) -> None:
    response = rest.post(
        "/v1/models/two_io:predict", json={"inputs": {"a": [[1, 2]], "b": [[3, 4]]}}
    )
    assert response.json() == {"outputs": {"sum": [[4.0, 6.0]], "product": [[3.0, 8.0]]}}


def test_signature_name_selects_signature(rest: httpx.Client) -> None:
    response = rest.post(
        "/v1/models/two_io:predict",
        json={"signature_name": "difference", "inputs": {"a": [[1, 2]], "b": [[3, 5]]}},
    )
    assert response.json() == {"outputs": [[-2.0, -3.0]]}


def test_explicit_version_in_path(rest: httpx.Client) -> None:
    response = rest.post(
        "/v1/models/half_plus_two/versions/1:predict", json={"instances": [[2, 2, 2]]}
    )
    assert response.json() == {"predictions": [[3.0, 3.0, 3.0]]}


def test_b64_image_instances_are_preprocessed(rest: httpx.Client) -> None:
    images = [png_bytes(quadrant_image(q)) for q in (3, 0)]
    response = rest.post(
        "/v1/models/tiny_image:predict",
        json={"instances": [{"b64": base64.b64encode(b).decode()} for b in images]},
    )
    assert response.status_code == 200, response.text
    predictions = np.array(response.json()["predictions"])
    assert predictions.shape == (2, 4)
    assert list(predictions.argmax(axis=1)) == [3, 0]


def test_b64_named_input_in_rows(rest: httpx.Client) -> None:
    image = base64.b64encode(png_bytes(quadrant_image(1))).decode()
    response = rest.post(
        "/v1/models/tiny_image:predict", json={"instances": [{"image": {"b64": image}}]}
    )
    assert np.argmax(response.json()["predictions"][0]) == 1


def test_response_carries_request_id_and_server_timing(rest: httpx.Client) -> None:
    response = rest.post(
        "/v1/models/half_plus_two:predict",
        json={"instances": [[1, 1, 1]]},
        headers={"X-Request-ID": "abc-123"},
    )
    assert response.headers["x-request-id"] == "abc-123"
    timing = dict(
        part.strip().split(";dur=") for part in response.headers["server-timing"].split(",")
    )
    assert set(timing) == {"preprocess", "queue", "inference", "postprocess", "total"}
    stages = sum(float(timing[k]) for k in ("preprocess", "queue", "inference", "postprocess"))
    # each of the five figures is rounded to a microsecond: their sums may differ by 2.5 µs
    assert stages <= float(timing["total"]) + 2.5e-3


# ----- classify ---------------------------------------------------------------------------
def test_classify_raw_png_body(rest: httpx.Client) -> None:
    response = rest.post(
        "/v1/models/tiny_image:classify?k=2",
        content=png_bytes(quadrant_image(2)),
        headers={"Content-Type": "image/png"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "tiny_image" and body["version"] == 1
    assert body["predictions"][0]["label"] == "bottom_left"
    assert len(body["predictions"]) == 2


def test_classify_multipart_upload(rest: httpx.Client) -> None:
    response = rest.post(
        "/v1/models/tiny_image:classify",
        files={"file": ("digit.png", png_bytes(quadrant_image(1)), "image/png")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["predictions"][0]["label"] == "top_right"


# ----- errors -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/models/half_plus_two:predict", {"instances": [[1, 2]]}, 400, "expects [-1, 3]"),
        ("/v1/models/half_plus_two:predict", {"instances": [[1, 2, 3], [1]]}, 400, "rectangular"),
        ("/v1/models/half_plus_two:predict", {"instances": [["a", "b", "c"]]}, 400, "strings"),
        (
            "/v1/models/half_plus_two:predict",
            {"instances": [[1, 2, 3]], "inputs": [[1, 2, 3]]},
            400,
            "exactly one",
        ),
        ("/v1/models/half_plus_two:predict", {}, 400, "exactly one"),
        ("/v1/models/half_plus_two:predict", {"instances": []}, 400, "non-empty"),
        ("/v1/models/tiny_image:predict", {"instances": [{"b64": "@@@"}]}, 400, "base64"),
        ("/v1/models/tiny_image:predict", {"instances": [{"b64": "aGVsbG8="}]}, 400, "image"),
        ("/v1/models/two_io:predict", {"instances": [[1, 2]]}, 400, "exactly one input"),
        (
            "/v1/models/two_io:predict",
            {"signature_name": "nope", "inputs": {"a": [[1, 2]]}},
            400,
            "signature 'nope' not found",
        ),
        ("/v1/models/nope:predict", {"instances": [[1]]}, 404, "not found"),
        (
            "/v1/models/half_plus_two/versions/7:predict",
            {"instances": [[1, 2, 3]]},
            404,
            "no version 7",
        ),
        (
            "/v1/models/half_plus_two/versions/abc:predict",
            {"instances": [[1, 2, 3]]},
            404,
            "positive integer",
        ),
        (
            "/v1/models/half_plus_two/versions/-1:predict",
            {"instances": [[1, 2, 3]]},
            404,
            "positive integer",
        ),
    ],
)
def test_bad_requests_get_clear_errors(
    rest: httpx.Client, path: str, body: dict, status: int, needle: str
) -> None:
    response = rest.post(path, json=body)
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]
    assert_live(rest)


def test_integer_inputs_and_wrong_dtypes(rest: httpx.Client) -> None:
    response = rest.post("/v1/models/int_doubler:predict", json={"instances": [1, 2, 3]})
    assert response.json() == {"predictions": [2, 4, 6]}
    response = rest.post("/v1/models/int_doubler:predict", json={"instances": [1.5, 2]})
    assert response.status_code == 400
    assert "int64 integers" in response.json()["error"]
    response = rest.post("/v1/models/int_doubler:predict", json={"instances": [2**70]})
    assert response.status_code == 400
    assert_live(rest)


def test_truncated_and_non_image_bytes(rest: httpx.Client) -> None:
    buffer = io.BytesIO()
    Image.fromarray(quadrant_image(0, size=64)).save(buffer, format="JPEG")
    truncated = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    for payload, needle in (
        (truncated, "truncated"),
        (b"<html></html>", "not an image"),
        (b"", "empty"),
    ):
        response = rest.post(
            "/v1/models/tiny_image:classify",
            content=payload,
            headers={"Content-Type": "image/jpeg"},
        )
        assert response.status_code == 400, response.text
        assert needle in response.json()["error"]
    assert_live(rest)


def test_invalid_json_and_deep_nesting(rest: httpx.Client) -> None:
    for payload in (b"{not json", b"[" * 10_000 + b"]" * 10_000, b""):
        response = rest.post("/v1/models/half_plus_two:predict", content=payload)
        assert response.status_code == 400
        assert "JSON" in response.json()["error"]
    assert_live(rest)


def test_non_finite_rejected_where_image_contract_forbids_it(rest: httpx.Client) -> None:
    response = rest.post("/v1/models/tiny_image:predict", content=b'{"instances": [1e400]}')
    assert response.status_code == 400
    too_big = "[" + ",".join(["[" + ",".join(["[1e39]"] * 8) + "]"] * 8) + "]"
    response = rest.post(
        "/v1/models/tiny_image:predict", content=('{"instances": [' + too_big + "]}").encode()
    )
    assert response.status_code == 400
    assert "infinite" in response.json()["error"]
    assert_live(rest)


def test_path_traversal_names_are_refused(rest: httpx.Client) -> None:
    for name in ("..%2F..%2Fetc", "%2e%2e%2f", "a%00b"):
        response = rest.get(f"/v1/models/{name}")
        assert response.status_code == 404
        assert "not valid" in response.json()["error"] or "no such" in response.json()["error"]
    assert_live(rest)


def test_body_over_limit_is_413(rest: httpx.Client, server) -> None:
    limit = server.settings.max_body_bytes
    response = rest.post("/v1/models/half_plus_two:predict", content=b" " * (limit + 1))
    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    assert_live(rest)
