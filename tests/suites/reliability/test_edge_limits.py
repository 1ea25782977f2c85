"""Edge limits against hostile clients on loopback (issue 22): slowloris, huge headers, trickled
bodies, connection floods, idle gRPC connections and a client opening too many streams.

``primer-serve`` runs as a subprocess so that its descriptors can be counted
(``/proc/<pid>/fd``): after every test they are back to the baseline taken at its start.
Timeouts are short here (2 s) so each test is bounded; the defaults are in SECURITY.md.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from loadtest.edge_clients import (
    EMPTY_SETTINGS_FRAME,
    HTTP2_PREFACE,
    STALLED_HEAD,
    open_stalled,
    p99,
    raise_fd_limit,
    read_until_closed,
    seconds_until_closed,
    stall_and_time,
)
from tests import fixtures
from tests.suites.reliability.clients import predict_request, tensor_proto
from tests.suites.reliability.edge_clients import LatencyProbe, open_fds, wait_fds_at_most
from tests.suites.reliability.subprocess_server import ServerProcess, serve

HEADER_TIMEOUT_S = 5.0
BODY_TIMEOUT_S = 2.0
GRPC_IDLE_S = 2.0
GRPC_STREAMS = 4
HELD_MS = 500
SLACK_S = 2.0


def repository(base: Path) -> Path:
    fixtures.half_plus_two(base / "half_plus_two" / "1")
    fixtures.half_plus_two(base / "held" / "1")
    return base


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("edge")
    config = {
        "rest_header_timeout_s": HEADER_TIMEOUT_S,
        "rest_body_timeout_s": BODY_TIMEOUT_S,
        "grpc_max_connection_idle_s": GRPC_IDLE_S,
        "grpc_max_concurrent_streams": GRPC_STREAMS,
        "models": {"held": {"batching": {"batch_timeout_ms": HELD_MS, "batch_fill_gap_ms": 0}}},
    }
    with serve(repository(workdir / "models"), workdir, config) as process:
        yield process


@pytest.fixture
def fd_baseline(server: ServerProcess) -> Iterator[int]:
    """The server's descriptor count before the test; checked again after it."""
    LatencyProbe(server.rest_url).run_for(5)  # warm, and let its connection go
    time.sleep(0.3)  # another process closing a socket: nothing to wait on
    baseline = open_fds(server.process.pid)
    yield baseline
    count = wait_fds_at_most(server, baseline)
    assert count <= baseline, f"server holds {count} descriptors, {baseline} before the test"


def slowloris(server: ServerProcess, connections: int) -> None:
    """``connections`` stalled partial requests are each closed within the header timeout
    plus 2 s while a normal client keeps being served.

    The stalled connections come from a child process, so that the probe's latencies are
    the server's, not this process's threads contending for the GIL. The normal client's
    p99 during the attack, against a baseline taken right before it over as long, is
    printed, not asserted: latency is a benchmark's figure, never a test's (the issue's
    bound of 2x is measured by ``make bench-edge``, ``loadtest/edge_bench.py``)."""
    raise_fd_limit(connections + 1024)
    during, baseline = one_slowloris(server, connections)
    ratio = p99(during) / p99(baseline)
    print(f"slowloris {connections}: the normal client's p99 during / before: {ratio:.2f}x")


def one_slowloris(server: ServerProcess, connections: int) -> tuple[list[float], list[float]]:
    """One attack; the normal client's latencies during it and during its baseline."""
    probe = LatencyProbe(server.rest_url)
    spawn = multiprocessing.get_context("spawn")
    closed_before = float(metric_line(server, "rest", "header_timeout").split()[-1])
    with (
        httpx.Client(base_url=server.rest_url, timeout=30) as client,
        ProcessPoolExecutor(1, mp_context=spawn) as attacker,
    ):
        attacker.submit(time.sleep, 0).result()  # the child is up before anything is timed
        baseline_end = time.monotonic() + HEADER_TIMEOUT_S
        baseline = probe.run_while(client, lambda: time.monotonic() < baseline_end)
        attack = attacker.submit(
            stall_and_time,
            server.rest_port,
            connections,
            STALLED_HEAD,
            HEADER_TIMEOUT_S + SLACK_S + 10,
        )
        during = probe.run_while(client, lambda: not attack.done())
        waits = attack.result()
    assert not probe.failures, probe.failures[:3]
    late = [w for w in waits if w > HEADER_TIMEOUT_S + SLACK_S]
    assert not late, f"{len(late)} of {connections} closed late (max {max(waits):.2f} s)"
    assert min(waits) >= HEADER_TIMEOUT_S * 0.9, "closed before the header timeout"
    assert len(during) >= 50
    closed = float(metric_line(server, "rest", "header_timeout").split()[-1]) - closed_before
    assert closed == connections
    return during, baseline


