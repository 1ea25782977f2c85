"""The common predict body read straight into an array, its numbers never Python objects.

``{"instances": <numbers nested to a rectangular shape>}``, with an optional string
``signature_name``, is what TF Serving's clients send nearly always. Parsed by orjson, one
28x28 digit becomes 784 Python floats and 29 lists that ``np.asarray`` then reads back:
under load that allocation is the largest single cost of a small request
(docs/performance.md). simdjson (pysimdjson) reads the same numbers into a buffer of
int64 or doubles instead (``protocols.json_numbers``).

This path only ever accepts. A body that is anything but that exact form, or that would
need a judgement (a repeated key, an escape, ragged or mixed-depth nesting, booleans,
strings, numbers out of range, invalid JSON), gets None and goes to the strict path
(``transport.strict_json`` and ``tfserving.json``), which gives every error and leniency
exactly as before. What it accepts it reads as that path would: the same shape, int64
when every number is an integer and float64 otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import simdjson

from service.protocols.json_numbers import array_count, numbers, parse_object, rectangular_shape

ROW_KEYS = ({"instances"}, {"instances", "signature_name"})


def numeric_instances(body: bytes) -> tuple[np.ndarray, str | None] | None:
    """``(instances as an array, signature_name)``, or None for the strict path."""
    document = parse_object(body)
    if document is None:
        return None
    keys = list(document.keys())
    if len(keys) != len(set(keys)) or set(keys) not in ROW_KEYS:
        return None
    # looked up only when present: a missing key costs simdjson a C++ exception (~2 µs)
    signature = document["signature_name"] if len(keys) == 2 else None
    if signature is not None and not isinstance(signature, str):
        return None
    instances = document["instances"]
    if not isinstance(instances, simdjson.Array):
        return None
    shape = rectangular_shape(instances)
    if shape is None or not _only_these_arrays(body, signature, shape):
        return None
    values = numbers(instances)
    if values is None or values.size != math.prod(shape):
        return None
    return values.reshape(shape), signature


def _only_these_arrays(body: bytes, signature: str | None, shape: tuple[int, ...]) -> bool:
    """No array deeper than the shape says (``as_buffer`` would flatten one): the body's
    ``[`` bytes, less those inside the signature name (written as such: the body has no
    escapes), are exactly the shape's arrays."""
    in_signature = signature.count("[") if signature else 0
    return body.count(b"[") - in_signature == array_count(shape)
