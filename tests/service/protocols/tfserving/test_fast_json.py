"""The fast predict-body reader accepts only what the strict path would read the same way,
and hands everything else to it: same arrays, same errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.protocols.tfserving.fast_json import numeric_instances
from service.protocols.tfserving.rest import parse_predict_body, read_predict_body
from service.transport.strict_json import loads
from tests.conftest import MNIST_NPZ

ACCEPTED = [
    b'{"instances": [1.0, 2.0, 5.0]}',  # TF Serving's quickstart
    b'{"instances": [[1, 2], [3, 4]]}',  # all integers: int64, as np.asarray reads them
    b'{"instances": [[1, 2.5], [3, 4]]}',  # mixed: float64
    b'{"instances": [[[0.5], [1e-3]], [[-0.0], [2E2]]], "signature_name": "serving_default"}',
    b'{"signature_name": "odd [name]", "instances": [[1.5, 2.5]]}',
    b' {"instances" : [ 9223372036854775807, -9223372036854775808 ] } ',
]

REFUSED = [
    b'{"instances": [[1, 2], [3]]}',  # ragged
    b'{"instances": [[1, 2], 3]}',  # mixed depth
    b'{"instances": [[1, 2], [3, [4]]]}',  # deeper than the shape, same count of numbers
    b'{"instances": [1, [2]]}',
    b'{"instances": [true, false]}',
    b'{"instances": ["a", "b"]}',
    b'{"instances": [{"b64": "AAAA"}]}',
    b'{"instances": [{"x": 1.0}]}',  # named rows
    b'{"instances": []}',
    b'{"instances": [[]]}',
    b'{"instances": [1], "instances": [2]}',  # a repeated key
    b'{"inputs": [1.0]}',  # columnar
    b'{"instances": [1], "extra": 1}',
    b'{"instances": [1], "signature_name": 3}',
    b'{"instances": [18446744073709551615]}',  # outside int64
    b'{"instances": [1e400]}',
    b'{"instances": [NaN]}',
    b'{"instances": [1]} trailing',
    b'{"signature_name": "\\u005b", "instances": [1.0]}',  # an escaped bracket: not counted
    b'{"signature_name": "\\u005b", "instances": [[1, 2], [3, [4]]]}',  # ... nor hiding one
    b"[1, 2]",
    b"",
    b"\xff",
]


def _strict(body: bytes) -> tuple[np.ndarray, str | None]:
    value = loads(body)
    inputs, row_format = parse_predict_body(value)
    assert row_format
    return next(iter(inputs.values())), value.get("signature_name")


@pytest.mark.parametrize("body", ACCEPTED)
def test_what_it_accepts_it_reads_as_the_strict_path_does(body: bytes) -> None:
    fast = numeric_instances(body)
    assert fast is not None
    expected, signature = _strict(body)
    assert fast[1] == signature
    assert fast[0].dtype == expected.dtype and fast[0].shape == expected.shape
    np.testing.assert_array_equal(fast[0], expected)


@pytest.mark.parametrize("body", REFUSED)
def test_everything_else_goes_to_the_strict_path(body: bytes) -> None:
    assert numeric_instances(body) is None


def test_real_digits_read_exactly() -> None:
    digits = np.load(MNIST_NPZ)["x_test"][:64].astype(np.float32) / 255.0
    body = json.dumps({"instances": digits.tolist()}).encode()
    fast = numeric_instances(body)
    assert fast is not None
    np.testing.assert_array_equal(fast[0], _strict(body)[0])
    assert fast[0].shape == (64, 28, 28)


def test_an_oversized_nesting_goes_the_strict_way() -> None:
    body = json.dumps({"instances": np.zeros((70, 70, 2)).tolist()}).encode()
    assert numeric_instances(body) is None  # 4,970 inner arrays to walk
    np.testing.assert_array_equal(read_predict_body(body)[0][""], np.zeros((70, 70, 2)))
