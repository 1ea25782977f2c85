"""The common predict body read straight into an array, its numbers never Python objects.

``{"instances": <numbers nested to a rectangular shape>}``, with an optional string
``signature_name``, is what TF Serving's clients send nearly always. Parsed by orjson, one
28x28 digit becomes 784 Python floats and 29 lists that ``np.asarray`` then reads back:
under load that allocation is the largest single cost of a small request
(docs/performance.md). simdjson (pysimdjson) reads the same numbers into a buffer of
int64 or doubles instead.

This path only ever accepts. A body that is anything but that exact form, or that would
need a judgement (a repeated key, ragged or mixed-depth nesting, booleans, strings,
numbers out of range, invalid JSON), gets None and goes to the strict path
(``transport.strict_json`` and ``tfserving.json``), which gives every error and leniency
exactly as before. What it accepts it reads as that path would: the same shape, int64
when every number is an integer and float64 otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import simdjson

ROW_KEYS = ({"instances"}, {"instances", "signature_name"})
MAX_INNER_ARRAYS = 4096
"""Nested arrays walked at most to prove the shape rectangular; larger bodies go the strict
way (their numbers dominate anyway)."""


def numeric_instances(body: bytes) -> tuple[np.ndarray, str | None] | None:
    """``(instances as an array, signature_name)``, or None for the strict path."""
    try:
        document = simdjson.Parser().parse(body)  # a parser per body: none is ever shared
    except (ValueError, RuntimeError):
        return None
    if not isinstance(document, simdjson.Object):
        return None
    keys = list(document.keys())
    if len(keys) != len(set(keys)) or set(keys) not in ROW_KEYS:
        return None
    signature = document.get("signature_name")
    if signature is not None and not isinstance(signature, str):
        return None
    instances = document["instances"]
    if not isinstance(instances, simdjson.Array):
        return None
    shape = _rectangular_shape(instances)
    if shape is None or not _only_these_arrays(body, signature, shape):
        return None
    values = _numbers(instances)
    if values is None or values.size != math.prod(shape):
        return None
    return values.reshape(shape), signature


def _rectangular_shape(instances: simdjson.Array) -> tuple[int, ...] | None:
    """The shape, when every array above the innermost level holds arrays of one length."""
    shape = [len(instances)]
    first = instances
    while True:
        if not len(first):
            return None  # empty somewhere: the strict path says what it means
        first = first[0]
        if not isinstance(first, simdjson.Array):
            break
        shape.append(len(first))
    level = [instances]
    walked = 0
    for depth in range(1, len(shape)):
        walked += len(level) * shape[depth - 1]  # the arrays this level holds
        if walked > MAX_INNER_ARRAYS:
            return None
        length = shape[depth]
        below = []
        for array in level:
            for child in array:
                if not isinstance(child, simdjson.Array) or len(child) != length:
                    return None
                below.append(child)
        level = below
    return tuple(shape)


def _only_these_arrays(body: bytes, signature: str | None, shape: tuple[int, ...]) -> bool:
    """No array deeper than the shape says (``as_buffer`` would flatten one): the body's
    ``[`` bytes, less those inside the signature name, are exactly the shape's arrays."""
    arrays = sum(math.prod(shape[:depth]) for depth in range(len(shape)))
    in_signature = signature.count("[") if signature else 0
    return body.count(b"[") - in_signature == arrays


def _numbers(instances: simdjson.Array) -> np.ndarray | None:
    """Every number as int64 when all are integers, else as float64; None for anything
    else (booleans, strings, objects, numbers out of range)."""
    try:
        return np.frombuffer(instances.as_buffer(of_type="i"), dtype=np.int64)
    except TypeError:
        pass  # not all integers
    except ValueError:
        return None  # an integer outside int64: the strict path decides
    try:
        return np.frombuffer(instances.as_buffer(of_type="d"), dtype=np.float64)
    except (TypeError, ValueError):
        return None