def metric_line(server: ServerProcess, protocol: str, limit: str) -> str:
    text = httpx.get(f"{server.rest_url}/metrics", timeout=10).text
    prefix = f'primer_connections_closed_total{{limit="{limit}",protocol="{protocol}"}}'
    return next(line for line in text.splitlines() if line.startswith(prefix))


def test_stalled_partial_requests_are_closed_in_time(server: ServerProcess, fd_baseline) -> None:
    slowloris(server, 300)


@pytest.mark.slow
def test_3000_stalled_partial_requests_are_closed_in_time(
    server: ServerProcess, fd_baseline
) -> None:
    slowloris(server, 3000)


def test_a_2_mib_header_gets_431_and_the_server_stays_healthy(
    server: ServerProcess, fd_baseline
) -> None:
    request = STALLED_HEAD + b"X-Big: " + b"a" * (2 << 20) + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
        sender = threading.Thread(target=send_ignoring_reset, args=(sock, request))
        sender.start()
        reply = read_until_closed(sock)
        sender.join(timeout=10)
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:200]
    assert b"exceed the limit of 65536 bytes" in reply
    assert float(metric_line(server, "rest", "header_size").split()[-1]) >= 1
    LatencyProbe(server.rest_url).run_for(3)
    assert httpx.get(f"{server.rest_url}/v2/health/ready", timeout=10).status_code == 200


def send_ignoring_reset(sock: socket.socket, data: bytes) -> None:
    """Send until done or until the server closes (expected for a refused request)."""
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


def test_a_body_trickled_at_1_byte_per_second_is_closed_after_the_body_timeout(
    server: ServerProcess, fd_baseline
) -> None:
    head = b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: test\r\n"
    body = b'{"instances": [[1.0, 2.0, 3.0]]}'
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=10) as sock:
        # stamped before sending: the server's timer starts once the headers arrive, which
        # may be before sendall returns here
        headers_sent = time.monotonic()
        sock.sendall(head + f"Content-Length: {len(body)}\r\n\r\n".encode())
        sock.settimeout(1.0)
        reply = b""
        for byte in body:
            sock.sendall(bytes([byte]))
            try:
                reply = sock.recv(65536)
            except TimeoutError:
                continue  # nothing yet: one byte per second
            break
        elapsed = time.monotonic() - headers_sent
        sock.settimeout(10)
        reply += read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    assert b"request body not received within 2 s" in reply
    assert BODY_TIMEOUT_S <= elapsed <= BODY_TIMEOUT_S + SLACK_S, elapsed
    LatencyProbe(server.rest_url).run_for(3)


def test_connections_past_the_cap_are_refused_fast_and_the_server_recovers(
    tmp_path: Path,
) -> None:
    cap = 50
    config = {"rest_max_connections": cap, "rest_header_timeout_s": 30.0}
    with serve(repository(tmp_path / "models"), tmp_path, config) as capped:
        LatencyProbe(capped.rest_url).run_for(3)
        time.sleep(0.2)
        baseline = open_fds(capped.process.pid)
        held = [
            socket.create_connection(("127.0.0.1", capped.rest_port), timeout=10)
            for _ in range(cap)
        ]
        refusals = []
        for _ in range(20):
            started = time.monotonic()
            with socket.create_connection(("127.0.0.1", capped.rest_port), timeout=10) as extra:
                reply = read_until_closed(extra)
            refusals.append(time.monotonic() - started)
            assert reply.startswith(b"HTTP/1.1 503 "), reply[:200]
        for sock in held:
            sock.close()
        assert max(refusals) < 1.0, refusals
        recovered = time.monotonic()
        while True:  # the server frees the held slots as soon as it sees them closed
            try:
                LatencyProbe(capped.rest_url).run_for(1)
                break
            except httpx.RemoteProtocolError:
                assert time.monotonic() - recovered < 2.0, "not recovered 2 s after"
        assert float(metric_line(capped, "rest", "connection_cap").split()[-1]) == 20
        assert wait_fds_at_most(capped, baseline) <= baseline


