"""KServe v2 server/model metadata and Triton's model configuration, shared by REST and gRPC.

Both adapters render these plain dictionaries: REST as JSON, gRPC by filling the generated
messages. Shapes come from the serving signature; ``-1`` marks a variable dimension.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from contract.layout import parse_version
from service.config import Settings
from service.errors import InvalidInputError
from service.inference.core import InferenceCore
from service.inference.request import InferenceRequest
from service.protocols.kserve_v2.tensors import spec_datatype
from service.views import TensorSpec, VersionState

SERVER_NAME = "primer-serving"
PLATFORM = "tensorflow_savedmodel"
PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "tensorflow": PLATFORM}
"""Triton's platform name per runtime; the TFLite variants report ``tensorflow_lite``."""


def _platform(runtime: str) -> str:
    return PLATFORMS.get(runtime, "tensorflow_lite")


EXTENSIONS = ("binary_tensor_data", "model_configuration", "parameters", "statistics")
TIMEOUT_PARAMETER = "timeout"
"""Request parameter (as in Triton): the request's timeout in microseconds."""


def server_version() -> str:
    """The installed package version of the server."""
    try:
        return metadata.version(SERVER_NAME)
    except metadata.PackageNotFoundError:
        return "0.0.0"


def server_metadata() -> dict[str, Any]:
    """``GET /v2`` / ``ServerMetadata``: name, version and supported extensions."""
    return {"name": SERVER_NAME, "version": server_version(), "extensions": list(EXTENSIONS)}


def parse_model_version(text: str) -> int | None:
    """A v2 ``version`` string: empty means the server's choice, else a positive integer."""
    return None if text == "" else parse_version(text)


def timeout_parameter(parameters: dict[str, Any]) -> float | None:
    """The ``timeout`` request parameter (microseconds) in seconds, if given."""
    value = parameters.get(TIMEOUT_PARAMETER)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInputError(
            f"parameter 'timeout' must be a positive integer (microseconds), got {value!r}"
        )
    return value / 1e6


def _tensor(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec_datatype(spec), "shape": spec.shape_for_display()}


def model_metadata(core: InferenceCore, name: str, version: int | None) -> dict[str, Any]:
    """``GET /v2/models/{m}`` / ``ModelMetadata`` of the version that would serve."""
    view = core.model_view(name, version)
    signature = view.signature(None)
    versions = [
        str(status.version)
        for status in core.statuses(name)
        if status.state is VersionState.AVAILABLE
    ]
    return {
        "name": name,
        "versions": versions,
        "platform": _platform(view.runtime),
        "inputs": [_tensor(s) for s in signature.inputs.values()],
        "outputs": [_tensor(s) for s in signature.outputs.values()],
    }


def model_ready(core: InferenceCore, name: str, version: int | None) -> bool:
    """Whether the model (or the given version) is AVAILABLE; unknown names raise 404."""
    return any(
        status.state is VersionState.AVAILABLE and version in (None, status.version)
        for status in core.statuses(name)
    )


def model_config(
    core: InferenceCore, settings: Settings, name: str, version: int | None
) -> dict[str, Any]:
    """Triton's model configuration: the fields Triton clients and perf_analyzer read.

    When every signature tensor has a variable first dimension the model batches:
    ``max_batch_size`` is the request row limit and ``dims`` leave the batch dimension out.
    """
    view = core.model_view(name, version)
    signature = view.signature(None)
    specs = [*signature.inputs.values(), *signature.outputs.values()]
    batches = all(s.shape and s.shape[0] is None for s in specs)
    skip = 1 if batches else 0

    def tensor(spec: TensorSpec) -> dict[str, Any]:
        return {
            "name": spec.name,
            "data_type": f"TYPE_{_config_type(spec)}",
            "dims": spec.shape_for_display()[skip:],
        }

    config: dict[str, Any] = {
        "name": name,
        "platform": _platform(view.runtime),
        "backend": view.runtime,
        "max_batch_size": settings.max_rows_per_request if batches else 0,
        "input": [tensor(s) for s in signature.inputs.values()],
        "output": [tensor(s) for s in signature.outputs.values()],
    }
    batching = settings.batching_for(name)
    if batching.enabled and batches:
        config["dynamic_batching"] = {
            "preferred_batch_size": batching.allowed_batch_sizes or [batching.max_batch_size],
            "max_queue_delay_microseconds": int(batching.batch_timeout_ms * 1000),
        }
    return config


def _config_type(spec: TensorSpec) -> str:
    datatype = spec_datatype(spec)
    return "STRING" if datatype == "BYTES" else datatype


def output_names(requested: list[str]) -> list[str] | None:
    """The requested output names (None: every output), refusing duplicates."""
    if len(set(requested)) != len(requested):
        raise InvalidInputError(f"outputs {requested} are requested more than once")
    return requested or None


def core_request(
    name: str,
    version: int | None,
    inputs: dict[str, Any],
    outputs: list[str],
    timeout_s: float | None,
    protocol: str,
) -> InferenceRequest:
    """The core's request for a v2 inference call."""
    return InferenceRequest(
        name,
        inputs,
        version=version,
        output_filter=output_names(outputs),
        timeout_s=timeout_s,
        protocol=protocol,
    )
