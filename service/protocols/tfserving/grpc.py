"""TensorFlow Serving's gRPC API: ``PredictionService`` and ``ModelService``.

Uses the stubs of the ``tensorflow-serving-api`` package, so existing TF Serving clients
work unchanged. Tensors travel as ``TensorProto`` (``tensor_proto``). ``DT_STRING`` values
given for a numeric image input are encoded images, decoded by the core through the
model's image contract.

``Classify``, ``Regress`` and ``MultiInference`` run ``tf.Example`` inputs (``example_list``
or ``example_list_with_context``) through classification and regression signatures as TF
Serving does (``classify_regress``). ``Classify`` also fits models with an image contract
and labels whose ``serving_default`` is not a classification signature: each
``tf.Example`` then carries one encoded image in its only ``bytes_list`` feature, and the
answer lists every class, best first.

``ModelService/HandleReloadConfigRequest`` reads its ``ModelServerConfig`` as
``--model_config_file`` is read (``model_config``) and hands it to the wiring's
``serve_models``, the path the config-file poller takes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
    status_pb2,
)

from contract.layout import SIGNATURE
from service.config import ModelSettings
from service.errors import InvalidInputError, ModelUnavailableError, UnimplementedError
from service.inference.core import InferenceCore
from service.inference.request import InferenceRequest, InferenceResult
from service.inference.validate import UNNAMED_INPUT, bytes_array
from service.protocols.tfserving.classify_regress import (
    ExampleCall,
    is_classification,
    model_spec,
    multi_inference,
)
from service.protocols.tfserving.classify_regress import classify as classify_examples
from service.protocols.tfserving.classify_regress import regress as regress_examples
from service.protocols.tfserving.model_config import ModelConfigError, served_models
from service.protocols.tfserving.status import model_metadata_proto, model_status_proto
from service.protocols.tfserving.tensor_proto import fill_tensor_proto, tensor_proto_to_array
from service.transport.grpc_errors import (
    call_metadata,
    deadline_s,
    send_timing,
    serving_errors,
)
from service.transport.grpc_server import GrpcService
from service.views import VersionState

logger = logging.getLogger(__name__)
ServeModels = Callable[[dict[str, str], dict[str, ModelSettings]], Awaitable[None]]
"""Serves exactly these models (name → folder, name → policy and labels), once settled."""
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
            call = self._example_call(spec, context)
            if not self._classifies_images(call):
                result, served, timing = await classify_examples(
                    self._core, scope, call, request.input
                )
                send_timing(context, timing)
                return classification_pb2.ClassificationResponse(
                    model_spec=model_spec(served), result=result
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

    @serving_errors
    async def Regress(
        self, request: regression_pb2.RegressionRequest, context: Context
    ) -> regression_pb2.RegressionResponse:
        with self._core.scope(PROTOCOL, request.model_spec.name) as scope:
            call = self._example_call(request.model_spec, context)
            result, served, timing = await regress_examples(self._core, scope, call, request.input)
        send_timing(context, timing)
        return regression_pb2.RegressionResponse(model_spec=model_spec(served), result=result)

    @serving_errors
    async def MultiInference(
        self, request: inference_pb2.MultiInferenceRequest, context: Context
    ) -> inference_pb2.MultiInferenceResponse:
        first = request.tasks[0].model_spec if request.tasks else model_pb2.ModelSpec()
        with self._core.scope(PROTOCOL, first.name) as scope:
            call = self._example_call(first, context)
            response, timing = await multi_inference(self._core, scope, call, request)
        send_timing(context, timing)
        return response

    def _example_call(self, spec: model_pb2.ModelSpec, context: Context) -> ExampleCall:
        return ExampleCall(
            spec.name,
            *_version_choice(spec),
            spec.signature_name or SIGNATURE,
            deadline_s(context),
            PROTOCOL,
            call_metadata(context),
        )

    def _classifies_images(self, call: ExampleCall) -> bool:
        """Whether Classify reads images: the model has an image contract and the default
        signature it names is not a classification signature over tf.Example."""
        view = self._core.model_view(call.model, call.version, call.label)
        if view.card is None or view.card.image is None or call.signature != SIGNATURE:
            return False
        default = view.signature_defs.get(SIGNATURE)
        return default is None or not is_classification(default)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService``: version status and model config reload.

    Args:
        core: the inference core.
        serve_models: serves exactly the given models (``model_paths``, ``models``) and
            returns once their loads have settled; None: reload is UNIMPLEMENTED.
    """

    def __init__(self, core: InferenceCore, serve_models: ServeModels | None = None) -> None:
        self._core = core
        self._serve_models = serve_models

    @serving_errors
    async def GetModelStatus(
        self, request: get_model_status_pb2.GetModelStatusRequest, context: Context
    ) -> get_model_status_pb2.GetModelStatusResponse:
        spec = request.model_spec
        return model_status_proto(self._core, spec.name, *_version_choice(spec))

    @serving_errors
    async def HandleReloadConfigRequest(
        self, request: model_management_pb2.ReloadConfigRequest, context: Context
    ) -> model_management_pb2.ReloadConfigResponse:
        """Serve the request's ``model_config_list`` as a ``--model_config_file`` reload
        would; OK once the listed models are loaded, as TF Serving answers."""
        if self._serve_models is None:
            raise UnimplementedError("HandleReloadConfigRequest is not served here")
        if request.config.WhichOneof("config") != "model_config_list":
            raise ModelConfigError(  # TF Serving's wording
                "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                "ModelConfigList is currently supported"
            )
        if request.metric_names:
            logger.warning("ReloadConfigRequest metric_names ignored: %s", request.metric_names)
        paths, models = served_models(request.config, "ReloadConfigRequest")
        logger.info("ReloadConfigRequest: serving %s", sorted(paths))
        await self._serve_models(paths, models)
        for name in paths:
            self._check_loaded(name)
        return model_management_pb2.ReloadConfigResponse(status=status_pb2.StatusProto())

    def _check_loaded(self, model: str) -> None:
        """A listed model whose versions all failed to load fails the reload, as in TF
        Serving (the new config stays applied; a fixed version folder is retried)."""
        statuses = self._core.statuses(model)
        if any(s.state is VersionState.AVAILABLE for s in statuses):
            return
        failed = [s for s in statuses if s.state is VersionState.FAILED]
        if failed:
            raise ModelUnavailableError(
                f"model config applied, but model {model!r} has no AVAILABLE version: "
                + "; ".join(f"version {s.version} failed to load: {s.error}" for s in failed)
            )


def grpc_services(
    core: InferenceCore, tensor_content: bool = False, serve_models: ServeModels | None = None
) -> list[GrpcService]:
    """TF Serving's two gRPC services over the core.

    Args:
        core: the inference core.
        tensor_content: Predict outputs in ``tensor_content`` rather than typed fields.
        serve_models: applies a pushed model config (``HandleReloadConfigRequest``).
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
            ModelServicer(core, serve_models),
            MODEL_SERVICE,
            model_service_pb2.DESCRIPTOR,
        ),
    ]
