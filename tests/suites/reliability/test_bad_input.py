"""The bad-input suite: every hostile or broken request, over REST and gRPC, on a real server.

Each case asserts the documented status (HTTP, or its gRPC code through the error table) and
a message saying what was expected; then the ``still_serving`` fixture asserts the server is
live and still answers a good request correctly on both protocols. Run it alone with
``pytest -m bad_input``. One server with small limits serves the whole suite.

Stated policies pinned here (see docs/reliability.md):
    * images of any aspect ratio are resized to the contract (1x1, 100000x1, 1x100000 are
      served); the pixel limit is checked from the header before decoding;
    * EXIF orientation is applied; animated images use their first frame; alpha is dropped
      (not composited); palette images are expanded; 16-bit keeps its top 8 bits; CMYK → RGB;
    * a JSON object that repeats a key is refused (400), as is NaN/Infinity/1e400;
    * model names and versions that are not plain names / positive integers are unknown
      (404) without touching the filesystem, and are escaped in logs.
"""

from __future__ import annotations

import base64
import io
import logging
import math
from typing import Any

import httpx
import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from service.logging_setup import ACCESS_LOGGER, TextFormatter
from service.models import storage
from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2 as pb
from tests.suites.observability.helpers import scrape, value
from tests.suites.reliability import images
from tests.suites.reliability.clients import (
    IMAGE_TRANSPORTS,
    Outcome,
    _grpc,
    _rest,
    predict_request,
    send_image,
    tensor_proto,
)
from tests.suites.reliability.conftest import MAX_BODY_BYTES, MAX_MESSAGE_BYTES, MAX_ROWS

pytestmark = [pytest.mark.bad_input, pytest.mark.usefixtures("still_serving")]
PREDICT = "/v1/models/half_plus_two:predict"
INFER = "/v2/models/half_plus_two/infer"
IMAGE_PREDICT = "/v1/models/tiny_image:predict"


# ----- images, on all four image paths ----------------------------------------------------
BAD_IMAGES = [
    pytest.param(images.truncated_jpeg(), 400, "corrupt or truncated", id="truncated-jpeg"),
    pytest.param(b"", 400, "image is empty", id="zero-byte-image"),
    pytest.param(images.HTML, 400, "expected one of JPEG, PNG", id="html"),
    pytest.param(images.PDF, 400, "expected one of JPEG, PNG", id="pdf"),
    pytest.param(images.png_declaring(30000, 30000), 413, "pixel", id="png-30000x30000"),
    pytest.param(
        images.solid_png(1001, 1000),
        413,
        "the limit is 1000000 pixels",
        id="image-over-pixel-limit",
    ),
    pytest.param(b"GIF89a" + b"\x00" * 20, 400, "", id="gif-header-only"),
]


@pytest.mark.parametrize("transport", IMAGE_TRANSPORTS)
@pytest.mark.parametrize(("data", "status", "needle"), BAD_IMAGES)
def test_bad_image(transport: str, data: bytes, status: int, needle: str, http, tfs, v2) -> None:
    send_image(transport, data, http, tfs, v2).check(status, needle)


STATED_IMAGES = [
    pytest.param(images.cmyk_jpeg(0), 0, id="cmyk-jpeg"),
    pytest.param(images.sixteen_bit_png(1), 1, id="16-bit-png"),
    pytest.param(images.palette_with_transparency(2), 2, id="palette-transparency"),
    pytest.param(images.rgba_with_transparent_mark(3), 3, id="rgba-alpha-dropped"),
    pytest.param(images.exif_rotated(0, orientation=6), 1, id="exif-rotated-90-cw"),
    pytest.param(images.exif_rotated(0, orientation=3), 3, id="exif-rotated-180"),
    pytest.param(images.animated_gif(2, 3), 2, id="animated-gif-first-frame"),
    pytest.param(images.truncated_exif(1), 1, id="truncated-exif-served-as-stored"),
]


@pytest.mark.parametrize("transport", IMAGE_TRANSPORTS)
@pytest.mark.parametrize(("data", "quadrant"), STATED_IMAGES)
def test_unusual_image_has_its_stated_behaviour(
    transport: str, data: bytes, quadrant: int, http, tfs, v2
) -> None:
    outcome = send_image(transport, data, http, tfs, v2)
    outcome.check(200)
    assert images.LABELS[outcome.top] == images.LABELS[quadrant], outcome.scores


