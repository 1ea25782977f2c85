"""Hostile and normal clients for the edge-limit tests: stalled sockets, a latency probe, and
the server process's descriptor count."""

from __future__ import annotations

import os
import resource
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np

from tests.suites.reliability.subprocess_server import ServerProcess

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS_FRAME = bytes.fromhex("000000040000000000")
"""An HTTP/2 SETTINGS frame with no settings: length 0, type 4, flags 0, stream 0."""


def open_fds(pid: int) -> int:
    """How many descriptors process ``pid`` holds."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_fds_at_most(server: ServerProcess, baseline: int, timeout: float = 15) -> int:
    """Poll the server's descriptor count until it is back to ``baseline``; the last count."""
    deadline = time.monotonic() + timeout
    count = open_fds(server.process.pid)
    while count > baseline and time.monotonic() < deadline:
        time.sleep(0.1)  # another process: nothing to wait on but its /proc entry
        count = open_fds(server.process.pid)
    return count


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


@dataclass
class LatencyProbe:
    """A normal REST client sending good predicts one after another."""

    rest_url: str
    failures: list[str] = field(default_factory=list)

    def run_for(self, requests: int) -> list[float]:
        """Send ``requests`` good requests now; their latencies."""
        with httpx.Client(base_url=self.rest_url, timeout=30) as client:
            return [self.one(client) for _ in range(requests)]

    def run_while(self, client: httpx.Client, busy: Callable[[], bool]) -> list[float]:
        """Send good requests while ``busy()``; their latencies."""
        latencies = []
        while busy():
            latencies.append(self.one(client))
        return latencies

    def one(self, client: httpx.Client) -> float:
        started = time.perf_counter()
        response = client.post(
            "/v1/models/half_plus_two:predict", json={"instances": [[1.0, 2.0, 3.0]]}
        )
        elapsed = time.perf_counter() - started
        if response.status_code != 200 or response.json() != {"predictions": [[2.5, 3.0, 3.5]]}:
            self.failures.append(f"{response.status_code}: {response.text[:200]}")
        return elapsed


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
