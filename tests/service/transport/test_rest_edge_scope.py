"""The guarded protocol reads a connection's addresses only once a request's headers are in:
the ASGI scope still carries the right ``client`` and ``server``, on the first request and on
the next ones of a kept-alive connection; the open-connections gauge counts the connection
while it is held and not after."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from service.metrics import Metrics
from service.transport.rest_edge import EdgeLimits, guarded_protocol

session_loop = pytest.mark.asyncio(loop_scope="session")


async def echo_addresses(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = orjson.dumps({"client": scope["client"], "server": scope["server"]})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def served() -> AsyncIterator[tuple[int, Metrics]]:
    metrics = Metrics()
    limits = EdgeLimits(
        header_timeout_s=5, body_timeout_s=5, max_header_bytes=8192, max_connections=8
    )
    config = uvicorn.Config(
        echo_addresses,
        host="127.0.0.1",
        port=0,
        http=guarded_protocol(limits, metrics),
        loop="none",
        lifespan="off",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server._serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield port, metrics
    server.should_exit = True
    await task


def open_gauge(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("primer_open_connections", {"protocol": "rest"})


@session_loop
async def test_the_scope_carries_both_addresses_on_every_request(served) -> None:
    port, metrics = served
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(3):  # one kept-alive connection
            response = await client.get("/")
            assert response.status_code == 200
            addresses = response.json()
            assert addresses["server"] == ["127.0.0.1", port]
            assert addresses["client"][0] == "127.0.0.1"
            assert addresses["client"][1] > 0
        assert open_gauge(metrics) == 1


@session_loop
async def test_a_connection_that_sent_nothing_is_counted_open_then_not(served) -> None:
    port, metrics = served
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    for _ in range(200):
        if open_gauge(metrics) == 1:
            break
        await asyncio.sleep(0.01)
    assert open_gauge(metrics) == 1
    sock.close()
    for _ in range(200):
        if open_gauge(metrics) == 0:
            break
        await asyncio.sleep(0.01)
    assert open_gauge(metrics) == 0
