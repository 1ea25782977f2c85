"""Every request refused before the core is counted once, under one label set.

Part of the bad-input suite (``pytest -m bad_input``).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.suites.observability.helpers import scrape, value
from tests.suites.reliability.clients import (
    F32,
    INFER,
    PREDICT,
    Outcome,
    _grpc,
    _rest,
    predict_request,
    tensor_proto,
    tfs_predict,
    v2_request,
)
from tests.suites.reliability.conftest import MAX_BODY_BYTES

pytestmark = [pytest.mark.bad_input, pytest.mark.usefixtures("still_serving")]


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
        return tfs_predict(tfs, tensor_proto(F32, [1, 3], tensor_content=b"\x00" * 8))
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
