"""TF Serving's status and metadata messages, shared by its REST and gRPC adapters."""

from __future__ import annotations

from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    status_pb2,
)

from service.errors import ModelNotFoundError
from service.repository import ModelRepository, VersionState

_TFS_STATE = {
    VersionState.START: get_model_status_pb2.ModelVersionStatus.START,
    VersionState.LOADING: get_model_status_pb2.ModelVersionStatus.LOADING,
    VersionState.AVAILABLE: get_model_status_pb2.ModelVersionStatus.AVAILABLE,
    VersionState.UNLOADING: get_model_status_pb2.ModelVersionStatus.UNLOADING,
    VersionState.END: get_model_status_pb2.ModelVersionStatus.END,
    VersionState.FAILED: get_model_status_pb2.ModelVersionStatus.END,  # as TF Serving does
}


def model_status_proto(
    repository: ModelRepository, name: str, version: int | None
) -> get_model_status_pb2.GetModelStatusResponse:
    """Every version of a model (or the one asked for) with its state and error."""
    versions = repository.versions(name)
    if version is not None:
        versions = [mv for mv in versions if mv.version == version]
        if not versions:
            raise ModelNotFoundError(f"model {name!r} has no version {version}")
    response = get_model_status_pb2.GetModelStatusResponse()
    for mv in versions:
        status = response.model_version_status.add()
        status.version = mv.version
        status.state = _TFS_STATE[mv.state]
        if mv.state is VersionState.FAILED:
            status.status.error_code = 2  # UNKNOWN: TF Serving's code for a failed load
            status.status.error_message = f"FAILED to load: {mv.error}"
        else:
            status.status.CopyFrom(status_pb2.StatusProto())
    return response


def model_metadata_proto(
    repository: ModelRepository,
    name: str,
    version: int | None,
) -> tuple[get_model_metadata_pb2.GetModelMetadataResponse, get_model_metadata_pb2.SignatureDefMap]:
    """TF Serving's metadata response (``signature_def``) of the version that would serve."""
    mv = repository.resolve(name, version)
    assert mv.runtime is not None
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    for key, signature_def in mv.runtime.signature_defs.items():
        signature_map.signature_def[key].CopyFrom(signature_def)
    response = get_model_metadata_pb2.GetModelMetadataResponse(
        model_spec=model_pb2.ModelSpec(name=mv.model)
    )
    response.model_spec.version.value = mv.version
    response.metadata["signature_def"].Pack(signature_map)
    return response, signature_map
