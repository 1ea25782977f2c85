"""The v2 JSON inference request with its numeric ``data`` read straight into arrays.

A v2 JSON body carries each input's values in ``data``: for one digit, 784 numbers that
the strict path (orjson, then ``np.asarray``) makes into Python floats first, the largest
single cost of a small request (docs/performance.md). Two readers parse the body with
simdjson instead and read every numeric ``data`` array into a buffer
(``protocols.json_numbers``):

- ``numeric_inputs`` reads the common body, one whose inputs have exactly ``name``,
  ``shape``, ``datatype`` and numeric ``data`` (tritonclient's JSON, curl's), straight into
  the inputs ``decode_rest_inputs`` would give: the data type's dtype, the input's shape.
  The other members (``id``, ``outputs``, ``parameters``) it reads as ``inference_doc``
  does.
- ``inference_doc`` reads any other body into the document the strict parser would give,
  except that a numeric input's ``data`` is a flat int64 or float64 array (what
  ``np.asarray`` makes of the nested list, flattened: ``decode_rest_inputs`` reshapes it
  to the input's ``shape`` either way). Every other part of the body goes through the
  strict parser, from its own minified text.

Both only ever accept, and both count the body's ``[`` bytes: they must be exactly the
arrays read, since one more would be an array deeper than a ``data``'s first element,
which ``as_buffer`` would have flattened. Anything else gets None and the body goes the
next way, which gives every error exactly as before: invalid JSON, a repeated key
anywhere, ``data`` that is ragged, mixed in depth, empty, a scalar, or holds anything but
numbers within int64 and float64, values the data type does not take, a shape the values
do not fill.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import simdjson

from service.errors import InvalidInputError
from service.protocols.arrays import MAX_RANK
from service.protocols.json_numbers import (
    array_count,
    numbers,
    parse_object,
    rectangular_shape,
)
from service.protocols.kserve_v2.tensors import DATATYPES, MAX_DIM
from service.transport.strict_json import loads as strict_loads

NOT_NUMERIC = ("BYTES", "BOOL")
"""Datatypes whose ``data`` the strict path reads (strings, booleans)."""
MAX_INPUTS = 64
"""Inputs read this way at most; more go the strict way."""
INPUT_KEYS = frozenset({"name", "shape", "datatype", "data"})
"""The members of an input that ``numeric_inputs`` reads (no ``parameters``)."""


def numeric_inputs(body: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """``(the request without its inputs, the inputs decoded as decode_rest_inputs decodes
    them)`` when every input is numeric and has nothing but ``name``, ``shape``,
    ``datatype`` and ``data``; None for the other readers."""
    document = parse_object(body)  # no escapes: the bracket count below needs them raw
    if document is None:
        return None
    items = document.get("inputs")
    if not isinstance(items, simdjson.Array) or not 0 < len(items) <= MAX_INPUTS:
        return None
    reader = _Reader()
    try:
        doc = reader.members(document, skip="inputs")  # id, outputs, parameters
    except (_Refused, InvalidInputError):
        return None
    inputs: dict[str, np.ndarray] = {}
    brackets = reader.brackets + 1  # + 1: the inputs list
    for item in items:
        read = _numeric_input(item, inputs)
        if read is None:
            return None
        brackets += read
    return (doc, inputs) if body.count(b"[") == brackets else None


def _numeric_input(item: Any, inputs: dict[str, np.ndarray]) -> int | None:
    """Add one input to ``inputs``; the count of ``[`` it was written with (None: not this
    reader's to read)."""
    if not isinstance(item, simdjson.Object):
        return None
    keys = list(item.keys())
    if len(keys) != len(INPUT_KEYS) or set(keys) != INPUT_KEYS:
        return None  # another member, or a repeated key
    name, datatype, shape, data = item["name"], item["datatype"], item["shape"], item["data"]
    if type(name) is not str or name in inputs or "[" in name:
        return None
    dtype = DATATYPES.get(datatype) if type(datatype) is str else None
    if dtype is None or dtype.kind not in "iuf":  # BOOL and BYTES: the strict path
        return None
    if not isinstance(shape, simdjson.Array) or not isinstance(data, simdjson.Array):
        return None
    dims = shape.as_list()
    if len(dims) > MAX_RANK or not all(type(d) is int and 0 <= d <= MAX_DIM for d in dims):
        return None
    nesting = rectangular_shape(data)
    values = None if nesting is None else numbers(data)
    if values is None or values.size != math.prod(dims):
        return None
    if values.dtype.kind == "f" and dtype.kind != "f":
        return None  # the decoder refuses it with its own message
    with np.errstate(over="ignore", invalid="ignore"):  # as the decoder casts
        inputs[name] = values.astype(dtype).reshape(dims)
    return 1 + array_count(nesting)  # the shape's list, then the data's


def inference_doc(body: bytes) -> dict[str, Any] | None:
    """The inference request with numeric ``data`` as arrays, or None for the strict path."""
    document = parse_object(body)  # no escapes: the bracket count below needs them raw
    if document is None:
        return None
    inputs = document.get("inputs")
    if not isinstance(inputs, simdjson.Array) or not 0 < len(inputs) <= MAX_INPUTS:
        return None
    reader = _Reader()
    try:
        doc = reader.members(document, skip="inputs")
        items = [reader.input(item) for item in inputs]
    except (_Refused, InvalidInputError):
        return None  # the strict path reads it, or refuses it with its own message
    if body.count(b"[") != reader.brackets + 1:  # + 1: the inputs list
        return None  # an array deeper than some data's first element (as_buffer flattens it)
    doc["inputs"] = items
    return doc


class _Refused(Exception):
    """Not this path's to read."""


class _Reader:
    """Reads members strictly and numeric ``data`` into arrays, counting the ``[`` that
    what it read was written with (``brackets``: arrays, and ``[`` in keys and strings)."""

    def __init__(self) -> None:
        self.brackets = 0

    def input(self, item: Any) -> dict[str, Any]:
        """One input, its ``data`` an array when the datatype is numeric."""
        if not isinstance(item, simdjson.Object):
            raise _Refused
        decoded = self.members(item, skip="data")
        if "data" not in item:
            return decoded  # the decoder says what is missing
        datatype, data = decoded.get("datatype"), item["data"]
        if not isinstance(datatype, str) or datatype in NOT_NUMERIC:
            raise _Refused
        if not isinstance(data, simdjson.Array):
            raise _Refused  # a scalar
        shape = rectangular_shape(data)
        values = None if shape is None else numbers(data)
        if shape is None or values is None:
            raise _Refused
        self.brackets += array_count(shape)
        decoded["data"] = values
        return decoded

    def members(self, value: simdjson.Object, skip: str) -> dict[str, Any]:
        """Every member of ``value`` but ``skip``, containers read by the strict parser."""
        keys = list(value.keys())
        if len(keys) != len(set(keys)):
            raise _Refused  # a repeated key: the strict path refuses the body
        members = {}
        for key in keys:
            self.brackets += key.count("[")
            if key == skip:
                continue
            member = value[key]
            if isinstance(member, simdjson.Object | simdjson.Array):
                text = member.mini
                self.brackets += text.count(b"[")
                member = strict_loads(text)
            elif isinstance(member, str):
                self.brackets += member.count("[")
            members[key] = member
        return members
