"""TensorFlow's ``TensorProto`` ↔ numpy, as TF Serving's gRPC API carries tensors.

Requests may use ``tensor_content`` (read with ``np.frombuffer``, no copy) or the typed
repeated fields (``float_val``, ``int_val``, ``string_val``...); a typed field with a single
value fills the whole shape, as TensorFlow does. Responses use the typed fields, as TF
Serving does by default, or ``tensor_content`` when asked (its
``--enable_serialization_as_tensor_content``).
Malformed tensors raise ``InvalidInputError`` (or ``PayloadTooLargeError`` past a limit).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2

from service.errors import InvalidInputError, PayloadTooLargeError
from service.protocols.arrays import MAX_RANK, reshape, typed_values

MAX_BROADCAST_ELEMENTS = 1 << 24
"""Most elements one typed value may be broadcast to (a few bytes must not allocate GBs)."""

# TensorFlow dtype → (numpy dtype, the typed repeated field of TensorProto)
_DTYPES: dict[int, tuple[np.dtype, str]] = {
    types_pb2.DT_FLOAT: (np.dtype(np.float32), "float_val"),
    types_pb2.DT_DOUBLE: (np.dtype(np.float64), "double_val"),
    types_pb2.DT_INT32: (np.dtype(np.int32), "int_val"),
    types_pb2.DT_INT16: (np.dtype(np.int16), "int_val"),
    types_pb2.DT_INT8: (np.dtype(np.int8), "int_val"),
    types_pb2.DT_UINT8: (np.dtype(np.uint8), "int_val"),
    types_pb2.DT_UINT16: (np.dtype(np.uint16), "int_val"),
    types_pb2.DT_INT64: (np.dtype(np.int64), "int64_val"),
    types_pb2.DT_UINT32: (np.dtype(np.uint32), "uint32_val"),
    types_pb2.DT_UINT64: (np.dtype(np.uint64), "uint64_val"),
    types_pb2.DT_BOOL: (np.dtype(np.bool_), "bool_val"),
    types_pb2.DT_HALF: (np.dtype(np.float16), "half_val"),
    types_pb2.DT_STRING: (np.dtype(object), "string_val"),
}
_TF_DTYPE = {
    dtype: enum for enum, (dtype, _) in _DTYPES.items() if enum not in (types_pb2.DT_STRING,)
}


def tensor_proto_to_array(proto: tensor_pb2.TensorProto, name: str) -> np.ndarray:
    """A request ``TensorProto`` → ndarray (object array of bytes for DT_STRING).

    A typed field with a single value fills the whole shape, as TensorFlow does.
    """
    entry = _DTYPES.get(proto.dtype)
    if entry is None:
        raise InvalidInputError(
            f"input {name!r} has dtype {types_pb2.DataType.Name(proto.dtype)}; supported: "
            f"{sorted(types_pb2.DataType.Name(d) for d in _DTYPES)}"
        )
    dtype, field = entry
    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims) or len(dims) > MAX_RANK:
        raise InvalidInputError(
            f"input {name!r} has shape {dims[:8]}; expected at most {MAX_RANK} known sizes (>= 0)"
        )
    if proto.tensor_content:
        if dtype.kind == "O":
            raise InvalidInputError(f"input {name!r}: DT_STRING values go in string_val")
        content = proto.tensor_content
        count = math.prod(dims)
        if len(content) != count * dtype.itemsize:
            raise InvalidInputError(
                f"input {name!r} has {len(content)} bytes of tensor_content; shape {dims} of "
                f"{types_pb2.DataType.Name(proto.dtype)} needs {count * dtype.itemsize}"
            )
        return reshape(np.frombuffer(content, dtype=dtype), dims, name)
    values: Any = getattr(proto, field)
    if proto.tensor_shape.unknown_rank:
        dims = [len(values)]
    count = math.prod(dims)
    if dtype.kind == "O":
        array = np.empty(len(values), dtype=object)
        array[:] = list(values)
    elif field == "half_val":
        array = typed_values(values, np.dtype(np.uint16), f"input {name!r}: half_val").view(
            np.float16
        )
    else:
        array = typed_values(values, dtype, f"input {name!r}: {field}")
    if len(array) == 1 and count != 1:
        if count > MAX_BROADCAST_ELEMENTS:
            raise PayloadTooLargeError(
                f"input {name!r}: one value in {field} would be broadcast to shape {dims[:8]} "
                f"({count} elements); the limit is {MAX_BROADCAST_ELEMENTS}"
            )
        return reshape(np.full(count, array[0], dtype=array.dtype), dims, name)
    if len(array) != count:
        raise InvalidInputError(
            f"input {name!r} has {len(array)} values in {field}; shape {dims} needs {count}"
        )
    return reshape(array, dims, name)


def array_to_tensor_proto(
    array: np.ndarray, tensor_content: bool = False
) -> tensor_pb2.TensorProto:
    """An output ndarray → ``TensorProto`` (typed fields, or ``tensor_content`` when asked)."""
    proto = tensor_pb2.TensorProto()
    fill_tensor_proto(proto, array, tensor_content)
    return proto


def fill_tensor_proto(
    proto: tensor_pb2.TensorProto, array: np.ndarray, tensor_content: bool = False
) -> None:
    """Write ``array`` into an empty ``proto`` in place (no sub-message copies).

    Args:
        proto: an empty ``TensorProto``.
        array: the output.
        tensor_content: numbers as raw bytes in ``tensor_content`` rather than in the typed
            repeated field (``float_val``...); strings always go in ``string_val``.
    """
    if array.dtype.kind in "OSU":
        proto.dtype = types_pb2.DT_STRING
        proto.string_val.extend(
            v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in array.reshape(-1)
        )
    else:
        enum = _TF_DTYPE.get(array.dtype)
        if enum is None:
            raise InvalidInputError(f"output dtype {array.dtype} has no TensorFlow equivalent")
        proto.dtype = enum
        if tensor_content:
            proto.tensor_content = np.ascontiguousarray(array).tobytes()
        else:
            _fill_typed(proto, enum, array)
    proto.tensor_shape.SetInParent()  # present even for a scalar, as TensorFlow writes it
    dims = proto.tensor_shape.dim
    for size in array.shape:
        dims.add().size = size


def _fill_typed(proto: tensor_pb2.TensorProto, enum: int, array: np.ndarray) -> None:
    field = _DTYPES[enum][1]
    flat = array.reshape(-1)
    if field == "half_val":
        flat = flat.view(np.uint16)
    elif field == "int_val" and flat.dtype != np.int32:
        flat = flat.astype(np.int32)
    getattr(proto, field).extend(flat.tolist())