@pytest.mark.parametrize("transport", IMAGE_TRANSPORTS)
@pytest.mark.parametrize(("width", "height"), [(1, 1), (100_000, 1), (1, 100_000)])
def test_extreme_aspect_ratios_are_served(
    transport: str, width: int, height: int, http, tfs, v2
) -> None:
    outcome = send_image(transport, images.solid_png(width, height), http, tfs, v2)
    outcome.check(200)
    assert outcome.scores is not None
    assert all(math.isfinite(s) for s in outcome.scores)
    assert outcome.scores == pytest.approx([0.25] * 4)  # uniform: every quadrant alike


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
def v2_input(shape: Any, data: Any = None, datatype: str = "FP32", **extra: Any) -> dict:
    entry = {"name": "x", "datatype": datatype, "shape": shape, **extra}
    if data is not None:
        entry["data"] = data
    return {"inputs": [entry]}


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


# ----- gRPC tensors -----------------------------------------------------------------------
F32 = types_pb2.DT_FLOAT


def _tfs(tfs: Any, proto: Any, model: str = "half_plus_two", name: str = "x") -> Outcome:
    return _grpc(tfs.Predict, predict_request(model, {name: proto}), lambda r: [])


@pytest.mark.parametrize(
    ("proto", "status", "needle"),
    [
        pytest.param(
            tensor_proto(F32, [1, 3], tensor_content=b"\x00" * 8),
            400,
            "8 bytes of tensor_content; shape [1, 3] of DT_FLOAT needs 12",
            id="tensor-content-short",
        ),
        pytest.param(
            tensor_proto(F32, [1, 3], tensor_content=b"\x00" * 13),
            400,
            "needs 12",
            id="tensor-content-long",
        ),
        pytest.param(
            tensor_proto(F32, [2**60, 3], tensor_content=b"\x00" * 12),
            400,
            "needs 13835058055282163712",
            id="dimension-2^60",
        ),
        pytest.param(
            tensor_proto(F32, [-1, 3], tensor_content=b"\x00" * 12),
            400,
            ">= 0",
            id="negative-dimension",
        ),
        pytest.param(tensor_proto(F32, [0, 2**62, 2**62]), 400, "", id="zero-size-huge-dims"),
        pytest.param(
            tensor_proto(F32, [2**30, 3], float_val=[1.0]),
            413,
            "broadcast",
            id="broadcast-one-value-to-3-billion",
        ),
        pytest.param(
            tensor_proto(F32, [1, 2], float_val=[1, 2]), 400, "expects [-1, 3]", id="wrong-shape"
        ),
        pytest.param(
            tensor_proto(F32, [2, 3], float_val=[1, 2, 3, 4]),
            400,
            "4 values in float_val; shape [2, 3] needs 6",
            id="ragged-values",
        ),
        pytest.param(
            tensor_proto(types_pb2.DT_STRING, [1, 3], string_val=[b"a", b"b", b"c"]),
            400,
            "not bytes",
            id="strings-for-floats",
        ),
        pytest.param(tensor_proto(F32, [0, 3]), 400, "no rows", id="empty-batch"),
        pytest.param(
            tensor_proto(F32, [MAX_ROWS + 1, 3], float_val=[1.0]),
            413,
            f"the limit is {MAX_ROWS}",
            id="rows-above-max",
        ),
        pytest.param(
            tensor_proto(types_pb2.DT_INT8, [1, 3], int_val=[1000, 1, 1]),
            400,
            "out of range",
            id="int8-out-of-range",
        ),
        pytest.param(
            tensor_proto(types_pb2.DT_COMPLEX64, [1, 3]), 400, "supported", id="unsupported-dtype"
        ),
        pytest.param(
            tensor_proto(types_pb2.DT_STRING, [1], tensor_content=b"abcd"),
            400,
            "string_val",
            id="string-in-tensor-content",
        ),
    ],
)
def test_bad_tfs_tensor(proto: Any, status: int, needle: str, tfs) -> None:
    _tfs(tfs, proto).check(status, needle)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_for_an_image_model(value: float, tfs, v2) -> None:
    proto = tensor_proto(F32, [1, 8, 8, 1], float_val=[value])
    _tfs(tfs, proto, model="tiny_image", name="image").check(400, "NaN or infinite")
    request = pb.ModelInferRequest(model_name="tiny_image")
    request.inputs.add(name="image", datatype="FP32", shape=[1, 8, 8, 1])
    request.raw_input_contents.append(np.full(64, value, np.float32).tobytes())
    _grpc(v2.ModelInfer, request, lambda r: []).check(400, "NaN or infinite")


