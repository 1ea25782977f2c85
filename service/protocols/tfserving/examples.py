"""``tf.train.Example`` in TF Serving's forms: its REST JSON, and ``Input`` → serialized rows.

REST ``:classify`` and ``:regress`` bodies are ``{"signature_name", "context", "examples"}``;
each example (and the context) is a JSON object of features, read as TF Serving's JSON code
reads them: a JSON number with a fraction or exponent is a ``float_list`` value, an integer
(or ``true``/``false``, as 1/0) an ``int64_list`` value, a string or ``{"b64": ...}`` a
``bytes_list`` value; a feature is one value or a flat list of values of one kind.

A model's classify and regress signatures take the examples serialized, one string per
example; with a context, each row is the context's serialization followed by the example's,
so the example's features override the context's (protobuf merging), as TF Serving does.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import input_pb2

from service.errors import InvalidInputError
from service.inference.validate import bytes_array

REQUEST_KEYS = frozenset({"signature_name", "context", "examples"})
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_KIND_NAMES = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}


def _kind_error(name: str, feature: feature_pb2.Feature) -> InvalidInputError:
    kind = _KIND_NAMES.get(feature.WhichOneof("kind") or "", "UNKNOWN")
    return InvalidInputError(
        f"Unexpected element type in feature: {name} expecting type: {kind} (the values of "
        "one feature must all be floats, all integers or all strings/bytes)"
    )


def _check_kind(name: str, feature: feature_pb2.Feature, kind: str) -> None:
    current = feature.WhichOneof("kind")
    if current is not None and current != kind:
        raise _kind_error(name, feature)


def _add_value(name: str, value: Any, feature: feature_pb2.Feature) -> None:
    """One JSON value into a feature, by TF Serving's rules (see the module docstring)."""
    if isinstance(value, bool):
        _check_kind(name, feature, "int64_list")
        feature.int64_list.value.append(int(value))
    elif isinstance(value, int):
        _check_kind(name, feature, "int64_list")
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise InvalidInputError(
                f"Feature: {name} has integer {value} outside int64; only int64 is supported"
            )
        feature.int64_list.value.append(value)
    elif isinstance(value, float):
        _check_kind(name, feature, "float_list")
        if np.isfinite(value) and abs(value) > _FLOAT32_MAX:
            raise InvalidInputError(
                f"Cannot convert JSON value: {value} to float without loss of precision "
                f"(feature {name})."
            )
        feature.float_list.value.append(value)
    elif isinstance(value, str):
        _check_kind(name, feature, "bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8"))
    elif isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        _check_kind(name, feature, "bytes_list")
        try:
            feature.bytes_list.value.append(base64.b64decode(value["b64"], validate=True))
        except (binascii.Error, ValueError) as exc:
            raise InvalidInputError(
                f"Feature: {name} has invalid base64 ({exc}); expected standard base64"
            ) from None
    else:
        kind = "Null" if value is None else type(value).__name__
        raise InvalidInputError(
            f"Feature: {name} has element with unexpected JSON type: {kind}; expected a "
            'number, a string or {"b64": "..."}, or a flat list of them'
        )


def example_from_json(value: Any, where: str) -> example_pb2.Example:
    """A JSON object of features → ``tf.train.Example``.

    Raises:
        InvalidInputError: not an object, a nested list, null, mixed kinds, bad base64.
    """
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"{where}: Example must be JSON object but got JSON {type(value).__name__}"
        )
    example = example_pb2.Example()
    for name, content in value.items():
        feature = example.features.feature[name]
        for item in content if isinstance(content, list) else [content]:
            if isinstance(item, list):
                raise InvalidInputError(
                    f"{where}: Feature: {name} has element with unexpected JSON type: list; "
                    "a feature is one value or a flat list of values"
                )
            _add_value(name, item, feature)
    return example


def input_from_json(body: dict[str, Any]) -> input_pb2.Input:
    """The ``Input`` of a REST classify/regress body (``context`` and ``examples``).

    Raises:
        InvalidInputError: a missing or empty ``examples`` list, unknown keys, bad examples.
    """
    unknown = set(body) - REQUEST_KEYS
    if unknown:
        raise InvalidInputError(
            f"unknown request keys {sorted(unknown)}; expected 'examples' and optionally "
            "'context' and 'signature_name'"
        )
    examples = body.get("examples")
    if examples is None:
        raise InvalidInputError("key 'examples' is expected and was not found")
    if not isinstance(examples, list):
        raise InvalidInputError("Expecting 'examples' value to be an list/array")
    if not examples:
        raise InvalidInputError("'examples' value is an empty array")
    request_input = input_pb2.Input()
    if "context" in body:
        with_context = request_input.example_list_with_context
        with_context.context.CopyFrom(example_from_json(body["context"], "context"))
        target = with_context.examples
    else:
        target = request_input.example_list.examples
    for index, value in enumerate(examples):
        target.append(example_from_json(value, f"example {index}"))
    return request_input


def serialized_examples(request_input: input_pb2.Input) -> np.ndarray:
    """One serialized ``tf.Example`` per row, the context merged in (a 1-D bytes array).

    Raises:
        InvalidInputError: no examples.
    """
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        rows = [e.SerializeToString() for e in request_input.example_list.examples]
    elif kind == "example_list_with_context":
        with_context = request_input.example_list_with_context
        context = with_context.context.SerializeToString()
        rows = [context + e.SerializeToString() for e in with_context.examples]
    else:
        rows = []
    if not rows:
        raise InvalidInputError(
            "Input is empty: expected input.example_list or input.example_list_with_context "
            "with at least one tf.Example"
        )
    return bytes_array(rows)
