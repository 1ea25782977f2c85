"""``tensorflow_model_server``: TF Serving's command line, served by this server.

The flags (``service.tfserving_cli.flags``) and config files
(``service.tfserving_cli.config_files``) become ``Settings`` overrides; ``PRIMER_*``
environment variables still apply beneath them. The server then runs exactly as
``primer-serve`` runs it (``service.__main__.serve``). ``--model_config_file`` is read
again every ``--model_config_file_poll_wait_seconds`` (and on SIGHUP): models added, removed,
or with a new version policy or labels are applied live; a file that no longer parses
changes nothing and is logged.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from contract.errors import ContractError
from contract.layout import check_model_name
from service.config import BatchingSettings, Settings
from service.protocols.tfserving.model_config import model_folder, reason
from service.tfserving_cli.config_files import (
    ConfigFileError,
    read_batching_parameters,
    read_model_config,
    read_monitoring_path,
)
from service.tfserving_cli.flags import PROG, FlagError, build_parser, check_unsupported


def model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``model_paths`` and ``models`` from ``--model_config_file``, else the one model."""
    if args.model_config_file:  # as in TF Serving, the file wins over --model_name
        paths, models = read_model_config(args.model_config_file)
        return {"model_paths": paths, "models": models}
    if not args.model_base_path:
        raise FlagError("set --model_base_path (with --model_name) or --model_config_file")
    name = args.model_name if args.model_name is not None else "default"
    check_single_model(name, args.model_base_path)
    return {"model_paths": {name: args.model_base_path}, "models": {}}


def check_single_model(name: str, base_path: str) -> None:
    """Check ``--model_name`` and ``--model_base_path`` as a config file's entry would be."""
    try:
        check_model_name(name)
    except ContractError as exc:
        raise FlagError(f"--model_name: {exc}") from exc
    model_folder(base_path, "--model_base_path")


def batching_override(args: argparse.Namespace) -> BatchingSettings:
    """No batching unless ``--enable_batching``, as in TF Serving."""
    if not args.enable_batching:
        if args.batching_parameters_file:
            raise FlagError("--batching_parameters_file is set without --enable_batching=true")
        return BatchingSettings(enabled=False)
    if args.batching_parameters_file:
        return read_batching_parameters(args.batching_parameters_file)
    return BatchingSettings()


def thread_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """TF Serving's three parallelism flags as intra- and inter-op threads."""
    intra, inter, both = (
        args.tensorflow_intra_op_parallelism,
        args.tensorflow_inter_op_parallelism,
        args.tensorflow_session_parallelism,
    )
    if (intra or 0) > 0 and (inter or 0) > 0 and (both or 0) > 0:
        raise FlagError(
            "set --tensorflow_session_parallelism or --tensorflow_intra_op_parallelism and "
            "--tensorflow_inter_op_parallelism, not all three"
        )
    if (intra or 0) > 0 or (inter or 0) > 0:
        return {"intra_op_threads": intra, "inter_op_threads": inter}
    return {"intra_op_threads": both, "inter_op_threads": both}


def rest_overrides(rest_api_port: int | None) -> dict[str, Any]:
    """``--rest_api_port=0`` turns REST off, as in TF Serving; unset leaves the ``rest_port``
    setting (8501) serving REST, health and metrics."""
    if rest_api_port is None:
        return {}
    if rest_api_port == 0:
        return {"rest_enabled": False}
    if rest_api_port < 0:
        raise FlagError(f"--rest_api_port must be 0 (no REST) or a port, got {rest_api_port}")
    return {"rest_port": rest_api_port, "rest_enabled": True}


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Every ``Settings`` field the flags set (None: the environment or default decides)."""
    if args.file_system_poll_wait_seconds is not None and args.file_system_poll_wait_seconds < 0:
        raise FlagError("--file_system_poll_wait_seconds must be 0 (scan once) or more")
    timeout_ms = args.rest_api_timeout_in_ms
    if timeout_ms is not None and timeout_ms <= 0:
        raise FlagError(f"--rest_api_timeout_in_ms must be positive, got {timeout_ms}")
    return {
        **model_overrides(args),
        **thread_overrides(args),
        "batching": batching_override(args),
        "grpc_port": args.port,
        **rest_overrides(args.rest_api_port),
        "poll_interval_s": args.file_system_poll_wait_seconds,
        "request_timeout_s": None if timeout_ms is None else timeout_ms / 1000,
        "enable_serialization_as_tensor_content": args.enable_serialization_as_tensor_content,
    }


def settings_loader(args: argparse.Namespace) -> Callable[[], Settings]:
    """Builds the settings from the flags and files now (and again on each reload)."""

    def load() -> Settings:
        return Settings.load(None, **overrides(args))

    return load


def version_text() -> str:
    try:
        ours = importlib.metadata.version("primer-serving")
    except importlib.metadata.PackageNotFoundError:
        ours = "unknown"
    return f"TensorFlow ModelServer: primer-serving {ours} (tensorflow_model_server flags)"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        print(version_text())
        return 0
    load = settings_loader(args)
    try:
        check_unsupported(args)
        settings = load()
        metrics_path = (
            read_monitoring_path(args.monitoring_config_file)
            if args.monitoring_config_file
            else None
        )
    except (FlagError, ConfigFileError, ValidationError, ValueError) as exc:
        print(f"{PROG}: {reason(exc)}", file=sys.stderr)
        return 2
    from service.__main__ import serve

    poll_s = args.model_config_file_poll_wait_seconds or 0
    return serve(
        settings,
        load if args.model_config_file else None,
        reload_interval_s=max(poll_s, 0),
        metrics_path=metrics_path,
    )


if __name__ == "__main__":
    sys.exit(main())
