"""JSON values ↔ numpy arrays, as TF Serving's REST API writes tensors.

Numbers, booleans and strings nest as lists; a ``{"b64": "..."}`` leaf carries bytes.
Ragged lists, numbers outside int64/float range and bad base64 raise ``InvalidInputError``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np

from service.errors import InvalidInputError


def _decode_b64(item: Any, where: str) -> bytes:
    if not isinstance(item, dict) or set(item) != {"b64"} or not isinstance(item["b64"], str):
        raise InvalidInputError(
            f'{where}: expected numbers, strings or {{"b64": "..."}} objects, '
            f"got {type(item).__name__} {str(item)[:60]}"
        )
    try:
        return base64.b64decode(item["b64"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(
            f"{where}: invalid base64 ({exc}); expected standard base64 with padding"
        ) from None


def tensor_from_json(value: Any, where: str = "input") -> np.ndarray:
    """A JSON tensor value → ndarray (object array of ``bytes`` for b64 leaves).

    Args:
        value: a scalar, or lists nested to a rectangular shape.
        where: names the tensor in error messages.

    Raises:
        InvalidInputError: ragged lists, mixed types, out-of-range numbers, bad base64.
    """
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise InvalidInputError(
            f"{where} is not a rectangular tensor ({str(exc).splitlines()[0][:160]}); "
            "expected lists nested to the same length at each level"
        ) from None
    if array.dtype == object:
        flat = array.reshape(-1)
        if flat.size and isinstance(flat[0], int):
            raise InvalidInputError(f"{where} holds an integer outside the 64-bit range")
        decoded = np.empty(flat.shape, dtype=object)
        for i, item in enumerate(flat):
            decoded[i] = _decode_b64(item, where)
        return decoded.reshape(array.shape)
    if array.dtype.kind == "U":
        return array
    if array.dtype.kind not in "biuf":
        raise InvalidInputError(f"{where} has unsupported values of type {array.dtype}")
    return array


def tensor_to_json(array: np.ndarray) -> Any:
    """An output ndarray → a value orjson can write (numpy arrays pass through)."""
    if array.dtype == object or array.dtype.kind == "S":
        return _bytes_to_json(array.tolist())
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    return array


def _bytes_to_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_bytes_to_json(v) for v in value]
    if isinstance(value, bytes | bytearray):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(value).decode("ascii")}
    return value
