"""Raw-socket clients for edge limits, shared by the edge bench and the edge tests: stalled
partial requests, when the server closes them, and the descriptor limit they need."""

from __future__ import annotations

import resource
import selectors
import socket
import time

import numpy as np

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS_FRAME = bytes.fromhex("000000040000000000")
"""An HTTP/2 SETTINGS frame with no settings: length 0, type 4, flags 0, stream 0."""

STALLED_HEAD = b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\n"
"""A request line and one header, then nothing (a slowloris connection)."""


def raise_fd_limit(needed: int) -> None:
    """Raise this process's soft descriptor limit to ``needed`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def open_stalled(port: int, count: int, payload: bytes) -> list[tuple[socket.socket, float]]:
    """``count`` connections that each sent ``payload`` and then nothing; with send times."""
    opened = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(payload)
        opened.append((sock, time.monotonic()))
    return opened


def seconds_until_closed(opened: list[tuple[socket.socket, float]], timeout: float) -> list[float]:
    """For each stalled socket, seconds from its send until the server closed it (inf if it
    did not within ``timeout``); every socket is closed on return."""
    waits = [float("inf")] * len(opened)
    selector = selectors.DefaultSelector()
    for index, (sock, _) in enumerate(opened):
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, index)
    deadline = time.monotonic() + timeout
    remaining = len(opened)
    while remaining and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            sock, sent_at = opened[key.data]
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if not data:
                waits[key.data] = time.monotonic() - sent_at
                selector.unregister(sock)
                remaining -= 1
    selector.close()
    for sock, _ in opened:
        sock.close()
    return waits


def stall_and_time(port: int, count: int, payload: bytes, timeout: float) -> list[float]:
    """In a child process: ``count`` stalled connections, and when each was closed."""
    raise_fd_limit(count + 256)
    return seconds_until_closed(open_stalled(port, count, payload), timeout)


def p99(latencies: list[float]) -> float:
    return float(np.percentile(latencies, 99))


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
