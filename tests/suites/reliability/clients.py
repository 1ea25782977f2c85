"""One way to send an image or a tensor over each protocol, and one shape for the answer.

Each bad-input case names the HTTP status it expects; gRPC answers are compared through the
error table (``service.errors``), so a case is written once and checked on every protocol.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2

from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2 as pb

GRPC_CODE = {
    200: grpc.StatusCode.OK,
    400: grpc.StatusCode.INVALID_ARGUMENT,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
IMAGE_TRANSPORTS = ("rest_predict", "rest_classify", "grpc_predict", "grpc_v2")


@dataclass
class Outcome:
    """An answer: the HTTP status or gRPC code, the error message, and the scores."""

    code: int | grpc.StatusCode
    message: str = ""
    scores: list[float] | None = None

    def check(self, status: int, needle: str = "") -> None:
        """Assert the expected status (HTTP, or its gRPC code) and message fragment."""
        expected: int | grpc.StatusCode = status
        if isinstance(self.code, grpc.StatusCode):
            expected = GRPC_CODE[status]
        assert self.code == expected, f"{self.code} != {expected}: {self.message}"
        assert needle.lower() in self.message.lower(), self.message

    @property
    def top(self) -> int:
        assert self.scores is not None, self.message
        return int(np.argmax(self.scores))


def _rest(response: httpx.Response, scores: Any = None) -> Outcome:
    if response.status_code != 200:
        return Outcome(response.status_code, response.json().get("error", ""))
    return Outcome(200, "", scores(response.json()))


def _grpc(call: Any, request: Any, scores: Any) -> Outcome:
    try:
        response = call(request, timeout=30)
    except grpc.RpcError as exc:
        return Outcome(exc.code(), exc.details() or "")
    return Outcome(grpc.StatusCode.OK, "", scores(response))


def tensor_proto(dtype: int, dims: list[int], **fields: Any) -> tensor_pb2.TensorProto:
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]
    )
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, **fields)


def predict_request(
    model: str, inputs: dict[str, tensor_pb2.TensorProto], version: int | None = None
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    for name, proto in inputs.items():
        request.inputs[name].CopyFrom(proto)
    return request


def _probabilities(response: predict_pb2.PredictResponse) -> list[float]:
    proto = response.outputs["probabilities"]
    return list(proto.float_val)


def send_image(transport: str, data: bytes, http: httpx.Client, tfs: Any, v2: Any) -> Outcome:
    """Send one encoded image to ``tiny_image`` over ``transport``."""
    if transport == "rest_predict":
        body = {"instances": [{"b64": base64.b64encode(data).decode()}]}
        return _rest(
            http.post("/v1/models/tiny_image:predict", json=body), lambda doc: doc["predictions"][0]
        )
    if transport == "rest_classify":
        response = http.post(
            "/v1/models/tiny_image:classify?k=4",
            content=data,
            headers={"content-type": "application/octet-stream"},
        )

        def scores(doc: dict[str, Any]) -> list[float]:
            by_index = {entry["index"]: entry["score"] for entry in doc["predictions"]}
            return [by_index[i] for i in range(4)]

        return _rest(response, scores)
    if transport == "grpc_predict":
        proto = tensor_proto(types_pb2.DT_STRING, [1], string_val=[data])
        return _grpc(tfs.Predict, predict_request("tiny_image", {"image": proto}), _probabilities)
    if transport == "grpc_v2":
        request = pb.ModelInferRequest(model_name="tiny_image")
        tensor = request.inputs.add(name="image", datatype="BYTES", shape=[1])
        tensor.contents.bytes_contents.append(data)
        return _grpc(
            v2.ModelInfer,
            request,
            lambda r: np.frombuffer(r.raw_output_contents[0], np.float32).tolist(),
        )
    raise ValueError(transport)


F32 = types_pb2.DT_FLOAT
PREDICT = "/v1/models/half_plus_two:predict"
INFER = "/v2/models/half_plus_two/infer"
IMAGE_PREDICT = "/v1/models/tiny_image:predict"


def tfs_predict(tfs: Any, proto: Any, model: str = "half_plus_two", name: str = "x") -> Outcome:
    """A TF Serving Predict of one tensor, as an ``Outcome``."""
    return _grpc(tfs.Predict, predict_request(model, {name: proto}), lambda r: [])


def v2_request(
    shape: list[int], raw: bytes | None = None, datatype: str = "FP32", **contents: Any
) -> pb.ModelInferRequest:
    """A v2 ModelInfer of half_plus_two's ``x``, raw or typed."""
    request = pb.ModelInferRequest(model_name="half_plus_two")
    tensor = request.inputs.add(name="x", datatype=datatype, shape=shape)
    if raw is not None:
        request.raw_input_contents.append(raw)
    for field, values in contents.items():
        getattr(tensor.contents, field).extend(values)
    return request


def v2_input(shape: Any, data: Any = None, datatype: str = "FP32", **extra: Any) -> dict:
    """A KServe v2 REST body with one input ``x``."""
    entry = {"name": "x", "datatype": datatype, "shape": shape, **extra}
    if data is not None:
        entry["data"] = data
    return {"inputs": [entry]}
