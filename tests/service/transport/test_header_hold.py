"""A response leaves in one write; interim responses, closes and late bodies lose nothing."""

from __future__ import annotations

import asyncio
import json
import socket

import numpy as np

from service.transport.header_hold import MAX_JOINED_BODY, HeaderHold
from tests.conftest import ServerThread

HEADERS = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class RecordingTransport:
    """What reached the connection, one entry per write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def _hold() -> tuple[HeaderHold, RecordingTransport, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    transport = RecordingTransport()
    return HeaderHold(transport, loop), transport, loop  # type: ignore[arg-type]


def test_headers_and_body_leave_in_one_write() -> None:
    hold, transport, loop = _hold()
    hold.write(HEADERS)
    assert transport.writes == []
    hold.write(b"{}")
    assert transport.writes == [HEADERS + b"{}"]
    loop.run_until_complete(asyncio.sleep(0))  # the scheduled flush finds nothing held
    assert transport.writes == [HEADERS + b"{}"]
    loop.close()


def test_headers_without_a_body_in_the_same_step_leave_on_the_next_iteration() -> None:
    hold, transport, loop = _hold()
    hold.write(HEADERS)
    loop.run_until_complete(asyncio.sleep(0))
    assert transport.writes == [HEADERS]
    hold.write(b"{}")
    assert transport.writes == [HEADERS, b"{}"]
    loop.close()


def test_interim_responses_other_bytes_and_large_bodies_are_not_joined() -> None:
    hold, transport, loop = _hold()
    hold.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    hold.write(b"5\r\nhello\r\n")  # a chunk, not a status line
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n", b"5\r\nhello\r\n"]
    large = b"x" * (MAX_JOINED_BODY + 1)
    hold.write(HEADERS)
    hold.write(large)
    assert transport.writes[2:] == [HEADERS, large]
    loop.close()


def test_close_writes_what_is_held_first_and_the_rest_is_passed_through() -> None:
    hold, transport, loop = _hold()
    hold.write(HEADERS)
    hold.close()
    assert transport.writes == [HEADERS] and transport.closed and hold.is_closing()
    assert hold.get_extra_info("socket") == "info:socket"
    loop.close()


def _exchange(port: int, request: bytes, expect_close: bool) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        if not expect_close:
            return conn.recv(1 << 16)
        chunks = []
        while chunk := conn.recv(1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)


def _predict_request(extra_headers: bytes = b"") -> bytes:
    body = json.dumps({"instances": np.zeros((1, 28, 28)).tolist()}).encode()
    return (
        b"POST /v1/models/mnist_dnn:predict HTTP/1.1\r\nhost: x\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n%s\r\n"
        % (len(body), extra_headers)
    ) + body


def _body(response: bytes) -> dict:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return json.loads(body)


def test_a_closing_response_arrives_whole(server: ServerThread) -> None:
    answer = _exchange(server.server.rest_port, _predict_request(b"connection: close\r\n"), True)
    assert b"connection: close" in answer.lower()
    assert len(_body(answer)["predictions"][0]) == 10


def test_keep_alive_responses_arrive_in_order(server: ServerThread) -> None:
    with socket.create_connection(("127.0.0.1", server.server.rest_port), timeout=10) as conn:
        for _ in range(3):
            conn.sendall(_predict_request())
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                answer += conn.recv(1 << 16)
            assert len(_body(answer)["predictions"][0]) == 10


def test_expect_100_continue_is_answered_before_the_body(server: ServerThread) -> None:
    body = json.dumps({"instances": np.zeros((1, 28, 28)).tolist()}).encode()
    head = (
        b"POST /v1/models/mnist_dnn:predict HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", server.server.rest_port), timeout=10) as conn:
        conn.sendall(head)
        assert conn.recv(1 << 16).startswith(b"HTTP/1.1 100")
        conn.sendall(body)
        answer = b""
        while not answer.rstrip().endswith(b"}"):
            answer += conn.recv(1 << 16)
    assert len(_body(answer)["predictions"][0]) == 10
