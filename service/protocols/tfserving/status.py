"""TF Serving's status and metadata messages, shared by its REST and gRPC adapters.

The REST forms are printed as TF Serving's ``http_rest_api_handler`` prints them: proto3
JSON with the proto's field names and every field that has no presence (``unknown_rank:
false``, a dimension's ``name: ""``, ``defaults: {}``, an empty ``dim: []``), which
``json_format``'s ``always_print_fields_with_no_presence`` gives.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    status_pb2,
)

from service.inference.core import InferenceCore
from service.views import VersionState

_TFS_STATE = {
    VersionState.START: get_model_status_pb2.ModelVersionStatus.START,
    VersionState.LOADING: get_model_status_pb2.ModelVersionStatus.LOADING,
    VersionState.AVAILABLE: get_model_status_pb2.ModelVersionStatus.AVAILABLE,
    VersionState.UNLOADING: get_model_status_pb2.ModelVersionStatus.UNLOADING,
    VersionState.END: get_model_status_pb2.ModelVersionStatus.END,
    VersionState.FAILED: get_model_status_pb2.ModelVersionStatus.END,  # as TF Serving does
}


def model_status_proto(
    core: InferenceCore, name: str, version: int | None, label: str | None = None
) -> get_model_status_pb2.GetModelStatusResponse:
    """Every version of a model (or the one asked for) with its state and error."""
    response = get_model_status_pb2.GetModelStatusResponse()
    for version_status in core.statuses(name, version, label):
        status = response.model_version_status.add()
        status.version = version_status.version
        status.state = _TFS_STATE[version_status.state]
        if version_status.state is VersionState.FAILED:
            status.status.error_code = version_status.error_code
            status.status.error_message = f"FAILED to load: {version_status.error}"
        else:
            status.status.CopyFrom(status_pb2.StatusProto())
    return response


def model_metadata_proto(
    core: InferenceCore, name: str, version: int | None, label: str | None = None
) -> tuple[get_model_metadata_pb2.GetModelMetadataResponse, get_model_metadata_pb2.SignatureDefMap]:
    """TF Serving's metadata response (``signature_def``) of the version that would serve."""
    view = core.model_view(name, version, label)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in view.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature_def)
    response = get_model_metadata_pb2.GetModelMetadataResponse(
        model_spec=model_pb2.ModelSpec(name=view.model)
    )
    response.model_spec.version.value = view.version
    response.metadata["signature_def"].Pack(signature_map)
    return response, signature_map


def _tfserving_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def model_status_json(
    core: InferenceCore, name: str, version: int | None, label: str | None = None
) -> dict[str, Any]:
    """``GET /v1/models/{name}``: ``{"model_version_status": [...]}`` as TF Serving prints it."""
    return _tfserving_json(model_status_proto(core, name, version, label))


def model_metadata_json(
    core: InferenceCore, name: str, version: int | None, label: str | None = None
) -> dict[str, Any]:
    """``GET /v1/models/{name}/metadata``: ``{"model_spec", "metadata": {"signature_def"}}``
    as TF Serving prints it (the ``SignatureDefMap`` unpacked, not an ``Any``)."""
    response, signature_map = model_metadata_proto(core, name, version, label)
    return {
        "model_spec": _tfserving_json(response.model_spec),
        "metadata": {"signature_def": _tfserving_json(signature_map)},
    }
