"""``tensorflow_model_server``'s command line: its flags, their syntax, and which are served.

TF Serving's syntax: ``--flag=value`` (``--flag value`` works too), booleans as ``--flag``,
``--flag=true`` or ``--flag=false`` (also ``1``/``0``); a later flag overrides an earlier
one, so arguments appended to the Docker image's command win. No abbreviations.

Every flag of TF Serving's ``main.cc`` is in one of three tables:

* ``SUPPORTED``: mapped onto this server's settings (``service.tfserving_cli.main``);
* ``IGNORED``: accepted and logged as ignored, because here it changes nothing a client
  sees (warm-up always runs, gRPC health checking is always served, ...);
* ``REFUSED``: accepted only at TF Serving's default; any other value is an error naming
  the flag, because this server has no equivalent and serving without it would differ.

Anything else is an unknown flag (exit 2, named by argparse).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

logger = logging.getLogger(__name__)
PROG = "tensorflow_model_server"


def parse_bool(text: str) -> bool:
    """TF Serving's boolean flag values."""
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class Flag:
    """One TF Serving flag: its value type, TF Serving's default and what it does here."""

    type: Callable[[str], Any]
    default: Any
    help: str


SUPPORTED: dict[str, Flag] = {
    "port": Flag(int, 8500, "gRPC port (setting grpc_port)"),
    "rest_api_port": Flag(
        int, 0, "REST port (setting rest_port); 0: no REST; unset: the rest_port setting (8501)"
    ),
    "model_name": Flag(str, "default", "name of the one model of --model_base_path"),
    "model_base_path": Flag(str, "", "folder of the one model's version folders"),
    "model_config_file": Flag(str, "", "ModelServerConfig text proto (overrides --model_name)"),
    "model_config_file_poll_wait_seconds": Flag(
        int, 0, "reload --model_config_file this often (0: read once)"
    ),
    "enable_batching": Flag(parse_bool, False, "batch concurrent requests"),
    "batching_parameters_file": Flag(str, "", "BatchingParameters text proto"),
    "monitoring_config_file": Flag(str, "", "MonitoringConfig text proto (Prometheus path)"),
    "file_system_poll_wait_seconds": Flag(
        int, 1, "rescan the model folders this often (setting poll_interval_s; 0: once)"
    ),
    "rest_api_timeout_in_ms": Flag(int, 30000, "request deadline (setting request_timeout_s)"),
    "enable_serialization_as_tensor_content": Flag(
        parse_bool, False, "gRPC Predict answers in tensor_content"
    ),
    "tensorflow_session_parallelism": Flag(int, 0, "intra- and inter-op threads"),
    "tensorflow_intra_op_parallelism": Flag(int, 0, "setting intra_op_threads"),
    "tensorflow_inter_op_parallelism": Flag(int, 0, "setting inter_op_threads"),
    "version": Flag(parse_bool, False, "print the version and exit"),
}
IGNORED: dict[str, Flag] = {
    "rest_api_num_threads": Flag(int, 0, "REST runs on one event loop"),
    "grpc_max_threads": Flag(int, 0, "gRPC runs on one event loop"),
    "max_num_load_retries": Flag(int, 5, "a failed version is retried when its files change"),
    "load_retry_interval_micros": Flag(int, 60_000_000, "see max_num_load_retries"),
    "flush_filesystem_caches": Flag(parse_bool, True, "nothing to flush"),
    "enable_model_warmup": Flag(parse_bool, True, "versions are always warmed before serving"),
    "num_request_iterations_for_warmup": Flag(int, 1, "warm-up records run once"),
    "enable_grpc_healthcheck_service": Flag(parse_bool, False, "grpc.health.v1 is always on"),
    "allow_version_labels_for_unavailable_models": Flag(
        parse_bool, False, "labels are checked when a request uses them"
    ),
    "enable_profiler": Flag(parse_bool, True, "no profiler service"),
    "remove_unused_fields_from_bundle_metagraph": Flag(parse_bool, True, "no effect here"),
    "xla_cpu_compilation_enabled": Flag(parse_bool, False, "no XLA compilation"),
    "enable_signature_method_name_check": Flag(parse_bool, False, "no method-name check"),
}
REFUSED: dict[str, Flag] = {
    "grpc_socket_path": Flag(str, "", "gRPC is served on TCP only"),
    "ssl_config_file": Flag(
        str, "", "serve TLS with PRIMER_TLS_CERT_FILE and PRIMER_TLS_KEY_FILE instead"
    ),
    "use_alts_credentials": Flag(parse_bool, False, "no ALTS"),
    "platform_config_file": Flag(str, "", "one TensorFlow platform, set by flags"),
    "per_process_gpu_memory_fraction": Flag(
        float, 0.0, "GPU memory grows on demand (setting gpu_memory_growth)"
    ),
    "saved_model_tags": Flag(str, "serve", "SavedModels are loaded with the 'serve' tag"),
    "grpc_channel_arguments": Flag(str, "", "set the PRIMER_GRPC_* settings instead"),
    "enable_per_model_batching_parameters": Flag(
        parse_bool, False, "per-model batching is set in the YAML settings (models.<name>)"
    ),
    "rest_api_enable_cors_support": Flag(parse_bool, False, "no CORS headers"),
    "prefer_tflite_model": Flag(parse_bool, False, "SavedModels only"),
    "mixed_precision": Flag(str, "", "models run at their exported precision"),
    "thread_pool_factory_config_file": Flag(str, "", "no custom thread pools"),
    "tensorflow_session_config_file": Flag(str, "", "no session config"),
}


class FlagError(ValueError):
    """A flag this server cannot honour, or a bad combination (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse without the 50-line usage dump before a one-line error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: {message} (--help lists the flags)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        usage=f"{PROG} [--flag=value ...]",
        description="TF Serving's command line over primer-serving: the flags of "
        "tensorflow_model_server, mapped onto this server's settings (PRIMER_* environment "
        "variables still apply beneath them). docs/tfserving-compat.md lists every flag.",
        allow_abbrev=False,
    )
    for table, note in ((SUPPORTED, ""), (IGNORED, "ignored: "), (REFUSED, "not supported: ")):
        for name, flag in table.items():
            extra: dict[str, Any] = {}
            if flag.type is parse_bool:
                extra = {"nargs": "?", "const": True, "metavar": "true|false"}
            parser.add_argument(
                f"--{name}",
                type=flag.type,
                default=None,
                help=f"{note}{flag.help} (TF Serving's default: {flag.default!r})",
                **extra,
            )
    return parser


def check_unsupported(args: argparse.Namespace) -> None:
    """Log ignored flags; raise ``FlagError`` for a refused flag off TF Serving's default."""
    for name, flag in IGNORED.items():
        value = getattr(args, name)
        if value is not None:
            logger.warning("--%s=%s is accepted and ignored: %s", name, value, flag.help)
    for name, flag in REFUSED.items():
        value = getattr(args, name)
        if value is not None and value != flag.default:
            raise FlagError(f"--{name}={value} is not supported by this server: {flag.help}")
