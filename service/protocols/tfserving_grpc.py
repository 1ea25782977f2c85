"""TensorFlow Serving's gRPC API: ``PredictionService`` and ``ModelService``.

Uses the stubs of the ``tensorflow-serving-api`` package, so existing TF Serving clients
work unchanged. Inputs may use ``tensor_content`` (read with ``np.frombuffer``, no copy) or
the typed repeated fields (``float_val``, ``int_val``, ``string_val``...); responses always
use ``tensor_content``. ``DT_STRING`` values given for a numeric image input are encoded
images, decoded by the core through the model's image contract.

``Classify`` fits models with an image contract and labels: each ``tf.Example`` carries one
encoded image in its only ``bytes_list`` feature, and the answer lists every class, best
first. ``Regress`` and ``MultiInference`` are UNIMPLEMENTED (no model here regresses).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from service.errors import InvalidInputError, PayloadTooLargeError
from service.inference import InferenceCore, InferenceRequest, InferenceResult
from service.protocols.grpc_errors import deadline_s, send_timing, serving_errors
from service.protocols.status import model_metadata_proto, model_status_proto
from service.protocols.v2_tensors import MAX_RANK, reshape, typed_values
from service.repository import ModelRepository

PROTOCOL = "grpc_tfserving"
"""The ``protocol`` label of this adapter's requests."""
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
Context = grpc.aio.ServicerContext
_ALL_CLASSES = 1 << 20
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


def array_to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """An output ndarray → ``TensorProto`` with ``tensor_content`` (``string_val`` for bytes)."""
    proto = tensor_pb2.TensorProto()
    fill_tensor_proto(proto, array)
    return proto


def fill_tensor_proto(proto: tensor_pb2.TensorProto, array: np.ndarray) -> None:
    """Write ``array`` into an empty ``proto`` in place (no sub-message copies)."""
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
        proto.tensor_content = np.ascontiguousarray(array).tobytes()
    proto.tensor_shape.SetInParent()  # present even for a scalar, as TensorFlow writes it
    dims = proto.tensor_shape.dim
    for size in array.shape:
        dims.add().size = size


def _model_version(repository: ModelRepository, spec: model_pb2.ModelSpec) -> int | None:
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value
    if choice == "version_label":
        return repository.resolve_label(spec.name, spec.version_label)
    return None


def _encode_predict(result: InferenceResult) -> predict_pb2.PredictResponse:
    response = predict_pb2.PredictResponse()
    spec = response.model_spec
    spec.name = result.model
    spec.signature_name = result.signature
    spec.version.value = result.version
    for name, array in result.outputs.items():
        fill_tensor_proto(response.outputs[name], array)
    return response


def _example_images(request: classification_pb2.ClassificationRequest) -> list[bytes]:
    kind = request.input.WhichOneof("kind")
    if kind is None:
        raise InvalidInputError("Classify needs input.example_list with one image per example")
    examples = getattr(request.input, kind).examples
    if not examples:
        raise InvalidInputError("Classify got no examples")
    images = []
    for index, example in enumerate(examples):
        found = [
            f.bytes_list.value
            for f in example.features.feature.values()
            if f.WhichOneof("kind") == "bytes_list"
        ]
        if len(found) != 1 or len(found[0]) != 1:
            raise InvalidInputError(
                f"example {index} must hold exactly one bytes_list feature with one encoded image"
            )
        images.append(found[0][0])
    return images


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService`` over the inference core."""

    def __init__(self, core: InferenceCore) -> None:
        self._core = core
        self._repository = core.repository

    @serving_errors
    async def Predict(
        self, request: predict_pb2.PredictRequest, context: Context
    ) -> predict_pb2.PredictResponse:
        spec = request.model_spec
        with self._core.refusals(spec.name, PROTOCOL):
            inputs = {
                name: tensor_proto_to_array(proto, name) for name, proto in request.inputs.items()
            }
            core_request = InferenceRequest(
                spec.name,
                inputs,
                version=_model_version(self._repository, spec),
                signature=spec.signature_name or None,
                output_filter=list(request.output_filter) or None,
                timeout_s=deadline_s(context),
                protocol=PROTOCOL,
            )
        response, timing = await self._core.infer(core_request, _encode_predict)
        send_timing(context, timing)
        return response

    @serving_errors
    async def GetModelMetadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest, context: Context
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        fields = set(request.metadata_field)
        if fields != {"signature_def"}:
            raise InvalidInputError(
                f"metadata_field {sorted(fields)} is not supported; ask for ['signature_def']"
            )
        spec = request.model_spec
        response, _ = model_metadata_proto(
            self._repository, spec.name, _model_version(self._repository, spec)
        )
        return response

    @serving_errors
    async def Classify(
        self, request: classification_pb2.ClassificationRequest, context: Context
    ) -> classification_pb2.ClassificationResponse:
        spec = request.model_spec
        with self._core.refusals(spec.name, PROTOCOL):
            if spec.signature_name not in ("", "serving_default"):
                raise InvalidInputError(
                    "Classify uses the model's serving_default signature; "
                    f"got signature_name {spec.signature_name!r}"
                )
            version = _model_version(self._repository, spec)
            images = _example_images(request)
        classes, result, timing = await self._core.classify(
            spec.name,
            version,
            images,
            _ALL_CLASSES,
            protocol=PROTOCOL,
            timeout_s=deadline_s(context),
        )
        send_timing(context, timing)
        response = classification_pb2.ClassificationResponse(
            model_spec=model_pb2.ModelSpec(name=result.model, signature_name=result.signature)
        )
        response.model_spec.version.value = result.version
        for scores in classes:
            response.result.classifications.add().classes.extend(
                classification_pb2.Class(label=s.label, score=s.score) for s in scores
            )
        return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService``: version status (config reload is UNIMPLEMENTED)."""

    def __init__(self, repository: ModelRepository) -> None:
        self._repository = repository

    @serving_errors
    async def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: Context
    ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        return model_status_proto(
            self._repository, spec.name, _model_version(self._repository, spec)
        )


def servicers(core: InferenceCore) -> list[tuple[Callable[[Any, Any], None], Any, str]]:
    """(add-to-server function, servicer, service name) of TF Serving's two services."""
    return [
        (
            prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server,
            PredictionServicer(core),
            PREDICTION_SERVICE,
        ),
        (
            model_service_pb2_grpc.add_ModelServiceServicer_to_server,
            ModelServicer(core.repository),
            MODEL_SERVICE,
        ),
    ]
