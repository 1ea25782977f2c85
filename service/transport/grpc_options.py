"""The channel arguments of the gRPC server (kept free of TensorFlow imports for tools)."""

from __future__ import annotations

from typing import Any

from service.config import Settings
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
