"""TF Serving's config files, parsed with its own protos and ``text_format``, as settings.

* ``--model_config_file``: ``ModelServerConfig`` (from the ``tensorflow-serving-api`` wheel)
  → ``model_paths`` and ``models``, read as gRPC's config reload reads it
  (``service.protocols.tfserving.model_config``).
* ``--batching_parameters_file``: ``BatchingParameters`` → ``BatchingSettings``.
* ``--monitoring_config_file``: ``MonitoringConfig`` → the Prometheus path (or None).

The last two messages are not in the wheel; ``protos/tfserving_config.proto`` declares them
with TF Serving's field names and numbers. A field this server has no equivalent for is an
error naming it, never silently dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import text_format
from google.protobuf.message import Message
from tensorflow_serving.config import model_server_config_pb2

from service.config import BatchingSettings
from service.protocols.tfserving.model_config import (
    ModelPaths,
    ModelPolicies,
    reason,
    served_models,
)
from service.tfserving_cli.generated import tfserving_config_pb2

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
"""TF Serving's ``PrometheusExporter::kPrometheusPath``."""
M = TypeVar("M", bound=Message)


class ConfigFileError(ValueError):
    """A config file that cannot be read, does not parse, or asks for the unsupported."""


def parse_text_proto(path: str, message: M, what: str) -> M:
    """``message`` filled from the text proto at ``path``."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigFileError(f"{what} {path} cannot be read: {exc.strerror}") from exc
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise ConfigFileError(  # TF Serving's wording first, which its tests match on
            f"{what}: Invalid protobuf file: '{path}': not a valid {message.DESCRIPTOR.name} "
            f"text proto: {exc}"
        ) from exc


def read_model_config(path: str) -> tuple[ModelPaths, ModelPolicies]:
    """``--model_config_file`` as (model name → folder, model name → policy and labels)."""
    config = parse_text_proto(
        path, model_server_config_pb2.ModelServerConfig(), "--model_config_file"
    )
    return served_models(config, f"--model_config_file {path}")


def read_batching_parameters(path: str) -> BatchingSettings:
    """``--batching_parameters_file`` as batching settings (unset fields: this server's)."""
    params = parse_text_proto(
        path, tfserving_config_pb2.BatchingParameters(), "--batching_parameters_file"
    )
    if params.pad_variable_length_inputs:
        raise ConfigFileError(
            f"--batching_parameters_file {path}: pad_variable_length_inputs is not supported "
            "(inputs of one batch must have the same shape)"
        )
    # BatchingParameters fields TF Serving has and this server does not (large batch
    # splitting, priorities...) are not in protos/tfserving_config.proto: text_format
    # refuses them by name.
    fields: dict[str, Any] = {}
    if params.HasField("max_batch_size"):
        fields["max_batch_size"] = params.max_batch_size.value
    if params.HasField("batch_timeout_micros"):
        fields["batch_timeout_ms"] = params.batch_timeout_micros.value / 1000
    if params.HasField("max_enqueued_batches"):
        fields["max_enqueued_batches"] = params.max_enqueued_batches.value
    if params.HasField("num_batch_threads"):
        fields["max_concurrent_batches"] = params.num_batch_threads.value
    if params.allowed_batch_sizes:
        fields["allowed_batch_sizes"] = list(params.allowed_batch_sizes)
    try:
        settings = BatchingSettings(enabled=True, **fields)
    except ValueError as exc:
        raise ConfigFileError(f"--batching_parameters_file {path}: {reason(exc)}") from exc
    sizes = settings.allowed_batch_sizes
    if sizes and sizes[-1] != settings.max_batch_size:
        raise ConfigFileError(
            f"--batching_parameters_file {path}: the last allowed_batch_sizes entry ({sizes[-1]}) "
            f"must equal max_batch_size ({settings.max_batch_size})"
        )
    return settings


def read_monitoring_path(path: str) -> str | None:
    """``--monitoring_config_file``: the Prometheus path, or None when it is not enabled."""
    config = parse_text_proto(
        path, tfserving_config_pb2.MonitoringConfig(), "--monitoring_config_file"
    )
    prometheus = config.prometheus_config
    if not prometheus.enable:
        return None
    metrics_path = prometheus.path or DEFAULT_PROMETHEUS_PATH
    if not metrics_path.startswith("/") or metrics_path.startswith("/v1/"):
        raise ConfigFileError(
            f"--monitoring_config_file {path}: prometheus_config path {metrics_path!r} must "
            "start with '/' and stay outside /v1/"
        )
    return metrics_path
