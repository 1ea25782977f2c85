"""Bad gRPC tensors: TF Serving ``TensorProto`` and KServe v2 ``InferTensorContents``.

Part of the bad-input suite (``pytest -m bad_input``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from tensorflow.core.framework import types_pb2

from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2 as pb
from tests.suites.reliability.clients import (
    F32,
    _grpc,
    tensor_proto,
    tfs_predict,
    v2_request,
)
from tests.suites.reliability.conftest import MAX_MESSAGE_BYTES, MAX_ROWS

pytestmark = [pytest.mark.bad_input, pytest.mark.usefixtures("still_serving")]


# ----- gRPC tensors -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("proto", "status", "needle"),
    [
        pytest.param(
            tensor_proto(F32, [1, 3], tensor_content=b"\x00" * 8),
            400,
            "8 bytes of tensor_content; shape [1, 3] of DT_FLOAT needs 12",
            id="tensor-content-short",
        ),
        pytest.param(
            tensor_proto(F32, [1, 3], tensor_content=b"\x00" * 13),
            400,
            "needs 12",
            id="tensor-content-long",
        ),
        pytest.param(
            tensor_proto(F32, [2**60, 3], tensor_content=b"\x00" * 12),
            400,
            "needs 13835058055282163712",
            id="dimension-2^60",
        ),
        pytest.param(
            tensor_proto(F32, [-1, 3], tensor_content=b"\x00" * 12),
            400,
            ">= 0",
            id="negative-dimension",
        ),
        pytest.param(tensor_proto(F32, [0, 2**62, 2**62]), 400, "", id="zero-size-huge-dims"),
        pytest.param(
            tensor_proto(F32, [2**30, 3], float_val=[1.0]),
            413,
            "broadcast",
            id="broadcast-one-value-to-3-billion",
        ),
        pytest.param(
            tensor_proto(F32, [1, 2], float_val=[1, 2]), 400, "expects [-1, 3]", id="wrong-shape"
        ),
        pytest.param(
            tensor_proto(F32, [2, 3], float_val=[1, 2, 3, 4]),
            400,
            "4 values in float_val; shape [2, 3] needs 6",
            id="ragged-values",
        ),
        pytest.param(
            tensor_proto(types_pb2.DT_STRING, [1, 3], string_val=[b"a", b"b", b"c"]),
            400,
            "not bytes",
            id="strings-for-floats",
        ),
        pytest.param(tensor_proto(F32, [0, 3]), 400, "no rows", id="empty-batch"),
        pytest.param(
            tensor_proto(F32, [MAX_ROWS + 1, 3], float_val=[1.0]),
            413,
            f"the limit is {MAX_ROWS}",
            id="rows-above-max",
        ),
        pytest.param(
            tensor_proto(types_pb2.DT_INT8, [1, 3], int_val=[1000, 1, 1]),
            400,
            "out of range",
            id="int8-out-of-range",
        ),
        pytest.param(
            tensor_proto(types_pb2.DT_COMPLEX64, [1, 3]), 400, "supported", id="unsupported-dtype"
        ),
        pytest.param(
            tensor_proto(types_pb2.DT_STRING, [1], tensor_content=b"abcd"),
            400,
            "string_val",
            id="string-in-tensor-content",
        ),
    ],
)
def test_bad_tfs_tensor(proto: Any, status: int, needle: str, tfs) -> None:
    tfs_predict(tfs, proto).check(status, needle)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_for_an_image_model(value: float, tfs, v2) -> None:
    proto = tensor_proto(F32, [1, 8, 8, 1], float_val=[value])
    tfs_predict(tfs, proto, model="tiny_image", name="image").check(400, "NaN or infinite")
    request = pb.ModelInferRequest(model_name="tiny_image")
    request.inputs.add(name="image", datatype="FP32", shape=[1, 8, 8, 1])
    request.raw_input_contents.append(np.full(64, value, np.float32).tobytes())
    _grpc(v2.ModelInfer, request, lambda r: []).check(400, "NaN or infinite")


@pytest.mark.parametrize(
    ("request_", "status", "needle"),
    [
        pytest.param(
            v2_request([1, 3], b"\x00" * 8),
            400,
            "8 bytes of data; shape [1, 3]",
            id="raw-length-mismatch",
        ),
        pytest.param(v2_request([2**60, 3], b"\x00" * 12), 400, "needs", id="dimension-2^60"),
        pytest.param(
            v2_request([-1, 3], b"\x00" * 12), 400, "non-negative", id="negative-dimension"
        ),
        pytest.param(
            v2_request([1, 3], fp32_contents=[1, 2]),
            400,
            "2 values in fp32_contents",
            id="contents-count-mismatch",
        ),
        pytest.param(v2_request([1, 2], b"\x00" * 8), 400, "expects [-1, 3]", id="wrong-shape"),
        pytest.param(
            v2_request([1, 3], datatype="BYTES", bytes_contents=[b"a", b"b", b"c"]),
            400,
            "not bytes",
            id="strings-for-floats",
        ),
        pytest.param(
            v2_request([1, 3], datatype="UINT8", uint_contents=[300, 1, 1]),
            400,
            "out of range",
            id="uint8-out-of-range",
        ),
        pytest.param(v2_request([0, 3], b""), 400, "no rows", id="empty-batch"),
        pytest.param(
            v2_request([MAX_ROWS + 1, 3], b"\x00" * 12 * (MAX_ROWS + 1)),
            413,
            f"the limit is {MAX_ROWS}",
            id="rows-above-max",
        ),
    ],
)
def test_bad_v2_grpc_tensor(request_: pb.ModelInferRequest, status: int, needle: str, v2) -> None:
    _grpc(v2.ModelInfer, request_, lambda r: []).check(status, needle)


def test_grpc_message_over_the_receive_limit(tfs, v2) -> None:
    big = np.zeros((1, MAX_MESSAGE_BYTES // 4 + 1024), np.float32)
    proto = tensor_proto(F32, list(big.shape), tensor_content=big.tobytes())
    tfs_predict(tfs, proto).check(413)  # RESOURCE_EXHAUSTED, from gRPC itself
    request = v2_request(list(big.shape), big.tobytes())
    _grpc(v2.ModelInfer, request, lambda r: []).check(413)
