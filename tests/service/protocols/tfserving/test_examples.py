"""TF Serving's tf.Example JSON (``json_tensor.cc``'s rules) and its serialized rows."""

from __future__ import annotations

import base64

import pytest
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import input_pb2

from service.errors import InvalidInputError
from service.protocols.tfserving.examples import (
    example_from_json,
    input_from_json,
    serialized_examples,
)


def test_each_json_kind_becomes_its_feature_list() -> None:
    example = example_from_json(
        {
            "f": 2.5,
            "floats": [1.0, 2e-3],
            "i": 7,
            "ints": [1, -2],
            "flag": True,
            "s": "caf\u00e9",
            "b": {"b64": base64.b64encode(b"\x00\xff").decode()},
            "mixed_bytes": ["a", {"b64": "Yg=="}],
            "empty": [],
        },
        "example 0",
    )
    feature = example.features.feature
    assert list(feature["f"].float_list.value) == [2.5]
    assert list(feature["floats"].float_list.value) == pytest.approx([1.0, 2e-3])
    assert list(feature["i"].int64_list.value) == [7]
    assert list(feature["ints"].int64_list.value) == [1, -2]
    assert list(feature["flag"].int64_list.value) == [1]
    assert list(feature["s"].bytes_list.value) == ["caf\u00e9".encode()]
    assert list(feature["b"].bytes_list.value) == [b"\x00\xff"]
    assert list(feature["mixed_bytes"].bytes_list.value) == [b"a", b"b"]
    assert feature["empty"].WhichOneof("kind") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"x": [1.0, 2]}, "Unexpected element type in feature: x expecting type: float"),
        ({"x": [1, "a"]}, "expecting type: int64"),
        ({"x": [[1.0]]}, "flat list"),
        ({"x": None}, "unexpected JSON type: Null"),
        ({"x": {"c": 1}}, "unexpected JSON type: dict"),
        ({"x": 2**63}, "outside int64"),
        ({"x": 3.5e38}, "without loss of precision"),
        ({"x": {"b64": "a"}}, "invalid base64"),
        ([1.0], "Example must be JSON object but got JSON list"),
    ],
)
def test_values_tf_serving_refuses(value: object, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected.replace("(", r"\(")):
        example_from_json(value, "example 0")


def test_context_rows_merge_with_the_example_winning() -> None:
    request_input = input_from_json(
        {"context": {"c": "ctx", "x": 1.0}, "examples": [{"x": 2.0}, {"y": 3}]}
    )
    assert request_input.WhichOneof("kind") == "example_list_with_context"
    rows = [example_pb2.Example.FromString(row) for row in serialized_examples(request_input)]
    assert [list(r.features.feature["x"].float_list.value) for r in rows] == [[2.0], [1.0]]
    assert all(r.features.feature["c"].bytes_list.value == [b"ctx"] for r in rows)
    parsed = tf.io.parse_example(
        serialized_examples(request_input).astype(bytes),
        {"x": tf.io.FixedLenFeature([1], tf.float32), "c": tf.io.FixedLenFeature([1], tf.string)},
    )
    assert parsed["x"].numpy().tolist() == [[2.0], [1.0]]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "'examples' is expected"),
        ({"examples": {}}, "list/array"),
        ({"examples": []}, "empty array"),
        ({"examples": [{}], "instances": []}, "unknown request keys ['instances']"),
    ],
)
def test_bodies_tf_serving_refuses(body: dict[str, object], expected: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        input_from_json(body)
    assert expected in info.value.message


def test_an_empty_input_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="Input is empty"):
        serialized_examples(input_pb2.Input())
