"""Hostile model names and bad versions, over every protocol.

Part of the bad-input suite (``pytest -m bad_input``). Stated policy pinned here: model
names and versions that are not plain names / positive integers are unknown (404) without
touching the filesystem, and are escaped in logs.
"""

from __future__ import annotations

import base64
import io
import logging
from typing import Any

import httpx
import pytest

from service.logging_setup import ACCESS_LOGGER, TextFormatter
from service.models import storage
from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2 as pb
from tests.suites.reliability.clients import (
    F32,
    _grpc,
    _rest,
    predict_request,
    tensor_proto,
    v2_input,
    v2_request,
)

pytestmark = [pytest.mark.bad_input, pytest.mark.usefixtures("still_serving")]


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
        404, "is not an endpoint; GET status or /metadata, POST :predict, :classify or :regress"
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
