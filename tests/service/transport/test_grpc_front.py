"""The gRPC front process: who listens, what crosses the link, restarts, and inline mode.

Every other gRPC test runs through the front too (it is the default); these pin what only
the front does: the port belongs to a child process, that child is started again when it
dies and never outlives the server, and ``grpc_front_process: false`` still serves inline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from service.transport.grpc_forwarded import ForwardedContext
from service.transport.grpc_link import FrameLink, encode
from tests.conftest import ServerThread, make_settings
from tests.helpers import health_status
from tests.suites.reliability.clients import predict_request, tensor_proto
from tests.suites.reliability.subprocess_server import serve


def listening_pids(port: int) -> set[int]:
    """Processes holding a TCP socket that listens on ``port``."""
    return {
        c.pid
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid is not None
    }  # a socket of a process just killed may still be listed, with no owner


def predict(target: str, timeout: float = 10) -> list[float]:
    """half_plus_two of one row over TF Serving gRPC Predict."""
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        row = tensor_proto(types_pb2.DT_FLOAT, [1, 3], float_val=[1.0, 2.0, 3.0])
        response = stub.Predict(predict_request("half_plus_two", {"x": row}), timeout=timeout)
    return list(response.outputs["y"].float_val)


def wait_until(condition: Callable[[], object], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)  # another process: nothing to wait on but its state
    return False


@pytest.fixture
def own_server(fixture_repository: Path) -> Iterator[ServerThread]:
    thread = ServerThread(make_settings(fixture_repository, grpc_front_process=True)).start()
    yield thread
    thread.stop()


def test_the_grpc_port_belongs_to_a_front_process(own_server: ServerThread) -> None:
    front = own_server.server.grpc._front.process
    assert listening_pids(own_server.server.grpc_port) == {front.pid}
    assert front.pid != os.getpid()
    assert predict(own_server.grpc_target) == [2.5, 3.0, 3.5]


def restarts(server: ServerThread) -> float | None:
    return server.server.metrics.registry.get_sample_value("primer_grpc_front_restarts_total")


def test_a_killed_front_is_started_again_on_the_same_port(own_server: ServerThread) -> None:
    port = own_server.server.grpc_port
    first = own_server.server.grpc._front.process.pid
    assert restarts(own_server) == 0
    os.kill(first, signal.SIGKILL)
    assert wait_until(lambda: restarts(own_server) == 1)  # counted once the new one listens
    second = own_server.server.grpc._front.process.pid
    assert listening_pids(port) == {second} and second != first
    assert predict(own_server.grpc_target) == [2.5, 3.0, 3.5]
    assert not os.path.exists(f"/proc/{first}")  # reaped, not left a zombie


def test_the_front_never_outlives_the_server(fixture_repository: Path, tmp_path: Path) -> None:
    with serve(fixture_repository, tmp_path, {"grpc_front_process": True}) as server:
        fronts = listening_pids(server.grpc_port)
        assert len(fronts) == 1 and server.process.pid not in fronts
        server.process.kill()
        front = fronts.pop()
        assert wait_until(lambda: not os.path.exists(f"/proc/{front}"), timeout_s=10)


def test_inline_mode_serves_in_this_process(fixture_repository: Path) -> None:
    thread = ServerThread(make_settings(fixture_repository, grpc_front_process=False)).start()
    try:
        assert listening_pids(thread.server.grpc_port) == {os.getpid()}
        assert predict(thread.grpc_target) == [2.5, 3.0, 3.5]
        with grpc.insecure_channel(thread.grpc_target) as channel:
            assert health_status(channel, "half_plus_two") == health_pb2.HealthCheckResponse.SERVING
            services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert "tensorflow.serving.PredictionService" in services
    finally:
        thread.stop()


def test_a_forwarded_call_sees_the_clients_deadline_and_metadata() -> None:
    context = ForwardedContext((("x-request-id", "abc"), ("k-bin", b"\x00")), 2.0)
    assert context.invocation_metadata() == (("x-request-id", "abc"), ("k-bin", b"\x00"))
    remaining = context.time_remaining()
    assert remaining is not None and 1.0 < remaining <= 2.0
    assert ForwardedContext((), None).time_remaining() is None

    async def abort() -> None:
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such model", (("a", "b"),))

    with pytest.raises(grpc.aio.AbortError):
        asyncio.run(abort())
    assert (context.code, context.details) == (grpc.StatusCode.NOT_FOUND, "no such model")
    assert context.trailing_metadata == (("a", "b"),)


def test_the_link_reassembles_frames_however_the_bytes_arrive() -> None:
    messages = [("call", 1, "/a/B", (), None, b"x" * 70_000), ("cancel", 1), ("reply", 2)]
    stream = b"".join(encode(message) for message in messages)

    async def exchange() -> list[tuple]:
        received: list[tuple] = []
        link = FrameLink(received.append, lambda: None)
        ours, theirs = socket.socketpair()
        await asyncio.get_running_loop().connect_accepted_socket(lambda: link, ours)
        for start in range(0, len(stream), 997):  # frames split across reads, and joined
            theirs.sendall(stream[start : start + 997])
            await asyncio.sleep(0)
        while len(received) < len(messages):
            await asyncio.sleep(0.01)
        link.close()
        theirs.close()
        return received

    assert asyncio.run(exchange()) == messages


class CountingTransport:
    """A transport that counts its writes (uvloop's own cannot be patched)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.transport.write(data)

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def close(self) -> None:
        self.transport.close()


def test_frames_sent_in_one_loop_turn_share_one_write() -> None:
    async def exchange() -> tuple[list[bytes], bytes]:
        link = FrameLink(lambda message: None, lambda: None)
        ours, theirs = socket.socketpair()
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(lambda: link, ours)
        counting = CountingTransport(transport)
        link.connection_made(counting)  # type: ignore[arg-type]
        for index in range(50):
            link.send(("reply", index))
        await asyncio.sleep(0)  # one turn: the flush
        link.send(("reply", 50))
        await asyncio.sleep(0.05)
        theirs.setblocking(False)
        data = theirs.recv(1 << 20)
        link.close()
        theirs.close()
        return counting.writes, data

    writes, data = asyncio.run(exchange())
    frames = [encode(("reply", index)) for index in range(51)]
    assert writes == [b"".join(frames[:50]), frames[50]]
    assert data == b"".join(frames)
