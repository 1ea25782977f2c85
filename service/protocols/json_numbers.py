"""Numbers nested in a simdjson array, read straight into an int64 or float64 buffer.

The shared ground of the adapters' fast JSON paths (``tfserving.fast_json``,
``kserve_v2.fast_json``). Parsed by orjson, a 28x28 digit becomes 784 Python floats and 29
lists that ``np.asarray`` then reads back; under load that allocation is the largest single
cost of a small request (docs/performance.md). pysimdjson reads the same numbers into a
buffer instead.

Both helpers only ever accept: anything that would need a judgement gets None, and the
caller sends the body the strict way. ``as_buffer`` flattens any nesting (``[[1, 2], 3]``
included), so a caller proves the nesting rectangular with ``rectangular_shape`` and then
checks that the JSON text holds no ``[`` beyond ``array_count(shape)``. That count is only
sound in a body without escapes (``has_escapes``): ``"\\u005b"`` in a string is a ``[``
that the body's bytes do not show.
"""

from __future__ import annotations

import math

import numpy as np
import simdjson

MAX_INNER_ARRAYS = 4096
"""Nested arrays walked at most to prove a shape rectangular; larger bodies go the strict
way (their numbers dominate anyway)."""


def rectangular_shape(array: simdjson.Array) -> tuple[int, ...] | None:
    """The shape, when every array above the innermost level holds arrays of one length
    (None when not, when empty somewhere, or past ``MAX_INNER_ARRAYS``)."""
    shape = [len(array)]
    first = array
    while True:
        if not len(first):
            return None  # empty somewhere: the strict path says what it means
        first = first[0]
        if not isinstance(first, simdjson.Array):
            break
        shape.append(len(first))
    level = [array]
    walked = 0
    for depth in range(1, len(shape)):
        walked += len(level) * shape[depth - 1]  # the arrays this level holds
        if walked > MAX_INNER_ARRAYS:
            return None
        length = shape[depth]
        below = []
        for parent in level:
            for child in parent:
                if not isinstance(child, simdjson.Array) or len(child) != length:
                    return None
                below.append(child)
        level = below
    return tuple(shape)


def has_escapes(body: bytes) -> bool:
    """Whether the body has a backslash (a string escape): such bodies go the strict way."""
    return b"\\" in body


def parse_object(body: bytes) -> simdjson.Object | None:
    """The body parsed, when it is a JSON object without escapes (``has_escapes``); None
    when it is anything else, invalid JSON included."""
    if has_escapes(body):
        return None
    try:
        document = simdjson.Parser().parse(body)  # a parser per body: none is ever shared
    except (ValueError, RuntimeError):
        return None
    return document if isinstance(document, simdjson.Object) else None


def array_count(shape: tuple[int, ...]) -> int:
    """How many JSON arrays (``[`` bytes) numbers nested to ``shape`` are written with."""
    return sum(math.prod(shape[:depth]) for depth in range(len(shape)))


def numbers(array: simdjson.Array) -> np.ndarray | None:
    """Every number, flat, as int64 when all are integers, else as float64 (as
    ``np.asarray`` types them); None for anything else (booleans, strings, objects,
    integers outside int64)."""
    first = array
    while isinstance(first, simdjson.Array) and len(first):
        first = first[0]
    if type(first) is int:  # else not all integers: no need to try (a failed try scans)
        try:
            return np.frombuffer(array.as_buffer(of_type="i"), dtype=np.int64)
        except TypeError:
            pass  # not all integers
        except ValueError:
            return None  # an integer outside int64: the strict path decides
    try:
        return np.frombuffer(array.as_buffer(of_type="d"), dtype=np.float64)
    except (TypeError, ValueError):
        return None
