"""The ASGI application: request ids, optional auth, and every REST adapter's routes behind
one set of error handlers, with a short way in for inference calls.

Nearly every request is an inference POST. Through Starlette alone it would pass three
layers (server errors, exception handlers, the router), be tried against route expressions,
and get two more exception-handling wrappers, each adding a closure around ``send``. A
``Lane`` takes the paths that end in an inference verb straight to the adapter's endpoint,
with the same error handlers; every other request goes to the Starlette app. What answers a
request, and its status, body and headers, is the same either way: the adapters' catch-all
routes lead to the same endpoints.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Message, Receive, Scope, Send

from contract.errors import ContractError
from service.errors import ServingError
from service.logging_setup import REQUEST_ID
from service.transport.auth import BearerAuth
from service.transport.http import (
    handle_http_exception,
    handle_serving_error,
    handle_unexpected_error,
)
from service.transport.request_ids import new_request_id

Endpoint = Callable[[Request], Awaitable[Response]]
REQUEST_ID_HEADER = b"x-request-id"


@dataclass(frozen=True)
class Lane:
    """POSTs to ``prefix`` + ``path`` where ``path`` ends in one of ``endings`` go straight to
    ``endpoint``, with ``request.path_params["path"]`` as a ``{path:path}`` route gives it.

    No other route may take such a path: the adapter's catch-all must lead to the same
    endpoint (it still serves them when the app is mounted under a root path).
    """

    prefix: str
    endings: tuple[str, ...]
    endpoint: Endpoint

    def takes(self, path: str) -> bool:
        return path.startswith(self.prefix) and path.endswith(self.endings)


def request_id_of(scope: Scope) -> bytes:
    """The client's ``X-Request-ID`` (up to 128 ASCII bytes), or a new one."""
    request_id = b""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            request_id = value[:128]
            break
    if not request_id or not request_id.isascii():
        request_id = new_request_id().encode()
    return request_id


EXCEPTION_HANDLERS: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
    ServingError: handle_serving_error,
    ContractError: handle_serving_error,
    HTTPException: handle_http_exception,
    Exception: handle_unexpected_error,
}
"""The app's error handlers, for the Starlette app and the lanes alike."""


async def _handled(request: Request, exc: Exception) -> Response:
    """The response the app's error handlers give for ``exc`` (its closest class's)."""
    handler = next(EXCEPTION_HANDLERS[c] for c in type(exc).__mro__ if c in EXCEPTION_HANDLERS)
    return await handler(request, exc)


class RestApp:
    """The REST server's ASGI app.

    Every HTTP request gets a request id (taken from ``X-Request-ID`` or made, echoed back,
    and set for log records); with a token configured, requests outside the open paths
    need it (``BearerAuth``). Then the lanes, else the Starlette app.

    Args:
        routes: every adapter's routes.
        lanes: the inference endpoints, reached before the routes.
        auth_token: when set, requests outside ``open_paths`` need this bearer token.
        open_paths: paths served without the token.
    """

    def __init__(
        self,
        routes: list[BaseRoute],
        lanes: Sequence[Lane] = (),
        auth_token: str | None = None,
        open_paths: Iterable[str] = (),
    ) -> None:
        self.app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
        self.lanes = tuple(lanes)
        self._auth = None if auth_token is None else BearerAuth(auth_token, open_paths)

    @property
    def routes(self) -> list[BaseRoute]:
        return self.app.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope["request_id"] = request_id.decode("ascii", "replace")
        REQUEST_ID.set(scope["request_id"])  # for log records and the core's access log
        refusal = None if self._auth is None else self._auth.refusal(scope)
        if refusal is not None:
            refusal.raw_headers.append((REQUEST_ID_HEADER, request_id))
            await refusal(scope, receive, send)
            return
        if scope["method"] == "POST" and not scope.get("root_path"):
            path = scope["path"]
            for lane in self.lanes:
                if lane.takes(path):
                    scope["path_params"] = {"path": path[len(lane.prefix) :]}
                    await self._serve(lane.endpoint, scope, receive, send, request_id)
                    return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)

    @staticmethod
    async def _serve(
        endpoint: Endpoint, scope: Scope, receive: Receive, send: Send, request_id: bytes
    ) -> None:
        """Call a lane's endpoint; its errors answered as the Starlette app answers them."""
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await _handled(request, exc)
            exc.__traceback__ = None  # reused exception instances would collect tracebacks
        response.raw_headers.append((REQUEST_ID_HEADER, request_id))
        await response(scope, receive, send)
