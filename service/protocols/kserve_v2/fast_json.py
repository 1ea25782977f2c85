"""The v2 JSON inference request with its numeric ``data`` read straight into arrays.

A v2 JSON body carries each input's values in ``data``: for one digit, 784 numbers that
the strict path (orjson, then ``np.asarray``) makes into Python floats first, the largest
single cost of a small request (docs/performance.md). ``inference_doc`` parses the body
with simdjson instead and reads every numeric ``data`` array into a buffer
(``protocols.json_numbers``); every other part of the body goes through the strict parser,
from its own minified text. The body's ``[`` bytes must then be exactly the arrays found:
one more would be an array deeper than a ``data``'s first element, which ``as_buffer``
would have flattened.

This path only ever accepts. It gives the document the strict parser would give, except
that a numeric input's ``data`` is a flat int64 or float64 array (what ``np.asarray``
makes of the nested list, flattened: ``decode_rest_inputs`` reshapes it to the input's
``shape`` either way). Anything else gets None and the whole body goes the strict way,
which gives every error exactly as before: invalid JSON, a repeated key anywhere,
``data`` that is ragged, mixed in depth, empty, a scalar, or holds anything but numbers
within int64 and float64.
"""

from __future__ import annotations

from typing import Any

import simdjson

from service.errors import InvalidInputError
from service.protocols.json_numbers import (
    array_count,
    numbers,
    parse_object,
    rectangular_shape,
)
from service.transport.strict_json import loads as strict_loads

NOT_NUMERIC = ("BYTES", "BOOL")
"""Datatypes whose ``data`` the strict path reads (strings, booleans)."""
MAX_INPUTS = 64
"""Inputs read this way at most; more go the strict way."""


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
