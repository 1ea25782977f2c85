"""KServe v2 tensor codecs: every data type through JSON, raw bytes and typed contents."""

from __future__ import annotations

import numpy as np
import pytest

from service.errors import InvalidInputError
from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2 as pb
from service.protocols.kserve_v2.tensors import (
    DATATYPES,
    array_from_json_data,
    array_to_json_data,
    array_to_raw,
    checked_shape,
    contents_to_array,
    datatype_of,
    raw_to_array,
)

NUMERIC = [name for name in DATATYPES if name not in ("BYTES", "BOOL")]


@pytest.mark.parametrize("datatype", NUMERIC)
def test_numeric_json_and_raw_round_trip(datatype: str) -> None:
    dtype = DATATYPES[datatype]
    array = np.arange(6).reshape(2, 3).astype(dtype)
    assert datatype_of(array.dtype) == datatype
    from_json = array_from_json_data(array_to_json_data(array).tolist(), datatype, (2, 3), "t")
    np.testing.assert_array_equal(from_json, array)
    assert from_json.dtype == dtype
    from_raw = raw_to_array(array_to_raw(array), datatype, (2, 3), "t")
    np.testing.assert_array_equal(from_raw, array)


def test_nested_json_is_accepted_and_shape_checked() -> None:
    np.testing.assert_array_equal(
        array_from_json_data([[1, 2], [3, 4]], "INT32", (2, 2), "t"), [[1, 2], [3, 4]]
    )
    with pytest.raises(InvalidInputError, match="needs 6"):
        array_from_json_data([1, 2, 3, 4], "FP32", (2, 3), "t")


def test_bool_and_bytes() -> None:
    flags = array_from_json_data([True, False], "BOOL", (2,), "t")
    assert flags.dtype == np.bool_ and list(flags) == [True, False]
    with pytest.raises(InvalidInputError, match="BOOL"):
        array_from_json_data([1, 0], "BOOL", (2,), "t")
    words = array_from_json_data(["a", "bc"], "BYTES", (2,), "t")
    assert list(words) == [b"a", b"bc"]
    raw = array_to_raw(words)
    assert raw == b"\x01\x00\x00\x00a\x02\x00\x00\x00bc"
    assert list(raw_to_array(raw, "BYTES", (2,), "t")) == [b"a", b"bc"]
    assert array_to_json_data(words) == ["a", "bc"]


def test_typed_contents() -> None:
    contents = pb.InferTensorContents(int_contents=[1, 2, 3, 4])
    array = contents_to_array(contents, "INT16", (2, 2), "t")
    assert array.dtype == np.int16 and array.tolist() == [[1, 2], [3, 4]]
    contents = pb.InferTensorContents(bytes_contents=[b"x"])
    assert contents_to_array(contents, "BYTES", (1,), "t").tolist() == [b"x"]
    with pytest.raises(InvalidInputError, match="raw_input_contents"):
        contents_to_array(pb.InferTensorContents(), "FP16", (1,), "t")


@pytest.mark.parametrize(
    ("shape", "ok"),
    [([1, 2], True), ([], True), ([-1], False), ([1.5], False), ("12", False), ([True], False)],
)
def test_shapes(shape: object, ok: bool) -> None:
    if ok:
        assert checked_shape(shape, "t") == tuple(shape)  # type: ignore[arg-type]
    else:
        with pytest.raises(InvalidInputError, match="non-negative"):
            checked_shape(shape, "t")  # type: ignore[arg-type]


def test_json_type_errors() -> None:
    with pytest.raises(InvalidInputError, match="non-integer"):
        array_from_json_data([1.5], "INT64", (1,), "t")
    with pytest.raises(InvalidInputError, match="non-numeric"):
        array_from_json_data(["a"], "FP32", (1,), "t")
    with pytest.raises(InvalidInputError, match="strings"):
        array_from_json_data([1], "BYTES", (1,), "t")
    with pytest.raises(InvalidInputError, match="datatype"):
        array_from_json_data([1], "COMPLEX", (1,), "t")
