"""The REST app's front, served by uvicorn on 127.0.0.1: request ids on every answer, errors
in a lane answered as the routes' errors are, auth before the lanes, and a server that stays
healthy after an unexpected error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.errors import InvalidInputError
from service.transport.http import json_response
from service.transport.rest_app import Lane, RestApp

session_loop = pytest.mark.asyncio(loop_scope="session")
TOKEN = "s3cret"


async def echo(request: Request) -> Response:
    """What the endpoint saw: its path parameter, how it was reached, the request id."""
    return json_response(
        {"path": request.path_params["path"], "request_id": request.scope["request_id"]}
    )


async def open_path(request: Request) -> Response:
    return json_response({"open": True})


async def refuse(request: Request) -> Response:
    raise InvalidInputError("expected a digit")


async def fail(request: Request) -> Response:
    raise RuntimeError("a bug")


def app(auth_token: str | None = None) -> RestApp:
    return RestApp(
        [
            Route("/m/{path:path}", echo, methods=["GET", "POST"]),
            Route("/open", open_path, methods=["GET"]),
        ],
        [
            Lane("/m/", (":echo",), echo),
            Lane("/m/", (":refuse",), refuse),
            Lane("/m/", (":fail",), fail),
        ],
        auth_token=auth_token,
        open_paths={"/open"},
    )


async def serve(asgi: RestApp, root_path: str = "") -> AsyncIterator[httpx.AsyncClient]:
    config = uvicorn.Config(
        asgi,
        host="127.0.0.1",
        port=0,
        loop="none",
        lifespan="off",
        log_level="warning",
        root_path=root_path,
    )
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server._serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        yield client
    server.should_exit = True
    await task


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for served in serve(app()):
        yield served


@pytest.fixture
async def guarded() -> AsyncIterator[httpx.AsyncClient]:
    async for served in serve(app(TOKEN)):
        yield served


@pytest.fixture
async def mounted() -> AsyncIterator[httpx.AsyncClient]:
    async for served in serve(app(), root_path="/api"):
        yield served


def assert_echoed(response: httpx.Response, path: str, request_id: str) -> None:
    """``echo`` answered, seeing ``path`` and ``request_id``, and the id came back."""
    assert response.status_code == 200
    assert response.json() == {"path": path, "request_id": request_id}
    assert response.headers["x-request-id"] == request_id


@session_loop
async def test_a_lane_gets_the_path_and_the_request_id(client) -> None:
    response = await client.post("/m/a/b:echo", headers={"x-request-id": "abc-1"})
    assert_echoed(response, "a/b:echo", "abc-1")


@session_loop
async def test_routes_and_refusals_carry_a_request_id_too(client) -> None:
    routed = await client.get("/m/a:echo")  # a GET: the route, not the lane
    assert routed.status_code == 200 and routed.json()["path"] == "a:echo"
    assert routed.headers["x-request-id"] == routed.json()["request_id"]
    assert len(routed.headers["x-request-id"]) == 32  # made by the server
    missing = await client.get("/nowhere", headers={"x-request-id": "abc-2"})
    assert missing.status_code == 404 and "no such endpoint" in missing.json()["error"]
    assert missing.headers["x-request-id"] == "abc-2"


@session_loop
async def test_a_typed_error_in_a_lane_is_answered_by_the_error_table(client) -> None:
    response = await client.post("/m/a:refuse", headers={"x-request-id": "abc-3"})
    assert response.status_code == 400
    assert response.json() == {"error": "expected a digit"}
    assert response.headers["x-request-id"] == "abc-3"


@session_loop
async def test_an_unexpected_error_is_a_500_and_the_server_stays_healthy(client, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        response = await client.post("/m/a:fail", headers={"x-request-id": "abc-4"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (request id abc-4)"}
    assert response.headers["x-request-id"] == "abc-4"
    assert any("abc-4" in record.getMessage() for record in caplog.records)
    assert (await client.post("/m/a:echo")).status_code == 200


@session_loop
async def test_auth_comes_before_the_lanes(guarded) -> None:
    refused = await guarded.post("/m/a:echo", headers={"x-request-id": "abc-5"})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.headers["x-request-id"] == "abc-5"
    assert "Authorization: Bearer" in refused.json()["error"]
    allowed = await guarded.post("/m/a:echo", headers={"authorization": f"Bearer {TOKEN}"})
    assert allowed.status_code == 200
    assert (await guarded.get("/open")).json() == {"open": True}  # an open path: no token


@session_loop
async def test_under_a_root_path_the_routes_answer_what_the_lanes_would(mounted) -> None:
    # behind a proxy that strips /api: uvicorn puts root_path back in front of the path
    response = await mounted.post("/m/a:echo", headers={"x-request-id": "abc-6"})
    assert_echoed(response, "a:echo", "abc-6")
