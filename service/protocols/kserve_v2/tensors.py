"""KServe v2 tensors ↔ numpy: data types, raw (binary) buffers, JSON data, typed contents.

Raw tensor data is the flattened row-major little-endian elements; a BYTES element is a
4-byte little-endian length followed by its bytes (the binary tensor data extension and
``raw_input_contents`` use the same layout). Malformed data raises ``InvalidInputError``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from service.errors import InvalidInputError
from service.protocols.arrays import MAX_RANK, reshape, typed_values
from service.views import TensorSpec

DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_BY_NUMPY = {dtype: name for name, dtype in DATATYPES.items() if name != "BYTES"}
_LENGTH = struct.Struct("<I")


def datatype_of(dtype: np.dtype) -> str:
    """The v2 data type name of a numpy dtype (object and byte strings are BYTES)."""
    if dtype.kind in "OSU":
        return "BYTES"
    try:
        return _BY_NUMPY[dtype]
    except KeyError:
        raise InvalidInputError(f"data type {dtype} has no KServe v2 equivalent") from None


def spec_datatype(spec: TensorSpec) -> str:
    """The v2 data type of a signature tensor."""
    return "BYTES" if spec.is_string else datatype_of(spec.dtype)


def numpy_dtype(datatype: str, name: str) -> np.dtype:
    """The numpy dtype of a v2 data type name."""
    try:
        return DATATYPES[datatype]
    except KeyError:
        raise InvalidInputError(
            f"input {name!r} has datatype {datatype!r}; expected one of {sorted(DATATYPES)}"
        ) from None


MAX_DIM = 2**63 - 1


def checked_shape(shape: Sequence[Any], name: str) -> tuple[int, ...]:
    """A request's tensor shape: a list of at most 32 non-negative 64-bit integers."""
    if (
        not isinstance(shape, Sequence)
        or isinstance(shape, str | bytes)
        or len(shape) > MAX_RANK
        or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_DIM for d in shape
        )
    ):
        raise InvalidInputError(
            f"input {name!r} has shape {str(shape)[:80]}; expected a list of at most "
            f"{MAX_RANK} non-negative 64-bit integers"
        )
    return tuple(shape)


def _size(shape: tuple[int, ...]) -> int:
    """The element count of ``shape``, exact (a Python int never wraps around)."""
    return math.prod(shape)


def raw_to_array(raw: bytes, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    """Raw tensor bytes → ndarray of ``shape`` (object array of bytes for BYTES)."""
    dtype = numpy_dtype(datatype, name)
    count = _size(shape)
    if datatype == "BYTES":
        items = _split_bytes(raw, name)
        if len(items) != count:
            raise InvalidInputError(
                f"input {name!r} holds {len(items)} BYTES elements; shape {list(shape)} "
                f"needs {count}"
            )
        array = np.empty(count, dtype=object)
        array[:] = items
        return reshape(array, shape, name)
    if len(raw) != count * dtype.itemsize:
        raise InvalidInputError(
            f"input {name!r} has {len(raw)} bytes of data; shape {list(shape)} of {datatype} "
            f"needs {count * dtype.itemsize}"
        )
    return reshape(np.frombuffer(raw, dtype=dtype), shape, name)


def _split_bytes(raw: bytes, name: str) -> list[bytes]:
    items: list[bytes] = []
    offset, end = 0, len(raw)
    view = memoryview(raw)
    while offset < end:
        if offset + 4 > end:
            raise InvalidInputError(
                f"input {name!r}: BYTES data ends inside a 4-byte length prefix"
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > end:
            raise InvalidInputError(
                f"input {name!r}: a BYTES element of {length} bytes runs past the data end"
            )
        items.append(bytes(view[offset : offset + length]))
        offset += length
    return items


def array_to_raw(array: np.ndarray) -> bytes:
    """ndarray → raw tensor bytes (length-prefixed elements for BYTES)."""
    if array.dtype.kind in "OSU":
        parts = []
        for item in array.reshape(-1):
            data = item.encode("utf-8") if isinstance(item, str) else bytes(item)
            parts.append(_LENGTH.pack(len(data)))
            parts.append(data)
        return b"".join(parts)
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def array_from_json_data(data: Any, datatype: str, shape: tuple[int, ...], name: str) -> np.ndarray:
    """JSON tensor data (flat or nested lists, or a scalar) → ndarray of ``shape``."""
    dtype = numpy_dtype(datatype, name)
    try:
        values = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInputError(
            f"input {name!r}: data is not a rectangular list of values"
        ) from None
    kind = values.dtype.kind
    if datatype == "BYTES":
        if kind not in "USO" or (
            kind == "O" and not all(isinstance(v, str | bytes) for v in values.reshape(-1))
        ):
            raise InvalidInputError(f"input {name!r} is BYTES; expected strings in 'data'")
        flat = np.empty(values.size, dtype=object)
        flat[:] = [v.encode("utf-8") if isinstance(v, str) else v for v in values.reshape(-1)]
        values = flat
    elif datatype == "BOOL":
        if kind != "b":
            raise InvalidInputError(f"input {name!r} is BOOL; expected true/false in 'data'")
    elif kind not in "biuf" or (kind == "f" and dtype.kind in "iu"):
        raise InvalidInputError(
            f"input {name!r} is {datatype}; 'data' holds "
            f"{'non-integer' if kind == 'f' else 'non-numeric'} values"
        )
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            values = values.astype(dtype)
    if values.size != _size(shape):
        raise InvalidInputError(
            f"input {name!r} has {values.size} values; shape {list(shape)} needs {_size(shape)}"
        )
    return reshape(values, shape, name)


def array_to_json_data(array: np.ndarray) -> Any:
    """ndarray → flat JSON data (numpy passes through orjson; BYTES become strings)."""
    if array.dtype.kind in "OSU":
        return [
            item.decode("utf-8", "replace") if isinstance(item, bytes | bytearray) else str(item)
            for item in array.reshape(-1)
        ]
    if array.dtype == np.float16:
        return array.astype(np.float32).reshape(-1)
    return np.ascontiguousarray(array).reshape(-1)


_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def contents_to_array(
    contents: Any, datatype: str, shape: tuple[int, ...], name: str
) -> np.ndarray:
    """gRPC ``InferTensorContents`` (the typed repeated field) → ndarray of ``shape``."""
    dtype = numpy_dtype(datatype, name)
    field = _CONTENTS_FIELD.get(datatype)
    if field is None:
        raise InvalidInputError(
            f"input {name!r} is {datatype}, which has no typed contents field; send it in "
            "raw_input_contents"
        )
    values = getattr(contents, field)
    count = _size(shape)
    if len(values) != count:
        raise InvalidInputError(
            f"input {name!r} has {len(values)} values in {field}; shape {list(shape)} needs {count}"
        )
    if datatype == "BYTES":
        array = np.empty(count, dtype=object)
        array[:] = list(values)
        return reshape(array, shape, name)
    return reshape(typed_values(values, dtype, f"input {name!r}: {field}"), shape, name)
