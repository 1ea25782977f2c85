"""The REST edge limits on a real server over loopback sockets: 431 for oversized headers,
408 for stalled headers and bodies, 503 past the connection cap, each counted, and a good
request still served afterwards."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loadtest.edge_clients import read_until_closed
from service.errors import ConnectionLimitError
from service.transport.connection_cap import RESERVED_DESCRIPTORS, derived_connection_cap
from service.transport.rest_edge import raw_error_response
from tests.conftest import ServerThread, make_settings

HEADER_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 0.8
MAX_HEADER_BYTES = 8192
MAX_CONNECTIONS = 8
REQUEST_HEAD = b"POST /v1/models/half_plus_two:predict HTTP/1.1\r\nHost: test\r\n"
GOOD_BODY = b'{"instances": [[1.0, 2.0, 3.0]]}'


@pytest.fixture(scope="module")
def edge_server(fixture_repository: Path) -> Iterator[ServerThread]:
    settings = make_settings(
        fixture_repository,
        rest_header_timeout_s=HEADER_TIMEOUT_S,
        rest_body_timeout_s=BODY_TIMEOUT_S,
        rest_max_header_bytes=MAX_HEADER_BYTES,
        rest_max_connections=MAX_CONNECTIONS,
    )
    thread = ServerThread(settings).start()
    yield thread
    thread.stop()


def connect(server: ServerThread) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.server.rest_port), timeout=10)
    return sock


def read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and a ``Content-Length`` body) from a kept-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def closed_count(server: ServerThread, limit: str) -> float:
    metric = server.server.metrics.connections_closed.labels("rest", limit)
    return metric._value.get()


def assert_good_request(server: ServerThread) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{server.server.rest_port}") as client:
        response = client.post("/v1/models/half_plus_two:predict", content=GOOD_BODY)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [[2.5, 3.0, 3.5]]}


def test_oversized_header_gets_431_and_the_server_keeps_serving(edge_server: ServerThread) -> None:
    before = closed_count(edge_server, "header_size")
    with connect(edge_server) as sock:
        sock.sendall(REQUEST_HEAD + b"X-Big: " + b"a" * (2 * MAX_HEADER_BYTES) + b"\r\n\r\n")
        reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 431 "), reply[:200]
    assert b"exceed the limit of 8192 bytes" in reply
    assert closed_count(edge_server, "header_size") == before + 1
    assert_good_request(edge_server)


def test_headers_just_under_the_limit_are_served(edge_server: ServerThread) -> None:
    head = REQUEST_HEAD + f"Content-Length: {len(GOOD_BODY)}\r\n".encode()
    padding = MAX_HEADER_BYTES - len(head) - len(b"X-Pad: \r\n\r\n") - 1
    with connect(edge_server) as sock:
        sock.sendall(head + b"X-Pad: " + b"p" * padding + b"\r\n\r\n" + GOOD_BODY)
        reply = read_response(sock)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]


def test_stalled_headers_get_408_and_an_idle_connection_is_closed(
    edge_server: ServerThread,
) -> None:
    before = closed_count(edge_server, "header_timeout")
    with connect(edge_server) as partial, connect(edge_server) as silent:
        partial.sendall(REQUEST_HEAD)
        assert read_until_closed(partial).startswith(b"HTTP/1.1 408 ")
        assert read_until_closed(silent) == b""
    assert closed_count(edge_server, "header_timeout") == before + 2
    assert_good_request(edge_server)


def test_a_stalled_request_on_a_kept_alive_connection_gets_408(edge_server: ServerThread) -> None:
    request = REQUEST_HEAD + f"Content-Length: {len(GOOD_BODY)}\r\n\r\n".encode() + GOOD_BODY
    with connect(edge_server) as sock:
        sock.sendall(request)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(REQUEST_HEAD)
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")


def test_a_trickled_body_gets_408(edge_server: ServerThread) -> None:
    before = closed_count(edge_server, "body_timeout")
    with connect(edge_server) as sock:
        sock.sendall(REQUEST_HEAD + f"Content-Length: {len(GOOD_BODY)}\r\n\r\n".encode())
        sock.sendall(GOOD_BODY[:1])
        reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    assert b"request body not received" in reply
    assert closed_count(edge_server, "body_timeout") == before + 1
    assert_good_request(edge_server)


def test_a_body_arriving_within_the_body_timeout_is_served(edge_server: ServerThread) -> None:
    """Three pieces 0.2 s apart (0.4 s in all, the body timeout is 0.8 s): answered 200."""
    with connect(edge_server) as sock:
        sock.sendall(REQUEST_HEAD + f"Content-Length: {len(GOOD_BODY)}\r\n\r\n".encode())
        for start in range(0, len(GOOD_BODY), 12):
            time.sleep(0.2)  # a slow client: the pacing is the behaviour under test
            sock.sendall(GOOD_BODY[start : start + 12])
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def test_a_kept_alive_connection_idle_past_the_header_timeout_is_kept(
    edge_server: ServerThread,
) -> None:
    """Between requests only the keep-alive timeout (30 s) applies, not the header timeout."""
    request = REQUEST_HEAD + f"Content-Length: {len(GOOD_BODY)}\r\n\r\n".encode() + GOOD_BODY
    with connect(edge_server) as sock:
        sock.sendall(request)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(2 * HEADER_TIMEOUT_S)  # idle between requests, longer than the timeout
        sock.sendall(request)
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")


def test_connections_past_the_cap_get_503_and_the_server_recovers(
    edge_server: ServerThread,
) -> None:
    before = closed_count(edge_server, "connection_cap")
    held = [connect(edge_server) for _ in range(MAX_CONNECTIONS)]
    try:
        with connect(edge_server) as extra:
            reply = read_until_closed(extra)
        assert reply.startswith(b"HTTP/1.1 503 "), reply[:200]
        assert b"retry-after: 1" in reply
    finally:
        for sock in held:
            sock.close()
    assert closed_count(edge_server, "connection_cap") == before + 1
    assert_good_request(edge_server)


def test_the_edge_counters_are_exported(edge_server: ServerThread) -> None:
    text = edge_server.server.metrics.exposition().decode()
    for limit in ("connection_cap", "header_timeout", "header_size", "body_timeout"):
        assert f'primer_connections_closed_total{{limit="{limit}",protocol="rest"}}' in text
    assert 'primer_open_connections{protocol="rest"}' in text


def test_the_default_cap_leaves_the_reserve_and_splits_the_rest() -> None:
    assert derived_connection_cap(20_000) == (20_000 - RESERVED_DESCRIPTORS) // 2
    assert derived_connection_cap(100) == 16


def test_a_raw_error_response_is_well_formed() -> None:
    raw = raw_error_response(ConnectionLimitError("full"))
    head, body = raw.split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert f"content-length: {len(body)}".encode() in head
    assert body == b'{"error":"full"}'
