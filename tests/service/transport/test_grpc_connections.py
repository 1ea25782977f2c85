"""gRPC connection metrics from channelz: real loopback connections to a grpc.aio server with
the server's options, closed by grpc core's idle and age limits or by the client, counted
under the right label; the open-connections gauge and this process's descriptors return to
their baseline."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from loadtest.edge_clients import EMPTY_SETTINGS_FRAME, HTTP2_PREFACE
from service.config import Settings
from service.metrics import Metrics
from service.transport.grpc_connections import (
    GrpcConnectionSampler,
    TrackedSocket,
    attribute,
    channelz_server_ids,
)
from service.transport.grpc_options import server_options

INTERVAL_S = 0.2
session_loop = pytest.mark.asyncio(loop_scope="session")  # the loop of the fixtures' servers


def closed(metrics: Metrics, limit: str) -> float:
    labels = {"protocol": "grpc", "limit": limit}
    return metrics.registry.get_sample_value("primer_connections_closed_total", labels) or 0.0


def open_gauge(metrics: Metrics) -> float:
    labels = {"protocol": "grpc"}
    return metrics.registry.get_sample_value("primer_open_connections", labels) or 0.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Served:
    port: int
    metrics: Metrics
    sampler: GrpcConnectionSampler


async def serve(settings: Settings) -> tuple[grpc.aio.Server, Served]:
    """A grpc.aio server with ``settings``' options and a sampler on it."""
    before = channelz_server_ids()
    server = grpc.aio.server(options=server_options(settings))
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    (server_id,) = channelz_server_ids() - before
    metrics = Metrics()
    sampler = GrpcConnectionSampler(
        server_id,
        settings.grpc_max_connection_idle_s,
        settings.grpc_max_connection_age_s,
        metrics,
        interval_s=INTERVAL_S,
    )
    sampler.start()
    return server, Served(port, metrics, sampler)


@pytest.fixture
async def idle_limited() -> AsyncIterator[Served]:
    """Connections idle for 1 s are closed; none lives long enough to age."""
    server, served = await serve(
        Settings(grpc_max_connection_idle_s=1.0, grpc_max_connection_age_s=3600)
    )
    yield served
    served.sampler.stop()
    await server.stop(0)


@pytest.fixture
async def age_limited() -> AsyncIterator[Served]:
    """Connections are closed after 1 s (± grpc core's 10 % jitter) however busy."""
    server, served = await serve(
        Settings(
            grpc_max_connection_idle_s=3600,
            grpc_max_connection_age_s=1.0,
            grpc_max_connection_age_grace_s=0.5,
        )
    )
    yield served
    served.sampler.stop()
    await server.stop(0)


async def wait_for(condition, timeout: float = 15) -> None:
    """Poll ``condition`` (the sampler runs in its own thread) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(INTERVAL_S / 2)
    assert condition()


def idle_http2_connections(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(HTTP2_PREFACE + EMPTY_SETTINGS_FRAME)
        sockets.append(sock)
    return sockets


def closed_by_server(sock: socket.socket) -> bool:
    """Read until the server's close (GOAWAY and other frames come first)."""
    sock.settimeout(10)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    return True


@session_loop
async def test_idle_connections_are_counted_as_max_idle(idle_limited: Served) -> None:
    served = idle_limited
    baseline_fds = open_fds()
    await wait_for(lambda: open_gauge(served.metrics) == 0)
    sockets = idle_http2_connections(served.port, 20)
    await wait_for(lambda: open_gauge(served.metrics) == 20)
    await asyncio.gather(*(asyncio.to_thread(closed_by_server, sock) for sock in sockets))
    await wait_for(lambda: closed(served.metrics, "max_idle") == 20)
    await wait_for(lambda: open_gauge(served.metrics) == 0)
    assert closed(served.metrics, "client_or_other") == 0
    assert closed(served.metrics, "max_age") == 0
    assert open_fds() <= baseline_fds


@session_loop
async def test_a_channel_idle_after_its_calls_is_counted_as_max_idle(idle_limited: Served) -> None:
    served = idle_limited
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for _ in range(3):
            reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        await wait_for(lambda: closed(served.metrics, "max_idle") == 1)
        assert closed(served.metrics, "client_or_other") == 0
        await wait_for(lambda: open_gauge(served.metrics) == 0)


@session_loop
async def test_a_client_closing_before_any_limit_is_counted_as_client_or_other(
    idle_limited: Served,
) -> None:
    served = idle_limited
    baseline_fds = open_fds()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
        await wait_for(lambda: open_gauge(served.metrics) == 1)
    await wait_for(lambda: closed(served.metrics, "client_or_other") == 1)
    await wait_for(lambda: open_gauge(served.metrics) == 0)
    assert closed(served.metrics, "max_idle") == 0
    assert open_fds() <= baseline_fds


@session_loop
async def test_a_busy_connection_past_its_age_is_counted_as_max_age(age_limited: Served) -> None:
    served = age_limited
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        deadline = time.monotonic() + 15
        while closed(served.metrics, "max_age") == 0 and time.monotonic() < deadline:
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)  # reconnects
            await asyncio.sleep(0.05)
        assert closed(served.metrics, "max_age") >= 1
        assert closed(served.metrics, "max_idle") == 0
        assert closed(served.metrics, "client_or_other") == 0


@session_loop
async def test_the_gauge_reads_zero_once_the_server_stopped() -> None:
    server, served = await serve(Settings())
    sockets = idle_http2_connections(served.port, 3)
    await wait_for(lambda: open_gauge(served.metrics) == 3)
    served.sampler.stop()
    await server.stop(0)
    served.sampler.server_stopped()
    assert open_gauge(served.metrics) == 0
    for sock in sockets:
        sock.close()


def test_attribution_follows_age_then_idle_then_the_rest() -> None:
    fresh = TrackedSocket(first_seen=100.0, last_active=100.0)
    assert attribute(fresh, 101.0, idle_s=10, age_s=60, slack_s=1) == "client_or_other"
    assert attribute(fresh, 109.0, idle_s=10, age_s=60, slack_s=1) == "max_idle"
    assert attribute(fresh, 153.0, idle_s=10, age_s=60, slack_s=1) == "max_age"  # 0.9 x 60 - 1
    busy = TrackedSocket(first_seen=100.0, last_active=150.0)
    assert attribute(busy, 152.0, idle_s=10, age_s=60, slack_s=1) == "client_or_other"


def test_counters_that_move_or_a_call_in_flight_mark_activity() -> None:
    socket_ = TrackedSocket(first_seen=0.0, last_active=0.0)
    socket_.observe((0, 0, 0, 0, 0), now=1.0)
    assert socket_.last_active == 0.0  # never had a call: idle since it was first seen
    socket_.observe((0, 0, 0, 0, 0), now=2.0)
    assert socket_.last_active == 0.0 and socket_.read_gap == 1.0
    socket_.observe((1, 0, 0, 0, 1), now=3.0)  # a call in flight
    assert socket_.last_active == 3.0
    socket_.observe((1, 1, 0, 1, 1), now=5.0)  # it finished between the reads
    assert socket_.last_active == 5.0 and socket_.read_gap == 2.0
    socket_.observe((1, 1, 0, 1, 1), now=6.0)
    assert socket_.last_active == 5.0
    late = TrackedSocket(first_seen=0.0, last_active=0.0)
    late.observe((2, 2, 0, 2, 2), now=4.0)  # calls before the first read: active by then
    assert late.last_active == 4.0
