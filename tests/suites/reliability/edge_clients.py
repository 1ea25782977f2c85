"""The edge-limit tests' normal client (a latency probe) and the server process's descriptor
count; the raw-socket clients are in ``loadtest/edge_clients.py``, shared with the edge bench."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tests.suites.reliability.subprocess_server import ServerProcess


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the server and its gRPC front process)."""
    pids, index = [pid], 0
    while index < len(pids):
        current = pids[index]
        for task in os.listdir(f"/proc/{current}/task"):
            try:
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pids.extend(int(child) for child in children.read().split())
            except FileNotFoundError:  # the thread ended meanwhile
                continue
        index += 1
    return pids


def open_fds(pid: int) -> int:
    """How many descriptors process ``pid`` and its descendants hold."""
    count = 0
    for member in process_tree(pid):
        try:
            count += len(os.listdir(f"/proc/{member}/fd"))
        except FileNotFoundError:  # a child that exited meanwhile
            continue
    return count


def wait_fds_at_most(server: ServerProcess, baseline: int, timeout: float = 15) -> int:
    """Poll the server's descriptor count until it is back to ``baseline``; the last count."""
    deadline = time.monotonic() + timeout
    count = open_fds(server.process.pid)
    while count > baseline and time.monotonic() < deadline:
        time.sleep(0.1)  # another process: nothing to wait on but its /proc entry
        count = open_fds(server.process.pid)
    return count


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
