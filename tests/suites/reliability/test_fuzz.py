"""Fuzzing: schemathesis against the served OpenAPI document, hypothesis over the parsers.

Schemathesis generates requests from ``/openapi.json`` (valid and invalid ones) against the
small-limits server of the bad-input suite and checks every answer: no 5xx, a documented
status, a documented content type, a body matching the documented schema. Hypothesis feeds
the JSON-tensor parsers, the strict JSON reader and image preprocessing arbitrary input:
only the typed errors may come out. Both are bounded in examples (and so in time).
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from typing import Any

import numpy as np
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from contract import preprocessing
from contract.errors import ImageError
from contract.model_card import ImageContract
from service.errors import InvalidInputError, ServingError
from service.protocols.kserve_v2 import tensors as v2_tensors
from service.protocols.tfserving import tensor_proto
from service.transport import strict_json
from tests.conftest import ServerThread

API_EXAMPLES = 40


@pytest.fixture(scope="module")
def api_schema(limited_server: ServerThread) -> Any:
    return schemathesis.openapi.from_url(f"{limited_server.rest_url}/openapi.json")


def _operations(api_schema: Any) -> list[Any]:
    return [result.ok() for result in api_schema.get_all_operations()]


def _call(case: Any) -> None:
    timeout = (case.headers or {}).get("Request-Timeout")
    try:
        if timeout is not None and math.isfinite(float(timeout)) and float(timeout) > 0:
            case.headers["Request-Timeout"] = "30"  # a valid tiny deadline is a true 504
    except (TypeError, ValueError):
        pass
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
        timeout=30,
    )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_rest_api_conforms_to_its_schema(mode: GenerationMode, api_schema: Any) -> None:
    """Every operation of /openapi.json, fuzzed (schemathesis's pytest plugin does not run
    under pytest 9, so each operation's strategy is driven by hypothesis directly)."""
    operations = _operations(api_schema)
    assert len(operations) >= 19
    failures = []
    for operation in operations:

        @settings(
            max_examples=API_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: Any) -> None:
            _call(case)

        try:
            fuzz()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing invalid to send (e.g. GET /v2)
        except Exception as exc:
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert failures == [], "\n\n".join(failures)


# ----- hypothesis over the parsers and image preprocessing --------------------------------
PARSER_EXAMPLES = 300
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["b64", "x", "a", "inputs", "instances"]), children, max_size=3
        )
    ),
    max_leaves=30,
)
fuzz_settings = settings(
    max_examples=PARSER_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@fuzz_settings
@given(value=json_values)
def test_tf_serving_json_parsers_raise_only_typed_errors(value: Any) -> None:
    from service.protocols.tfserving import json as tfs_json
    from service.protocols.tfserving import rest as tfserving_rest

    with contextlib.suppress(ServingError):
        tfs_json.tensor_from_json(value)
    if isinstance(value, dict):
        with contextlib.suppress(ServingError):
            tfserving_rest.parse_predict_body(value)


shapes = st.lists(st.integers(min_value=-2, max_value=2**64), max_size=4) | json_values


@fuzz_settings
@given(
    data=json_values,
    datatype=st.sampled_from([*v2_tensors.DATATYPES, "FP128", ""]),
    shape=shapes,
    raw=st.binary(max_size=64),
)
def test_v2_parsers_raise_only_typed_errors(
    data: Any, datatype: str, shape: Any, raw: bytes
) -> None:
    from service.protocols.kserve_v2 import rest as v2_rest

    with contextlib.suppress(ServingError):
        checked = v2_tensors.checked_shape(shape, "x")
        with contextlib.suppress(ServingError):
            v2_tensors.array_from_json_data(data, datatype, checked, "x")
        v2_tensors.raw_to_array(raw, datatype, checked, "x")
    with contextlib.suppress(ServingError):
        v2_rest.decode_rest_inputs(data, memoryview(raw))


@fuzz_settings
@given(
    body=st.binary(max_size=200)
    | json_values.map(lambda v: orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS))
)
def test_strict_json_agrees_with_orjson_or_refuses(body: bytes) -> None:
    """strict_json returns what orjson returns, or refuses with InvalidInputError."""
    try:
        value = strict_json.loads(body)
    except InvalidInputError:
        return
    assert value == orjson.loads(body)


@fuzz_settings
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c:", "{d"]), json_values), min_size=1, max_size=5
    )
)
def test_strict_json_finds_every_duplicate_key(pairs: list[tuple[str, Any]]) -> None:
    body = ("{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in pairs) + "}").encode()
    keys = [k for k, _ in pairs]
    if len(set(keys)) == len(keys):
        assert strict_json.loads(body) == json.loads(body)
    else:
        with pytest.raises(InvalidInputError, match="repeats the key"):
            strict_json.loads(body)


@fuzz_settings
@given(
    dtype=st.sampled_from(list(tensor_proto._DTYPES)),
    dims=st.lists(st.integers(min_value=-1, max_value=2**40), max_size=4),
    content=st.binary(max_size=48),
    values=st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=6),
)
def test_tensor_proto_parser_raises_only_typed_errors(
    dtype: int, dims: list[int], content: bytes, values: list[int]
) -> None:
    from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2

    _, field = tensor_proto._DTYPES[dtype]
    proto = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_content=content,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
        ),
    )
    with contextlib.suppress(TypeError, ValueError):  # values the field itself cannot hold
        getattr(proto, field).extend(
            [bytes([v % 256]) for v in values]
            if field == "string_val"
            else [bool(v) for v in values]
            if field == "bool_val"
            else [float(v) for v in values]
            if field in ("float_val", "double_val")
            else values
        )
    with contextlib.suppress(ServingError):
        tensor_proto.tensor_proto_to_array(proto, "x")


def _seed_images() -> list[bytes]:
    from tests.suites.reliability import images

    return [
        images.quadrant_png(0),
        images.cmyk_jpeg(1),
        images.animated_gif(0, 1),
        images.exif_rotated(0, 6),
        images.truncated_exif(3),
        images.sixteen_bit_png(2),
    ]


CONTRACT = ImageContract(color_mode="rgb", height=8, width=8, resample="bilinear")


@fuzz_settings
@given(
    seed=st.sampled_from(_seed_images()),
    cut=st.integers(min_value=0, max_value=4096),
    flips=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=4095), st.integers(min_value=0, max_value=255)
        ),
        max_size=8,
    ),
    noise=st.binary(max_size=64),
)
def test_image_preprocessing_raises_only_typed_errors(
    seed: bytes, cut: int, flips: list[tuple[int, int]], noise: bytes
) -> None:
    """Truncated, bit-flipped and random images: a float32 row or a typed error, and no
    warning (a client's malformed metadata is not the server's to report on stderr)."""
    data = bytearray(seed[:cut] if cut < len(seed) else seed)
    for offset, value in flips:
        if data:
            data[offset % len(data)] = value
    for candidate in (bytes(data), noise, seed[:8] + noise):
        with warnings.catch_warnings(record=True) as emitted:
            try:
                row = preprocessing.preprocess_image(candidate, CONTRACT, max_pixels=1 << 20)
            except ImageError:  # and ImageTooLargeError, its subclass
                row = None
        assert [str(w.message) for w in emitted] == []
        if row is not None:
            assert row.shape == (8, 8, 3) and row.dtype == np.float32
