"""TensorFlow Serving's gRPC API: ``PredictionService`` and ``ModelService``.

Uses the stubs of the ``tensorflow-serving-api`` package, so existing TF Serving clients
work unchanged. Tensors travel as ``TensorProto`` (``tensor_proto``). ``DT_STRING`` values
given for a numeric image input are encoded images, decoded by the core through the
model's image contract.

``Classify`` fits models with an image contract and labels: each ``tf.Example`` carries one
encoded image in its only ``bytes_list`` feature, and the answer lists every class, best
first. ``Regress`` and ``MultiInference`` are UNIMPLEMENTED (no model here regresses).
"""

from __future__ import annotations

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2,
    prediction_service_pb2_grpc,
)

from contract.layout import SIGNATURE
from service.errors import InvalidInputError
from service.inference.core import InferenceCore
from service.inference.request import InferenceRequest, InferenceResult
from service.inference.validate import UNNAMED_INPUT, bytes_array
from service.protocols.tfserving.status import model_metadata_proto, model_status_proto
from service.protocols.tfserving.tensor_proto import fill_tensor_proto, tensor_proto_to_array
from service.transport.grpc_errors import (
    call_metadata,
    deadline_s,
    send_timing,
    serving_errors,
)
from service.transport.grpc_server import GrpcService

PROTOCOL = "grpc_tfserving"
"""The ``protocol`` label of this adapter's requests."""
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
Context = grpc.aio.ServicerContext
_ALL_CLASSES = 1 << 20


def _version_choice(spec: model_pb2.ModelSpec) -> tuple[int | None, str | None]:
    """(version, label) a ``ModelSpec`` names; (None, None) for the latest."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


def _encode_predict(result: InferenceResult) -> predict_pb2.PredictResponse:
    return _predict_response(result, tensor_content=False)


def _encode_predict_as_content(result: InferenceResult) -> predict_pb2.PredictResponse:
    return _predict_response(result, tensor_content=True)


def _predict_response(result: InferenceResult, tensor_content: bool) -> predict_pb2.PredictResponse:
    response = predict_pb2.PredictResponse()
    spec = response.model_spec
    spec.name = result.model
    spec.signature_name = result.signature
    spec.version.value = result.version
    for name, array in result.outputs.items():
        fill_tensor_proto(response.outputs[name], array, tensor_content)
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

    def __init__(self, core: InferenceCore, tensor_content: bool = False) -> None:
        self._core = core
        self._encode = _encode_predict_as_content if tensor_content else _encode_predict

    @serving_errors
    async def Predict(
        self, request: predict_pb2.PredictRequest, context: Context
    ) -> predict_pb2.PredictResponse:
        spec = request.model_spec
        with self._core.scope(PROTOCOL, spec.name) as scope:
            inputs = {
                name: tensor_proto_to_array(proto, name) for name, proto in request.inputs.items()
            }
            version, label = _version_choice(spec)
            core_request = InferenceRequest(
                spec.name,
                inputs,
                version=version,
                label=label,
                signature=spec.signature_name or None,
                output_filter=list(request.output_filter) or None,
                timeout_s=deadline_s(context),
                protocol=PROTOCOL,
                metadata=call_metadata(context),
            )
            response, timing = await scope.infer(core_request, self._encode)
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
        response, _ = model_metadata_proto(self._core, spec.name, *_version_choice(spec))
        return response

    @serving_errors
    async def Classify(
        self, request: classification_pb2.ClassificationRequest, context: Context
    ) -> classification_pb2.ClassificationResponse:
        spec = request.model_spec
        with self._core.scope(PROTOCOL, spec.name) as scope:
            if spec.signature_name not in ("", SIGNATURE):
                raise InvalidInputError(
                    "Classify uses the model's serving_default signature; "
                    f"got signature_name {spec.signature_name!r}"
                )
            version, label = _version_choice(spec)
            core_request = InferenceRequest(
                spec.name,
                {UNNAMED_INPUT: bytes_array(_example_images(request))},
                version=version,
                label=label,
                timeout_s=deadline_s(context),
                protocol=PROTOCOL,
                metadata=call_metadata(context),
            )
            classes, result, timing = await scope.classify(core_request, _ALL_CLASSES)
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

    def __init__(self, core: InferenceCore) -> None:
        self._core = core

    @serving_errors
    async def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: Context
    ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        return model_status_proto(self._core, spec.name, *_version_choice(spec))


def grpc_services(core: InferenceCore, tensor_content: bool = False) -> list[GrpcService]:
    """TF Serving's two gRPC services over the core.

    Args:
        core: the inference core.
        tensor_content: Predict outputs in ``tensor_content`` rather than typed fields.
    """
    return [
        GrpcService(
            prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server,
            PredictionServicer(core, tensor_content),
            PREDICTION_SERVICE,
            prediction_service_pb2.DESCRIPTOR,
        ),
        GrpcService(
            model_service_pb2_grpc.add_ModelServiceServicer_to_server,
            ModelServicer(core),
            MODEL_SERVICE,
            model_service_pb2.DESCRIPTOR,
        ),
    ]