def test_idle_grpc_connections_are_closed_and_a_normal_client_keeps_working(
    server: ServerProcess, fd_baseline
) -> None:
    connections = 1000
    raise_fd_limit(connections + 1024)
    idle_before = metric_value(server, "max_idle")
    open_before = metric_value(server)
    stalled = open_stalled(server.grpc_port, connections, HTTP2_PREFACE + EMPTY_SETTINGS_FRAME)
    with grpc.insecure_channel(server.grpc_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(10):
            reply = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            assert_half_plus_two(stub, "half_plus_two")
        waits = seconds_until_closed(stalled, GRPC_IDLE_S + SLACK_S + 10)
        late = [w for w in waits if w > GRPC_IDLE_S + SLACK_S]
        assert not late, f"{len(late)} of {connections} idle connections held past the limit"
        assert_half_plus_two(stub, "half_plus_two")
        # the sampler reads channelz every second: the closes, then the gauge's fall
        wait_until(lambda: metric_value(server, "max_idle") - idle_before >= connections)
        assert metric_value(server, "max_idle") - idle_before == connections
        wait_until(lambda: metric_value(server) <= open_before + 1)  # + the normal channel
    wait_until(lambda: metric_value(server) <= open_before)


def metric_value(server: ServerProcess, limit: str | None = None) -> float:
    """A gRPC close counter (``limit``), or the open gRPC connections gauge."""
    if limit is not None:
        return float(metric_line(server, "grpc", limit).split()[-1])
    text = httpx.get(f"{server.rest_url}/metrics", timeout=10).text
    gauge = 'primer_open_connections{protocol="grpc"}'
    return float(next(line for line in text.splitlines() if line.startswith(gauge)).split()[-1])


def wait_until(condition: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.2)  # another process's sampler: nothing to wait on but its metrics
    assert condition()


def assert_half_plus_two(
    stub: prediction_service_pb2_grpc.PredictionServiceStub, model: str
) -> None:
    proto = tensor_proto(types_pb2.DT_FLOAT, [1, 3], float_val=[1.0, 2.0, 3.0])
    response = stub.Predict(predict_request(model, {"x": proto}), timeout=30)
    y = np.asarray(response.outputs["y"].float_val, np.float32)  # typed fields, as TF Serving
    np.testing.assert_allclose(y, [2.5, 3.0, 3.5])


def test_a_client_opening_more_streams_than_allowed_is_held_to_the_limit(
    server: ServerProcess, fd_baseline
) -> None:
    """Calls beyond ``grpc_max_concurrent_streams`` on one connection never run at once on the
    server: gRPC's client queues them for a free stream, and a stream opened past the limit
    anyway (the client counts a stream free before the server does) is refused with
    REFUSED_STREAM, UNAVAILABLE to the caller, never processed and safe to retry. Each 'held'
    call waits 0.5 s for its batch, so without the limit all would be in flight together."""
    calls = 3 * GRPC_STREAMS
    inflight: list[float] = []
    done = threading.Event()

    def sample() -> None:
        with httpx.Client(timeout=10) as client:
            while not done.is_set():
                text = client.get(f"{server.rest_url}/metrics").text
                inflight.extend(
                    float(line.split()[-1])
                    for line in text.splitlines()
                    if line.startswith('primer_inflight_requests{model="held"')
                )
                time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        assert_half_plus_two(stub, "held")
        sampler.start()
        errors: list[grpc.RpcError] = []
        threads = [
            threading.Thread(target=call_collecting, args=(stub, errors)) for _ in range(calls)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        done.set()
        sampler.join(timeout=10)
        assert all(error.code() is grpc.StatusCode.UNAVAILABLE for error in errors), errors[:1]
        assert len(errors) < calls
        for _ in errors:  # refused, never run: a retry is answered
            assert_half_plus_two(stub, "held")
        with grpc.insecure_channel(server.grpc_target) as other:
            assert_half_plus_two(prediction_service_pb2_grpc.PredictionServiceStub(other), "held")
    assert 1 <= max(inflight) <= GRPC_STREAMS, sorted(set(inflight))


def call_collecting(
    stub: prediction_service_pb2_grpc.PredictionServiceStub, errors: list[grpc.RpcError]
) -> None:
    try:
        assert_half_plus_two(stub, "held")
    except grpc.RpcError as error:  # reported by the test thread
        errors.append(error)


def test_a_client_pinging_too_often_gets_goaway_while_a_normal_client_is_served(
    server: ServerProcess, fd_baseline, capfd: pytest.CaptureFixture[str]
) -> None:
    """Pings every 100 ms against the default 10 s minimum: after 2 strikes GOAWAY
    ENHANCE_YOUR_CALM ``too_many_pings`` (grpc core logs it on the client's stderr); the
    greedy client's calls fail UNAVAILABLE until it has doubled its interval past the
    minimum, and a normal client is served meanwhile."""
    greedy = [
        ("grpc.keepalive_time_ms", 100),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    seen = ""
    with (
        grpc.insecure_channel(server.grpc_target, options=greedy) as channel,
        grpc.insecure_channel(server.grpc_target) as normal,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        health.Check(health_pb2.HealthCheckRequest(), timeout=10)  # connected: pings start
        stub = prediction_service_pb2_grpc.PredictionServiceStub(normal)
        deadline = time.monotonic() + 10
        while "too_many_pings" not in seen and time.monotonic() < deadline:
            assert_half_plus_two(stub, "half_plus_two")
            time.sleep(0.1)  # the greedy client's pings are the behaviour under test
            seen += capfd.readouterr().err
        assert_half_plus_two(stub, "half_plus_two")
    assert "ENHANCE_YOUR_CALM" in seen and "too_many_pings" in seen, seen[-2000:]
