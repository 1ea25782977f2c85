"""KServe v2 / Open Inference Protocol over gRPC: ``inference.GRPCInferenceService``.

A thin adapter: typed ``contents`` or ``raw_input_contents`` become numpy arrays, the core
runs the request, and outputs go back as ``raw_output_contents`` (as Triton answers).
Triton's ``ModelConfig`` RPC is answered for perf_analyzer and tritonclient.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format

from service.config import Settings
from service.errors import InvalidInputError
from service.inference.core import InferenceCore
from service.inference.request import InferenceResult
from service.metrics import Metrics
from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2 as pb
from service.protocols.kserve_v2.generated import grpc_predict_v2_pb2_grpc as pb_grpc
from service.protocols.kserve_v2.metadata import (
    core_request,
    model_config,
    model_metadata,
    model_ready,
    parse_model_version,
    server_metadata,
    timeout_parameter,
)
from service.protocols.kserve_v2.stats import model_statistics
from service.protocols.kserve_v2.tensors import (
    array_to_raw,
    checked_shape,
    contents_to_array,
    datatype_of,
    raw_to_array,
)
from service.transport.grpc_errors import (
    call_metadata,
    deadline_s,
    send_timing,
    serving_errors,
)
from service.transport.grpc_server import GrpcService

PROTOCOL = "grpc_v2"
"""The ``protocol`` label of this adapter's requests."""
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
Context = grpc.aio.ServicerContext


def _parameters(parameters: Any) -> dict[str, Any]:
    """An ``InferParameter`` map → plain values."""
    return {
        key: getattr(value, value.WhichOneof("parameter_choice") or "string_param")
        for key, value in parameters.items()
    }


def decode_grpc_inputs(request: pb.ModelInferRequest) -> dict[str, np.ndarray]:
    """The request's input tensors as named arrays."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInputError(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
            "expected one per input, in order"
        )
    inputs: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(request.inputs):
        name = tensor.name
        if name in inputs:
            raise InvalidInputError(f"input {name!r} is given more than once")
        shape = checked_shape(list(tensor.shape), name)
        if raw:
            if tensor.HasField("contents"):
                raise InvalidInputError(
                    f"input {name!r} sets contents while raw_input_contents is used; "
                    "use one or the other"
                )
            inputs[name] = raw_to_array(raw[index], tensor.datatype, shape, name)
        else:
            inputs[name] = contents_to_array(tensor.contents, tensor.datatype, shape, name)
    return inputs


def encode_response(request_id: str) -> Callable[[InferenceResult], pb.ModelInferResponse]:
    """The core's encoder for one call: every output as raw contents."""

    def encode(result: InferenceResult) -> pb.ModelInferResponse:
        response = pb.ModelInferResponse(
            model_name=result.model, model_version=str(result.version), id=request_id
        )
        for name, array in result.outputs.items():  # filled in place: no message copies
            output = response.outputs.add()
            output.name = name
            output.datatype = datatype_of(array.dtype)
            output.shape.extend(array.shape)
            response.raw_output_contents.append(array_to_raw(array))
        return response

    return encode


class V2InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The v2 gRPC RPCs over the inference core.

    Args:
        core: the inference core.
        settings: server settings (row limit and batching, for the model configuration).
        metrics: the metric catalogue (read by ModelStatistics).
        is_ready: the server's readiness (False while loading or draining).
    """

    def __init__(
        self,
        core: InferenceCore,
        settings: Settings,
        metrics: Metrics,
        is_ready: Callable[[], bool],
    ) -> None:
        self._core = core
        self._settings = settings
        self._metrics = metrics
        self._is_ready = is_ready

    @serving_errors
    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Context
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @serving_errors
    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Context
    ) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._is_ready())

    @serving_errors
    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Context
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(**server_metadata())

    @serving_errors
    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Context
    ) -> pb.ModelReadyResponse:
        version = parse_model_version(request.version)
        return pb.ModelReadyResponse(ready=model_ready(self._core, request.name, version))

    @serving_errors
    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Context
    ) -> pb.ModelMetadataResponse:
        version = parse_model_version(request.version)
        return json_format.ParseDict(
            model_metadata(self._core, request.name, version), pb.ModelMetadataResponse()
        )

    @serving_errors
    async def ModelConfig(
        self, request: pb.ModelConfigRequest, context: Context
    ) -> pb.ModelConfigResponse:
        version = parse_model_version(request.version)
        config = model_config(self._core, self._settings, request.name, version)
        return pb.ModelConfigResponse(config=json_format.ParseDict(config, pb.ModelConfig()))

    @serving_errors
    async def ModelStatistics(
        self, request: pb.ModelStatisticsRequest, context: Context
    ) -> pb.ModelStatisticsResponse:
        version = parse_model_version(request.version)
        stats = model_statistics(self._core, self._metrics, request.name, version)
        return json_format.ParseDict(stats, pb.ModelStatisticsResponse())

    @serving_errors
    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> pb.ModelInferResponse:
        with self._core.scope(PROTOCOL, request.model_name) as scope:
            timeout = deadline_s(context, timeout_parameter(_parameters(request.parameters)))
            core_req = core_request(
                request.model_name,
                parse_model_version(request.model_version),
                decode_grpc_inputs(request),
                [o.name for o in request.outputs],
                timeout,
                PROTOCOL,
            )
            core_req.metadata = call_metadata(context)
            response, timing = await scope.infer(core_req, encode_response(request.id))
        send_timing(context, timing)
        return response


def grpc_services(
    core: InferenceCore, settings: Settings, metrics: Metrics, is_ready: Callable[[], bool]
) -> list[GrpcService]:
    """The v2 gRPC service over the core."""
    return [
        GrpcService(
            pb_grpc.add_GRPCInferenceServiceServicer_to_server,
            V2InferenceServicer(core, settings, metrics, is_ready),
            SERVICE_NAME,
            pb.DESCRIPTOR,
        )
    ]