def v2_request(
    shape: list[int], raw: bytes | None = None, datatype: str = "FP32", **contents: Any
) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name="half_plus_two")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=shape)
    if raw is not None:
        request.raw_input_contents.append(raw)
    for field, values in contents.items():
        getattr(tensor.contents, field).extend(values)
    return request


@pytest.mark.parametrize(
    ("request_", "status", "needle"),
    [
        pytest.param(
            v2_request([1, 3], b"\x00" * 8),
            400,
            "8 bytes of data; shape [1, 3]",
            id="raw-length-mismatch",
        ),
        pytest.param(v2_request([2**60, 3], b"\x00" * 12), 400, "needs", id="dimension-2^60"),
        pytest.param(
            v2_request([-1, 3], b"\x00" * 12), 400, "non-negative", id="negative-dimension"
        ),
        pytest.param(
            v2_request([1, 3], fp32_contents=[1, 2]),
            400,
            "2 values in fp32_contents",
            id="contents-count-mismatch",
        ),
        pytest.param(v2_request([1, 2], b"\x00" * 8), 400, "expects [-1, 3]", id="wrong-shape"),
        pytest.param(
            v2_request([1, 3], datatype="BYTES", bytes_contents=[b"a", b"b", b"c"]),
            400,
            "not bytes",
            id="strings-for-floats",
        ),
        pytest.param(
            v2_request([1, 3], datatype="UINT8", uint_contents=[300, 1, 1]),
            400,
            "out of range",
            id="uint8-out-of-range",
        ),
        pytest.param(v2_request([0, 3], b""), 400, "no rows", id="empty-batch"),
        pytest.param(
            v2_request([MAX_ROWS + 1, 3], b"\x00" * 12 * (MAX_ROWS + 1)),
            413,
            f"the limit is {MAX_ROWS}",
            id="rows-above-max",
        ),
    ],
)
def test_bad_v2_grpc_tensor(request_: pb.ModelInferRequest, status: int, needle: str, v2) -> None:
    _grpc(v2.ModelInfer, request_, lambda r: []).check(status, needle)


