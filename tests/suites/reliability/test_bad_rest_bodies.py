"""Bad REST bodies (TF Serving and KServe v2): JSON, base64, limits, headers.

Part of the bad-input suite (``pytest -m bad_input``). Stated policy pinned here: a JSON
object that repeats a key is refused (400), as is NaN/Infinity/1e400.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.suites.reliability import images
from tests.suites.reliability.clients import (
    IMAGE_PREDICT,
    INFER,
    PREDICT,
    _rest,
    send_image,
    v2_input,
)
from tests.suites.reliability.conftest import MAX_BODY_BYTES, MAX_ROWS

pytestmark = [pytest.mark.bad_input, pytest.mark.usefixtures("still_serving")]


# ----- REST bodies: JSON, base64, limits --------------------------------------------------
def deep(depth: int) -> bytes:
    return b'{"instances": ' + b"[" * depth + b"]" * depth + b"}"


ROW = b"[1.0, 2.0, 3.0]"
PREDICT_BODIES = [
    pytest.param(b"", 400, "request body is empty", id="zero-byte-body"),
    pytest.param(b"{}", 400, "exactly one of 'instances'", id="empty-json"),
    pytest.param(b"[]", 400, "must be a JSON object", id="json-array"),
    pytest.param(b'{"instances": [[1, 2, 3]', 400, "not valid JSON", id="malformed-json"),
    pytest.param(b"\xff\xfe{}", 400, "not valid JSON", id="not-utf8"),
    pytest.param(deep(100_000), 400, "not valid JSON", id="nested-100000-deep"),
    pytest.param(deep(1000), 400, "rectangular", id="nested-1000-deep"),
    pytest.param(
        b'{"instances": [' + ROW + b'], "instances": [' + ROW + b"]}",
        400,
        "repeats the key 'instances'",
        id="duplicate-key-top-level",
    ),
    pytest.param(
        b'{"instances": [{"x": ' + ROW + b', "x": ' + ROW + b"}]}",
        400,
        "repeats the key 'x'",
        id="duplicate-key-in-an-instance",
    ),
    pytest.param(
        b'{"inputs": {"x": [' + ROW + b'], "x": [' + ROW + b"]}}",
        400,
        "repeats the key 'x'",
        id="duplicate-key-in-inputs",
    ),
    pytest.param(
        b'{"instances": [' + ROW + b'], "inputs": [' + ROW + b"]}",
        400,
        "exactly one of 'instances'",
        id="both-instances-and-inputs",
    ),
    pytest.param(b'{"instances": [[1, 2]]}', 400, "expects [-1, 3]", id="wrong-shape"),
    pytest.param(b'{"instances": [[1, 2, 3], [1, 2]]}', 400, "rectangular", id="ragged"),
    pytest.param(b'{"instances": [["a", "b", "c"]]}', 400, "got strings", id="strings-for-floats"),
    pytest.param(b'{"instances": [[1e400, 2, 3]]}', 400, "not valid JSON", id="1e400"),
    pytest.param(b'{"instances": [[NaN, 2, 3]]}', 400, "not valid JSON", id="nan-literal"),
    pytest.param(
        b'{"instances": [[Infinity, 2, 3]]}', 400, "not valid JSON", id="infinity-literal"
    ),
    pytest.param(
        b'{"instances": [[1, 2, 3]], "signature_name": 5}',
        400,
        "'signature_name' must be a string",
        id="signature-not-a-string",
    ),
    pytest.param(b'{"instances": []}', 400, "non-empty list", id="empty-batch"),
    pytest.param(
        b'{"inputs": []}',
        400,
        "has shape [0], model half_plus_two expects [-1, 3]",
        id="empty-batch-columnar",
    ),
    pytest.param(
        b'{"instances": [' + b", ".join([ROW] * (MAX_ROWS + 1)) + b"]}",
        413,
        f"the limit is {MAX_ROWS}",
        id="rows-above-max",
    ),
    pytest.param(
        b'{"instances": [[123456789012345678901234567890, 2, 3]]}',
        200,
        "",
        id="huge-integer-becomes-float",
    ),
]


@pytest.mark.parametrize(("body", "status", "needle"), PREDICT_BODIES)
def test_bad_predict_body(body: bytes, status: int, needle: str, http) -> None:
    response = http.post(PREDICT, content=body, headers={"content-type": "application/json"})
    _rest(response, lambda doc: doc).check(status, needle)


def b64_instance(text: str) -> bytes:
    return b'{"instances": [{"b64": "' + text.encode() + b'"}]}'


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        pytest.param(b64_instance("iVBO@@@@"), "invalid base64", id="bad-characters"),
        pytest.param(b64_instance("iVBORw0KGgo"), "invalid base64", id="bad-padding"),
        pytest.param(b64_instance("iVBO R w0K"), "invalid base64", id="spaces"),
        pytest.param(b'{"instances": [{"b64": 5}]}', "b64", id="not-a-string"),
        pytest.param(
            b'{"instances": [{"b64": "aGk=", "b64": "aGk="}]}',
            "repeats the key 'b64'",
            id="duplicate-b64-key",
        ),
    ],
)
def test_invalid_base64(body: bytes, needle: str, http) -> None:
    response = http.post(IMAGE_PREDICT, content=body)
    _rest(response).check(400, needle)


def test_body_over_the_limit_declared(http) -> None:
    body = b'{"instances": [' + b" " * MAX_BODY_BYTES + b"]}"
    _rest(http.post(PREDICT, content=body)).check(413, f"the limit is {MAX_BODY_BYTES} bytes")


def test_body_over_the_limit_chunked(http) -> None:
    """No Content-Length: the limit is enforced while reading."""

    def chunks():
        yield b'{"instances": ['
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536
        yield b"]}"

    _rest(http.post(PREDICT, content=chunks())).check(413, "exceeds the limit")


@pytest.mark.parametrize("transport", ["rest_predict", "rest_classify"])
def test_image_in_a_body_over_the_limit(transport: str, http, tfs, v2) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (999, 999), np.uint8)
    data = images.png(noise)  # incompressible, under the pixel limit, over the body limit
    assert len(data) > MAX_BODY_BYTES * 0.9
    if transport == "rest_classify":
        data += data  # the raw body is the image itself
    send_image(transport, data, http, tfs, v2).check(413, "limit")


def test_multipart_classify_without_a_file(http) -> None:
    body = b'--xyz\r\nContent-Disposition: form-data; name="field"\r\n\r\nvalue\r\n--xyz--\r\n'
    response = http.post(
        "/v1/models/tiny_image:classify",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    _rest(response).check(400, "expected an image")


@pytest.mark.parametrize("k", ["0", "-1", "abc", "1.5"])
def test_classify_bad_k(k: str, http) -> None:
    response = http.post(f"/v1/models/tiny_image:classify?k={k}", content=images.quadrant_png(0))
    _rest(response).check(400, "k must be a positive integer")


# ----- KServe v2 REST ---------------------------------------------------------------------
V2_BODIES = [
    pytest.param(b"", 400, "request body is empty", id="zero-byte-body"),
    pytest.param(b"{}", 400, "'inputs' must be a non-empty list", id="empty-json"),
    pytest.param(b'{"inputs": [}', 400, "not valid JSON", id="malformed"),
    pytest.param(
        b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        400,
        "not valid JSON",
        id="nested-100000-deep",
    ),
    pytest.param(
        b'{"inputs": [], "inputs": []}', 400, "repeats the key 'inputs'", id="duplicate-key"
    ),
    pytest.param(v2_input([1, 2], [1, 2]), 400, "expects [-1, 3]", id="wrong-shape"),
    pytest.param(v2_input([1, 3], [1, 2]), 400, "shape [1, 3] needs 3", id="data-too-short"),
    pytest.param(v2_input([1, 3], [[1, 2, 3], [4]]), 400, "rectangular", id="ragged"),
    pytest.param(v2_input([1, 3], ["a", "b", "c"]), 400, "non-numeric", id="strings-for-floats"),
    pytest.param(
        v2_input([2**60, 3], [1, 2, 3]), 400, "needs 3458764513820540928", id="dimension-2^60"
    ),
    pytest.param(v2_input([2**62, 4], []), 400, "needs", id="dimension-product-wraps-int64"),
    pytest.param(v2_input([0, 2**62, 2**62], []), 400, "", id="zero-size-huge-dims"),
    pytest.param(v2_input([2**64, 3], [1, 2, 3]), 400, "64-bit", id="dimension-2^64"),
    pytest.param(v2_input([-1, 3], [1, 2, 3]), 400, "non-negative", id="negative-dimension"),
    pytest.param(v2_input([0, 3], []), 400, "no rows", id="empty-batch"),
    pytest.param(
        v2_input([MAX_ROWS + 1, 3], [1.0] * 3 * (MAX_ROWS + 1)),
        413,
        f"the limit is {MAX_ROWS}",
        id="rows-above-max",
    ),
    pytest.param(
        v2_input([1, 3], [1, 2, 3], datatype="FP128"), 400, "expected one of", id="unknown-datatype"
    ),
    pytest.param(v2_input("3", [1, 2, 3]), 400, "expected a list", id="shape-a-string"),
    pytest.param(
        v2_input([1, 3], [1, 2, 3], parameters={"binary_data_size": 12}),
        400,
        "binary_data_size",
        id="binary-size-without-data",
    ),
    pytest.param(
        {**v2_input([1, 3], [1, 2, 3]), "parameters": {"timeout": -5}},
        400,
        "timeout",
        id="negative-timeout-parameter",
    ),
]


@pytest.mark.parametrize(("body", "status", "needle"), V2_BODIES)
def test_bad_v2_body(body: Any, status: int, needle: str, http) -> None:
    response = (
        http.post(INFER, content=body) if isinstance(body, bytes) else http.post(INFER, json=body)
    )
    _rest(response).check(status, needle)


def test_v2_binary_nan_for_an_image_model(http) -> None:
    raw = np.full((1, 8, 8, 1), np.nan, np.float32).tobytes()
    header = (
        b'{"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 8, 8, 1], '
        b'"parameters": {"binary_data_size": ' + str(len(raw)).encode() + b"}}]}"
    )
    response = http.post(
        "/v2/models/tiny_image/infer",
        content=header + raw,
        headers={"inference-header-content-length": str(len(header))},
    )
    _rest(response).check(400, "NaN or infinite")


@pytest.mark.parametrize("length", ["abc", "-1", "999999"])
def test_v2_bad_header_length(length: str, http) -> None:
    response = http.post(
        INFER, json=v2_input([1, 3], [1, 2, 3]), headers={"inference-header-content-length": length}
    )
    _rest(response).check(400, "Inference-Header-Content-Length")


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf", "1e999"])
def test_bad_request_timeout_header(value: str, http) -> None:
    response = http.post(
        PREDICT, json={"instances": [[1, 2, 3]]}, headers={"request-timeout": value}
    )
    _rest(response).check(400, "expected a positive number of seconds")
