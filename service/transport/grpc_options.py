"""How a grpc.aio server is set up from the settings, inline or in the front process: its
channel arguments, its listening port, its token check and its reflection descriptors (kept
free of TensorFlow imports, for tools and for the front)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor
from grpc_reflection.v1alpha import reflection

from service.config import Settings
from service.transport.auth import BearerAuthInterceptor
from service.transport.connection_cap import connection_cap


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    """Channel arguments of the gRPC server: message sizes, keepalive enforcement, stream and
    connection limits, idle and age limits (every one a setting; SECURITY.md lists them)."""
    limit = settings.grpc_max_message_bytes
    return [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.so_reuseport", 0),  # a second server on a busy port must fail, not share
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(settings.grpc_min_ping_interval_s)),
        ("grpc.http2.max_ping_strikes", settings.grpc_max_ping_strikes),
        ("grpc.max_concurrent_streams", settings.grpc_max_concurrent_streams),
        ("grpc.max_connection_idle_ms", _ms(settings.grpc_max_connection_idle_s)),
        ("grpc.max_connection_age_ms", _ms(settings.grpc_max_connection_age_s)),
        ("grpc.max_connection_age_grace_ms", _ms(settings.grpc_max_connection_age_grace_s)),
        ("grpc.max_allowed_incoming_connections", connection_cap(settings.grpc_max_connections)),
        ("grpc.enable_channelz", int(settings.grpc_connection_metrics)),
    ]


def tls_files(settings: Settings) -> tuple[str, str] | None:
    """(certificate, key) paths when TLS is configured, else None."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    return str(settings.tls_cert_file), str(settings.tls_key_file)


def auth_interceptors(token: str | None) -> list[grpc.aio.ServerInterceptor]:
    """The bearer-token check of every method but health checks, when a token is set."""
    return [] if token is None else [BearerAuthInterceptor(token)]


def listen(server: grpc.aio.Server, address: str, tls: tuple[str, str] | None) -> int:
    """Listen on ``address`` (TLS only, with ``tls``); the bound port.

    Raises:
        OSError: the address cannot be bound.
    """
    try:
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            cert, key = (Path(path).read_bytes() for path in tls)
            port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
    except RuntimeError as exc:
        raise OSError(f"cannot listen for gRPC on {address}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen for gRPC on {address}")
    return port


def descriptor_files(files: Iterable[FileDescriptor]) -> list[bytes]:
    """``files`` and their imports, serialized, each import before its importers."""
    ordered: dict[str, bytes] = {}

    def add(file: FileDescriptor) -> None:
        if file.name in ordered:
            return
        for dependency in file.dependencies:
            add(dependency)
        ordered[file.name] = file.serialized_pb

    for file in files:
        add(file)
    return list(ordered.values())


def enable_reflection(
    server: grpc.aio.Server, names: list[str], serialized_files: Iterable[bytes]
) -> None:
    """Server reflection of ``names``, described by ``serialized_files`` (``descriptor_files``).

    The KServe v2 messages live in a private pool (see ``tools/generate_protos.sh``), so the
    default pool alone cannot describe every service.
    """
    pool = descriptor_pool.DescriptorPool()
    for serialized in serialized_files:
        pool.AddSerializedFile(serialized)
    reflection.enable_server_reflection(names, server, pool=pool)
