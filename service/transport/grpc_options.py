"""The channel arguments of the gRPC server (kept free of TensorFlow imports for tools)."""

from __future__ import annotations

from typing import Any

from service.config import Settings


def server_options(settings: Settings) -> list[tuple[str, Any]]:
    """Channel arguments of the gRPC server: message size limits and keepalive policy."""
    limit = settings.grpc_max_message_bytes
    return [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.so_reuseport", 0),  # a second server on a busy port must fail, not share
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]
