"""``primer-serve``: serve every model under the model base path over REST (and gRPC)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

if TYPE_CHECKING:
    from service.config import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="primer-serve",
        description="Serve TensorFlow SavedModels from a TF Serving-style model repository. "
        "Flags override PRIMER_* environment variables, which override --config.",
    )
    parser.add_argument("--model-base-path", help="folder of <model>/<version>/ (default: models)")
    parser.add_argument("--rest-port", type=int, help="REST port (default: 8501)")
    parser.add_argument("--grpc-port", type=int, help="gRPC port (default: 8500)")
    parser.add_argument(
        "--grpc-max-message-bytes",
        type=int,
        help="largest gRPC message, RESOURCE_EXHAUSTED beyond (default: 64 MiB)",
    )
    parser.add_argument("--host", help="bind address (default: 0.0.0.0)")
    parser.add_argument(
        "--config",
        help="YAML settings file (per-model policies, batching); reloaded live every "
        "--poll-interval-s and on SIGHUP",
    )
    parser.add_argument(
        "--poll-interval-s", type=float, help="rescan interval, 0 = off (default: 2)"
    )
    parser.add_argument("--device", help="auto | cpu | gpu:N (default: auto)")
    parser.add_argument(
        "--runtime",
        help="tensorflow | tflite | tflite-fp16 | tflite-int8 | onnxruntime | auto "
        "(default: tensorflow; docs/variants.md)",
    )
    parser.add_argument(
        "--shutdown-timeout-s",
        type=float,
        help="grace period for admitted requests on SIGTERM (default: 30)",
    )
    parser.add_argument(
        "--tls-cert-file", help="PEM certificate: serve TLS on both ports (default: plaintext)"
    )
    parser.add_argument("--tls-key-file", help="PEM private key of --tls-cert-file")
    # no --auth-token flag on purpose: a command line is visible to every local user (ps);
    # the token comes from PRIMER_AUTH_TOKEN or the YAML file (see SECURITY.md)
    parser.add_argument("--log-level", help="logging level (default: INFO)")
    parser.add_argument(
        "--log-json",
        action="store_true",
        default=None,
        help="write logs as JSON lines (default: text)",
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        default=None,
        help="log one line per request (default: off; costs throughput)",
    )
    parser.add_argument(
        "--memory-mode",
        choices=["throughput", "frugal"],
        help="frugal: oneDNN off, the least memory, slower convolutional models "
        "(default: throughput; both give an unloaded version's memory back; docs/memory.md)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from service.config import Settings

    overrides = dict(
        model_base_path=args.model_base_path,
        rest_port=args.rest_port,
        grpc_port=args.grpc_port,
        grpc_max_message_bytes=args.grpc_max_message_bytes,
        host=args.host,
        poll_interval_s=args.poll_interval_s,
        device=args.device,
        runtime=args.runtime,
        shutdown_timeout_s=args.shutdown_timeout_s,
        tls_cert_file=args.tls_cert_file,
        tls_key_file=args.tls_key_file,
        log_level=args.log_level,
        log_json=args.log_json,
        access_log=args.access_log,
        memory_mode=args.memory_mode,
    )

    def load() -> Settings:
        return Settings.load(args.config, **overrides)

    try:
        settings = load()
    except (ValidationError, ValueError, yaml.YAMLError) as exc:
        print(f"primer-serve: invalid settings: {exc}", file=sys.stderr)
        return 2
    return serve(settings, load if args.config else None)


def serve(
    settings: Settings,
    settings_loader: Callable[[], Settings] | None = None,
    **server_options: Any,
) -> int:
    """Run the server until SIGTERM or SIGINT; SIGHUP reloads the settings (with a loader).

    ``server_options`` go to ``service.app.Server`` (reload interval, metrics path).
    """
    from service import process_defaults

    process_defaults.apply(settings.memory_mode)  # before TensorFlow loads (docs/memory.md)
    import uvloop

    from service.app import Server
    from service.logging_setup import configure_logging

    configure_logging(settings)

    async def run() -> None:
        server = Server(settings, settings_loader, **server_options)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if server.reloader is not None:  # SIGHUP: reload the settings file now
            reloader = server.reloader
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reloader.reload()))
        await server.start()
        await stop.wait()
        logging.getLogger("primer-serve").info("shutting down")
        await server.stop()

    uvloop.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