def test_grpc_message_over_the_receive_limit(tfs, v2) -> None:
    big = np.zeros((1, MAX_MESSAGE_BYTES // 4 + 1024), np.float32)
    proto = tensor_proto(F32, list(big.shape), tensor_content=big.tobytes())
    _tfs(tfs, proto).check(413)  # RESOURCE_EXHAUSTED, from gRPC itself
    request = v2_request(list(big.shape), big.tobytes())
    _grpc(v2.ModelInfer, request, lambda r: []).check(413)


# ----- model names and versions -----------------------------------------------------------
HOSTILE_NAMES = [
    pytest.param("../../etc", id="dot-dot"),
    pytest.param("/etc/passwd", id="absolute-path"),
    pytest.param("%2e%2e%2f", id="percent-encoded-dot-dot"),
    pytest.param("half_plus_two\x00.txt", id="nul"),
    pytest.param("a" * 10_000, id="10000-chars"),
    pytest.param("\u202eowt_sulp_flah", id="rtl-override"),
    pytest.param("\u0645\u062f\u0644", id="arabic"),
    pytest.param("model\nINFO forged log line", id="newline"),
    pytest.param("http://example.com/model", id="url"),
    pytest.param(".hidden", id="leading-dot"),
]


@pytest.fixture
def no_storage_access(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every call into ``service.models.storage`` (the only way to the model files)."""
    calls: list[str] = []
    for name in (
        "list_dirs",
        "exists",
        "read_bytes",
        "fingerprint",
        "inside",
        "join",
        "resolve_base",
    ):
        original = getattr(storage, name)

        def spy(*args: Any, _name: str = name, _original: Any = original) -> Any:
            calls.append(_name)
            return _original(*args)

        monkeypatch.setattr(storage, name, spy)
    return calls


def quote(name: str) -> str:
    return "".join(
        c if c.isalnum() or c in "_.-" else "".join(f"%{b:02X}" for b in c.encode()) for c in name
    )


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_model_names(name: str, http, tfs, v2, no_storage_access) -> None:
    quoted = quote(name)
    for path in (
        f"/v1/models/{quoted}",
        f"/v1/models/{quoted}:predict",
        f"/v1/models/{quoted}/metadata",
        f"/v2/models/{quoted}",
        f"/v2/models/{quoted}/infer",
        f"/v2/models/{quoted}/ready",
    ):
        method = "POST" if path.endswith(("predict", "infer")) else "GET"
        response = http.request(method, path, json={"instances": [[1, 2, 3]]})
        assert response.status_code == 404, (path, response.text)
        error = response.json()["error"]
        assert any(text in error for text in ("expected", "not found", "no such endpoint"))
    request = predict_request(name, {"x": tensor_proto(F32, [1, 3], float_val=[1, 2, 3])})
    _grpc(tfs.Predict, request, lambda r: []).check(404, "expected letters, digits")
    _grpc(v2.ModelInfer, pb.ModelInferRequest(model_name=name), lambda r: []).check(
        404, "expected letters, digits"
    )
    _grpc(v2.ModelMetadata, pb.ModelMetadataRequest(name=name), lambda r: []).check(
        404, "expected letters, digits"
    )
    assert no_storage_access == []


def test_raw_dot_dot_in_the_url_path(http) -> None:
    """A path that httpx would normalise is sent byte for byte."""
    for raw in (
        b"/v1/models/../../etc/passwd",
        b"/v1/models/%2e%2e%2f%2e%2e%2fetc",
        b"/v2/models/..%2F..%2Fetc/infer",
        b"/v1/models/half_plus_two/../../x",
    ):
        request = http.build_request("GET", "/")
        request.url = request.url.copy_with(raw_path=raw)
        response = http.send(request)
        assert response.status_code == 404, (raw, response.text)


def test_hostile_names_are_escaped_in_the_access_log(tfs) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextFormatter())
    access = logging.getLogger(ACCESS_LOGGER)
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        for name in ("evil\nINFO primer.access: forged", "\u202eevil", "a" * 10_000):
            request = predict_request(name, {"x": tensor_proto(F32, [1, 3], float_val=[1])})
            _grpc(tfs.Predict, request, lambda r: []).check(404)
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert "\\n" in lines[0] and "forged" in lines[0]
    assert "\\u202e" in lines[1] and "\u202e" not in lines[1]
    assert len(lines[2]) < 1000  # a 10,000-character name is cut in the log


VERSIONS = [
    ("9", "no version 9"),
    ("0", "not valid"),
    ("-1", "not valid"),
    ("1.5", "not valid"),
    ("12345678901234567890", "not valid"),
    ("", "not valid"),
    ("1e3", "not valid"),
    ("%00", "not valid"),
]


@pytest.mark.parametrize(("version", "needle"), VERSIONS)
def test_bad_versions_rest(version: str, needle: str, http) -> None:
    for path in (
        f"/v1/models/half_plus_two/versions/{version}",
        f"/v1/models/half_plus_two/versions/{version}:predict",
        f"/v2/models/half_plus_two/versions/{version}",
        f"/v2/models/half_plus_two/versions/{version}/infer",
    ):
        method = "POST" if path.endswith(("predict", "infer")) else "GET"
        body = v2_input([1, 3], [1, 2, 3]) if path.endswith("infer") else {"instances": [[1, 2, 3]]}
        response = http.request(method, path, json=body)
        _rest(response).check(404, needle)


@pytest.mark.parametrize(
    ("version", "needle"),
    [
        (9, "no version 9"),
        (0, "no version 0"),
        (-1, "no version -1"),
        (2**63 - 1, "no version 9223372036854775807"),
    ],
)
def test_bad_versions_tfs_grpc(version: int, needle: str, tfs) -> None:
    request = predict_request(
        "half_plus_two", {"x": tensor_proto(F32, [1, 3], float_val=[1, 2, 3])}, version
    )
    _grpc(tfs.Predict, request, lambda r: []).check(404, needle)


@pytest.mark.parametrize(("version", "needle"), VERSIONS[:-1])
def test_bad_versions_v2_grpc(version: str, needle: str, v2) -> None:
    if version == "":
        return  # empty means "the server's choice" in v2
    request = v2_request([1, 3], fp32_contents=[1, 2, 3])
    request.model_version = version
    _grpc(v2.ModelInfer, request, lambda r: []).check(404, needle)


def test_unknown_model(http, tfs) -> None:
    _rest(http.post("/v1/models/no_such_model:predict", json={"instances": [[1]]})).check(
        404, "not found; available models"
    )
    request = predict_request("no_such_model", {"x": tensor_proto(F32, [1], float_val=[1])})
    _grpc(tfs.Predict, request, lambda r: []).check(404, "not found; available models")


def test_unknown_endpoint_or_method(http) -> None:
    _rest(http.post("/v1/models/half_plus_two:explode", json={})).check(
        404, "is not an endpoint; GET status or /metadata, POST :predict or :classify"
    )
    _rest(http.get("/v1/nothing")).check(404, "no such endpoint")
    _rest(http.get("/v1/models/a%0Ab")).check(404, "no such endpoint")
    _rest(http.delete("/v1/models/half_plus_two")).check(405, "method DELETE")


def test_base64_padding_is_strict_by_policy() -> None:
    """The suite's bad-padding input is really bad padding (not accidentally valid)."""
    with pytest.raises(ValueError):
        base64.b64decode("iVBORw0KGgo", validate=True)


def test_http_client_stays_usable(http: httpx.Client) -> None:
    """A sanity anchor: the suite's own client still talks to the server."""
    assert http.get("/v2/health/ready").status_code == 200


# ----- every refusal is counted -----------------------------------------------------------
def _send_refused(kind: str, http: httpx.Client, tfs: Any, v2: Any) -> Outcome:
    if kind == "rest-body-over-the-limit":
        return _rest(http.post(PREDICT, content=b" " * (MAX_BODY_BYTES + 1)))
    if kind == "rest-malformed-json":
        return _rest(http.post(PREDICT, content=b'{"instances": [}'))
    if kind == "rest-unknown-model-malformed-json":
        return _rest(http.post("/v1/models/no_such_model:predict", content=b"{"))
    if kind == "v2-rest-malformed-json":
        return _rest(http.post(INFER, content=b'{"inputs": [}'))
    if kind == "rest-unknown-label":
        return _rest(
            http.post(
                "/v1/models/half_plus_two/labels/nightly:predict",
                json={"instances": [[1.0, 2.0, 3.0]]},
            )
        )
    if kind == "v2-rest-invalid-version":
        return _rest(http.post("/v2/models/half_plus_two/versions/x1/infer", content=b"{}"))
    if kind == "tfs-grpc-short-tensor-content":
        return _tfs(tfs, tensor_proto(F32, [1, 3], tensor_content=b"\x00" * 8))
    if kind == "tfs-grpc-unknown-label":
        request = predict_request(
            "half_plus_two", {"x": tensor_proto(F32, [1, 3], float_val=[1, 2, 3])}
        )
        request.model_spec.version_label = "nightly"
        return _grpc(tfs.Predict, request, lambda r: [])
    if kind == "v2-grpc-invalid-version":
        request = v2_request([1, 3], fp32_contents=[1, 2, 3])
        request.model_version = "x1"
        return _grpc(v2.ModelInfer, request, lambda r: [])
    assert kind == "v2-grpc-short-raw-contents"
    return _grpc(v2.ModelInfer, v2_request([1, 3], b"\x00" * 8), lambda r: [])


@pytest.mark.parametrize(
    ("kind", "model", "protocol", "status", "code"),
    [
        ("rest-body-over-the-limit", "half_plus_two", "rest_tfserving", 413, "RESOURCE_EXHAUSTED"),
        ("rest-malformed-json", "half_plus_two", "rest_tfserving", 400, "INVALID_ARGUMENT"),
        ("rest-unknown-model-malformed-json", "", "rest_tfserving", 400, "INVALID_ARGUMENT"),
        ("v2-rest-malformed-json", "half_plus_two", "rest_v2", 400, "INVALID_ARGUMENT"),
        (
            "tfs-grpc-short-tensor-content",
            "half_plus_two",
            "grpc_tfserving",
            400,
            "INVALID_ARGUMENT",
        ),
        ("v2-grpc-short-raw-contents", "half_plus_two", "grpc_v2", 400, "INVALID_ARGUMENT"),
        # the version named in the path or model_spec is refused before the core resolves it
        ("rest-unknown-label", "half_plus_two", "rest_tfserving", 404, "NOT_FOUND"),
        ("tfs-grpc-unknown-label", "half_plus_two", "grpc_tfserving", 404, "NOT_FOUND"),
        ("v2-rest-invalid-version", "half_plus_two", "rest_v2", 404, "NOT_FOUND"),
        ("v2-grpc-invalid-version", "half_plus_two", "grpc_v2", 404, "NOT_FOUND"),
    ],
)
def test_a_request_refused_before_the_core_is_counted_once(
    kind: str, model: str, protocol: str, status: int, code: str, http, tfs, v2
) -> None:
    """Refused while its body or tensors were read, before any model version was resolved:
    counted under the model's name (if served) with an empty version, and only once."""
    _, before = scrape(http)
    _send_refused(kind, http, tfs, v2).check(status, "")
    _, after = scrape(http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert (
        delta("primer_requests_total", model=model, version="", protocol=protocol, code=code) == 1
    )
    assert delta("primer_requests_total") == 1, "counted once, under one label set"
    too_large = 1 if status == 413 else 0
    assert (
        delta("primer_rejected_requests_total", model=model, version="", reason="too_large")
        == too_large
    )
