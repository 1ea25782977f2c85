"""The gRPC server's channel arguments: every edge limit is passed, and grpc core enforces
the connection cap and the idle limit on real loopback connections."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from service.config import Settings
from service.transport.connection_cap import derived_connection_cap
from service.transport.grpc_options import server_options

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")


def test_every_edge_setting_becomes_a_channel_argument() -> None:
    settings = Settings(
        grpc_max_concurrent_streams=7,
        grpc_min_ping_interval_s=3.5,
        grpc_max_ping_strikes=1,
        grpc_max_connection_idle_s=60,
        grpc_max_connection_age_s=600,
        grpc_max_connection_age_grace_s=5,
        grpc_max_connections=123,
    )
    options = dict(server_options(settings))
    assert options["grpc.max_concurrent_streams"] == 7
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 3500
    assert options["grpc.http2.max_ping_strikes"] == 1
    assert options["grpc.max_connection_idle_ms"] == 60_000
    assert options["grpc.max_connection_age_ms"] == 600_000
    assert options["grpc.max_connection_age_grace_ms"] == 5_000
    assert options["grpc.max_allowed_incoming_connections"] == 123
    assert options["grpc.enable_channelz"] == 1  # the connection metrics read it
    off = dict(server_options(Settings(grpc_connection_metrics=False)))
    assert off["grpc.enable_channelz"] == 0


def test_the_connection_cap_defaults_to_the_derived_one() -> None:
    options = dict(server_options(Settings()))
    assert options["grpc.max_allowed_incoming_connections"] == derived_connection_cap()


@pytest.fixture
async def capped_port() -> AsyncIterator[int]:
    """A grpc.aio server with the server's options, a cap of 3 connections."""
    settings = Settings(grpc_max_connections=3, grpc_max_connection_idle_s=0.5)
    server = grpc.aio.server(options=server_options(settings))
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield port
    await server.stop(0)


def first_bytes(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


async def test_connections_past_the_cap_are_closed_and_idle_ones_too(capped_port: int) -> None:
    def probe() -> tuple[list[bytes], list[bytes]]:
        socks = [socket.create_connection(("127.0.0.1", capped_port), timeout=10) for _ in range(5)]
        try:
            for sock in socks:
                sock.sendall(HTTP2_PREFACE)
            first = [first_bytes(sock) for sock in socks]
            rest = []
            for sock in socks:  # then everything until the server closes it (idle limit)
                chunks = []
                while chunk := first_bytes(sock):
                    chunks.append(chunk)
                rest.append(b"".join(chunks))
            return first, rest
        finally:
            for sock in socks:
                sock.close()

    first, rest = await asyncio.get_running_loop().run_in_executor(None, probe)
    served = [data for data in first if data]
    assert len(served) == 3, first  # three got the server's SETTINGS, two were closed
    assert all(data[3] == 0x4 for data in served)  # a SETTINGS frame header (type 4)
    # each served one then got GOAWAY (frame type 7) with "connection idle" and was closed
    seen = [opened + later for opened, later in zip(first, rest, strict=True) if opened]
    assert all(b"connection idle" in data for data in seen), seen
