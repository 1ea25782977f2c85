"""TF Serving's ``ModelServerConfig`` as this server's model settings.

One reading of the message for both ways TF Serving takes it: the ``--model_config_file``
text proto (``service.tfserving_cli.config_files``) and gRPC
``ModelService/HandleReloadConfigRequest`` (``service.protocols.tfserving.grpc``). Its
``model_config_list`` becomes ``model_paths`` (each model from its own folder) and
``models`` (version policy and labels per model). A field this server has no equivalent for
is an error naming it, never silently dropped.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from tensorflow_serving.config import model_server_config_pb2

from contract.errors import ContractError
from contract.layout import check_model_name
from service.config import ModelSettings, url_problem
from service.errors import InvalidInputError

ModelPaths = dict[str, str]
"""Model name → the folder of its versions."""
ModelPolicies = dict[str, ModelSettings]
"""Model name → its version policy and labels."""


class ModelConfigError(InvalidInputError):
    """A ``ModelServerConfig`` that asks for what this server cannot serve."""


def reason(exc: ValueError) -> str:
    """A validation error in one line: ``field: what was wrong``."""
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(map(str, error['loc'])) or 'value'}: {error['msg']}"
            for error in exc.errors()
        )
    return str(exc)


def served_models(
    config: model_server_config_pb2.ModelServerConfig, where: str
) -> tuple[ModelPaths, ModelPolicies]:
    """The models a ``ModelServerConfig`` lists (``where`` names its source in errors)."""
    if config.HasField("custom_model_config"):
        raise ModelConfigError(
            f"{where}: custom_model_config is not supported; use model_config_list"
        )
    folders: ModelPaths = {}
    models: ModelPolicies = {}
    for model in config.model_config_list.config:
        named = f"{where}: model {model.name!r}"
        try:
            check_model_name(model.name)
        except ContractError as exc:
            raise ModelConfigError(f"{named}: {exc}") from exc
        if model.name in folders:
            raise ModelConfigError(f"{named} is listed twice")
        folders[model.name] = model_folder(model.base_path, named)
        models[model.name] = model_settings(model, named)
    return folders, models


def model_folder(base_path: str, where: str) -> str:
    """A model's ``base_path``: a local folder or a TensorFlow filesystem, never a URL."""
    if not base_path:
        raise ModelConfigError(f"{where} has no base_path")
    if problem := url_problem(base_path):
        raise ModelConfigError(f"{where}: base_path {base_path[:80]!r}: {problem}")
    return base_path


def model_settings(model: model_server_config_pb2.ModelConfig, where: str) -> ModelSettings:
    """One ``ModelConfig``'s version policy and labels as this server's model settings."""
    if model.model_platform not in ("", "tensorflow"):
        raise ModelConfigError(
            f"{where}: model_platform {model.model_platform!r} is not supported; this server "
            "serves 'tensorflow' SavedModels"
        )
    if model.model_type == model_server_config_pb2.OTHER:
        raise ModelConfigError(f"{where}: model_type OTHER is not supported (TENSORFLOW only)")
    if model.HasField("logging_config"):
        raise ModelConfigError(
            f"{where}: logging_config (request logging) is not supported; use the payload "
            "log settings (evaluation.payload_log_dir) instead"
        )
    policy = model.model_version_policy
    chosen = policy.WhichOneof("policy_choice")
    fields: dict[str, Any] = {"version_labels": dict(model.version_labels)}
    if chosen == "all":
        fields["version_policy"] = "all"
    elif chosen == "specific":
        if not policy.specific.versions:
            raise ModelConfigError(f"{where}: model_version_policy specific lists no versions")
        fields.update(version_policy="specific", versions=list(policy.specific.versions))
    else:  # unset or latest: TF Serving's default is the latest one
        latest = policy.latest.num_versions if chosen == "latest" else 0
        fields.update(version_policy="latest", latest=max(latest, 1))
    try:
        return ModelSettings(**fields)
    except ValueError as exc:
        raise ModelConfigError(f"{where}: {reason(exc)}") from exc
