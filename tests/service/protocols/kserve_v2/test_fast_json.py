"""The fast v2 JSON reader accepts only what the strict path would read the same way, and
hands everything else to it: same documents, same arrays, same errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.errors import InvalidInputError
from service.protocols.kserve_v2.fast_json import inference_doc, numeric_inputs
from service.protocols.kserve_v2.rest import decode_rest_inputs, split_body
from service.transport.strict_json import loads
from tests.conftest import MNIST_NPZ


def _body(*inputs: str, extra: str = "") -> bytes:
    return ('{"inputs": [' + ", ".join(inputs) + "]" + extra + "}").encode()


def _input(data: str, datatype: str = "FP32", shape: str = "[2, 2]", name: str = "x") -> str:
    return f'{{"name": "{name}", "shape": {shape}, "datatype": "{datatype}", "data": {data}}}'


ACCEPTED = [
    _body(_input("[1.5, 2, 3, 4]")),  # flat
    _body(_input("[[1, 2], [3, 4]]", "INT32")),  # nested integers: int64 before the cast
    _body(_input("[[1, 2.5], [3, 4]]", "FP64")),
    _body(_input("[[[0.5], [1e-3]], [[-0.0], [2E2]]]", shape="[2, 2, 1]")),
    _body(
        _input("[1, 2, 3, 4]", "INT64", name="a"),
        _input("[0.5, 0.25]", "FP16", "[1, 2]", name="b"),
        extra=', "id": "req-[1]", "outputs": [{"name": "y", "parameters": {"binary_data": true}}]'
        ', "parameters": {"timeout": 5}',
    ),
    _body('{"name": "x", "shape": [2], "datatype": "FP32", "parameters": {}, "data": [1, 2]}'),
    _body('{"name": "[x]", "shape": [2], "datatype": "FP32", "data": [1, 2]}', extra=', "[": 1'),
]

REFUSED = [
    _body(_input("[[1, 2], [3]]")),  # ragged
    _body(_input("[[1, 2], 3]")),  # mixed depth
    _body(_input("[[1, 2], [3, [4]]]")),  # deeper than the shape, same count of numbers
    _body(_input("[true, false]", "FP32")),
    _body(_input('["a", "b"]', "UINT8")),
    _body(_input('["a", "b"]', "BYTES")),  # strings: the strict path reads them
    _body(_input("[true, false]", "BOOL")),
    _body(_input("[]")),
    _body(_input("3.5", shape="[]")),  # a scalar
    _body(_input("[18446744073709551615]", "UINT64", "[1]")),  # outside int64
    _body(_input("[1e400]", shape="[1]")),
    _body(_input("[NaN]", shape="[1]")),
    _body('{"name": "x", "name": "y", "shape": [1], "datatype": "FP32", "data": [1]}'),
    _body(_input("[1]", shape="[1]"), extra=', "parameters": {"a": 1, "a": 2}'),  # repeated
    _body(_input("[1]", shape="[1]"), extra=', "id": "a", "id": "b"'),
    _body('{"name": "x", "shape": [1], "datatype": 7, "data": [1]}'),
    _body("[1, 2]"),  # an input that is not an object
    b'{"inputs": []}',
    b'{"inputs": {"x": [1]}}',
    b'{"id": "no inputs"}',
    _body(_input("[1]", shape="[1]")) + b" trailing",
    _body(_input("[1]", shape="[1]", name="\\u005b")),  # an escape: the strict way
    _body(_input("[[1, 2], [3, [4]]]", name="\\u005b")),  # ... nor may one hide an array
    b"[1, 2]",
    b"",
    b"\xff",
]


def _decoded(doc: dict) -> dict[str, np.ndarray]:
    return decode_rest_inputs(doc["inputs"], memoryview(b""))


@pytest.mark.parametrize("body", ACCEPTED)
def test_what_it_accepts_it_reads_as_the_strict_path_does(body: bytes) -> None:
    fast = inference_doc(body)
    assert fast is not None
    strict = loads(body)
    assert {k: v for k, v in fast.items() if k != "inputs"} == {
        k: v for k, v in strict.items() if k != "inputs"
    }
    for fast_item, strict_item in zip(fast["inputs"], strict["inputs"], strict=True):
        assert isinstance(fast_item["data"], np.ndarray)
        assert {k: v for k, v in fast_item.items() if k != "data"} == {
            k: v for k, v in strict_item.items() if k != "data"
        }
    expected = _decoded(strict)
    for name, array in _decoded(fast).items():
        assert array.dtype == expected[name].dtype and array.shape == expected[name].shape
        np.testing.assert_array_equal(array, expected[name])


@pytest.mark.parametrize("body", REFUSED)
def test_everything_else_goes_to_the_strict_path(body: bytes) -> None:
    assert inference_doc(body) is None


@pytest.mark.parametrize(
    "body",
    [
        _body(_input("[[1, 2], [3]]")),  # refused by the fast path: ragged
        _body(_input("[1.5, 2]", "INT32", "[2]")),  # accepted, refused by the decoder
        _body(_input("[1, 2, 3]")),  # accepted, the wrong count for the shape
    ],
)
def test_errors_are_the_strict_paths(body: bytes) -> None:
    with pytest.raises(InvalidInputError) as fast_path:
        doc, binary = split_body(body, None)
        decode_rest_inputs(doc["inputs"], binary)
    with pytest.raises(InvalidInputError) as strict:
        decode_rest_inputs(loads(body)["inputs"], memoryview(b""))
    assert fast_path.value.message == strict.value.message


def test_real_digits_read_exactly() -> None:
    digits = np.load(MNIST_NPZ)["x_test"][:64].astype(np.float32) / 255.0
    item = {"name": "image", "shape": [64, 28, 28], "datatype": "FP32"}
    for data in (digits.tolist(), digits.reshape(-1).tolist()):  # nested and flat
        body = json.dumps({"inputs": [{**item, "data": data}]}).encode()
        fast = inference_doc(body)
        assert fast is not None
        np.testing.assert_array_equal(_decoded(fast)["image"], digits)
        read = numeric_inputs(body)
        assert read is not None and read[1]["image"].dtype == np.float32
        np.testing.assert_array_equal(read[1]["image"], digits)


# ----- numeric_inputs: every input numeric and plain, decoded at once --------------------
NUMERIC = [
    _body(_input("[1.5, 2, 3, 4]")),
    _body(_input("[[1, 2], [3, 4]]", "INT32")),
    _body(_input("[[1, 2.5], [3, 4]]", "FP64")),
    _body(_input("[[[0.5], [1e-3]], [[-0.0], [2E2]]]", shape="[2, 2, 1]")),
    _body(_input("[1, 2, 3, 4]", "INT64", name="a"), _input("[0.5, 0.25]", "FP16", "[1, 2]", "b")),
    _body(_input("[-1, 300]", "UINT8", "[2]")),  # wraps, as the decoder's cast does
    _body(_input("[7]", "INT16", "[]")),  # a scalar input
    _body('{"data": [[1, 2]], "datatype": "FP32", "shape": [1, 2], "name": "x"}'),  # any order
    # tritonclient's JSON: an id, and the outputs or binary_data_output
    _body(_input("[1, 2, 3, 4]"), extra=', "id": "42", "parameters": {"binary_data_output": true}'),
    _body(
        _input("[1, 2, 3, 4]"),
        extra=', "outputs": [{"name": "y", "parameters": {"binary_data": false}}], "id": "[a]"',
    ),
]
NOT_NUMERIC = [
    _body(_input("[1, 0]", "BOOL", "[2]")),  # numbers for BOOL: the decoder refuses them
    _body(_input("[1.5, 2]", "INT32", "[2]")),  # floats for integers: refused there too
    _body(_input("[1, 2, 3]")),  # too few values for the shape
    _body(_input("[1, 2]", shape="[2, true]")),
    _body(_input("[1, 2]", shape="[-2]")),
    _body(_input("[1, 2]", shape="[2.0]")),
    _body(_input("[1, 2]", shape='["2"]')),
    _body(_input("[1, 2]", shape="[[2]]")),
    _body(_input("[1, 2]", "COMPLEX", "[2]")),
    _body(_input("[1, 2]", shape="[2]"), _input("[3, 4]", shape="[2]")),  # the same name twice
    _body(_input("[1, 2]", shape="[2]", name="x[0]")),
    _body('{"name": "x", "shape": [1], "datatype": "FP32", "data": [1], "parameters": {}}'),
    _body(_input("[[1, 2], [3, [4]]]"), extra=', "id": "[["'),  # an id may not hide an array
]


@pytest.mark.parametrize("body", [*NUMERIC, ACCEPTED[4]])
def test_numeric_inputs_reads_as_the_strict_path_and_the_decoder_do(body: bytes) -> None:
    read = numeric_inputs(body)
    assert read is not None
    doc, inputs = read
    strict = loads(body)
    assert doc == {k: v for k, v in strict.items() if k != "inputs"}
    expected = _decoded(strict)
    assert list(inputs) == list(expected)
    for name, array in inputs.items():
        assert array.dtype == expected[name].dtype and array.shape == expected[name].shape
        np.testing.assert_array_equal(array, expected[name])


@pytest.mark.parametrize("body", NOT_NUMERIC + ACCEPTED[5:] + REFUSED)
def test_numeric_inputs_leaves_every_other_body_to_the_other_readers(body: bytes) -> None:
    assert numeric_inputs(body) is None
