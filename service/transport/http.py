"""HTTP plumbing shared by the REST adapters: bodies, JSON, errors, request ids, timing."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from contract.errors import ContractError
from service.errors import (
    ClientClosedRequestError,
    InvalidInputError,
    PayloadTooLargeError,
    ServingError,
    serving_error,
)
from service.inference.request import Timing
from service.logging_setup import escape
from service.transport import strict_json

logger = logging.getLogger(__name__)
T = TypeVar("T")
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
TIMEOUT_HEADER = "request-timeout"
DISCONNECT_WATCH_AFTER_S = 0.05


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body is {declared} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work`` (after the body was read), cancelling it if the client goes away.

    Cancelling drops the request from its batch queue before the model runs for it. The
    watch starts only once a request has waited ``DISCONNECT_WATCH_AFTER_S``: fast requests
    pay for a timer, not for an extra task.

    Raises:
        ClientClosedRequestError: the client disconnected first.
    """
    current = asyncio.current_task()
    assert current is not None
    disconnected = False
    watcher: asyncio.Future[None] | None = None

    async def watch() -> None:
        nonlocal disconnected
        message = await request.receive()
        if message["type"] == "http.disconnect":
            disconnected = True
            current.cancel()

    def start_watching() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(watch())

    timer = asyncio.get_running_loop().call_later(DISCONNECT_WATCH_AFTER_S, start_watching)
    try:
        return await work
    except asyncio.CancelledError:
        if not disconnected:
            raise
        if hasattr(current, "uncancel"):  # Python 3.11+: this cancellation is handled
            current.uncancel()
        raise ClientClosedRequestError("the client closed the connection") from None
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


def parse_json(body: bytes) -> Any:
    """Decode a JSON body strictly (``strict_json``: depth-limited, no NaN/Infinity
    literals, no repeated keys)."""
    if not body:
        raise InvalidInputError("request body is empty; expected a JSON object")
    return strict_json.loads(body)


def request_timeout(request: Request) -> float | None:
    """The client's ``Request-Timeout`` header (seconds, decimal), if given.

    REST clients set their deadline with it, as gRPC clients do with theirs; without it the
    server's ``request_timeout_s`` applies. Past it the answer is 504 and a request still
    queued never reaches the model.

    Raises:
        InvalidInputError: not a positive finite number of seconds.
    """
    text = request.headers.get(TIMEOUT_HEADER)
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds < math.inf):
        raise InvalidInputError(
            f"header Request-Timeout is {text[:32]!r}; expected a positive number of seconds, "
            "e.g. 0.5"
        )
    return seconds


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response written by orjson (numpy arrays serialized natively)."""
    return Response(
        orjson.dumps(content, option=JSON_OPTIONS),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def error_response(error: ServingError) -> Response:
    """The TF Serving REST error body: ``{"error": "..."}`` with the table's status."""
    response = json_response({"error": error.message}, status=error.http_status)
    retry_after = getattr(error, "retry_after_s", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def server_timing(timing: Timing) -> str:
    """An HTTP ``Server-Timing`` header value in milliseconds."""
    return (
        f"preprocess;dur={timing.preprocess_s * 1e3:.3f}, "
        f"queue;dur={timing.queue_s * 1e3:.3f}, "
        f"inference;dur={timing.inference_s * 1e3:.3f}, "
        f"postprocess;dur={timing.postprocess_s * 1e3:.3f}, "
        f"total;dur={timing.total_s * 1e3:.3f}"
    )


async def handle_serving_error(request: Request, exc: Exception) -> Response:
    """The one exception handler of the REST app for the typed error family (and for the
    shared contract's errors, mapped into it)."""
    if isinstance(exc, ContractError):
        exc = serving_error(exc)
    assert isinstance(exc, ServingError)
    return error_response(exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (no route, wrong method) as ``{"error": ...}`` bodies too."""
    assert isinstance(exc, HTTPException)
    path = escape(request.url.path[:120])
    if exc.status_code == 404:
        message = f"no such endpoint {path!r}; the API is described at /openapi.json"
    elif exc.status_code == 405:
        message = (
            f"method {request.method} is not allowed on {path!r}; allowed: "
            f"{(exc.headers or {}).get('Allow', '')}"
        )
    else:
        message = str(exc.detail)
    return json_response({"error": message}, status=exc.status_code, headers=exc.headers)


async def handle_unexpected_error(request: Request, exc: Exception) -> Response:
    """500 with a log line carrying the request id; never a bare traceback to the client."""
    request_id = request.scope.get("request_id", "")
    logger.exception(
        "internal error on %s %s (request id %s)",
        request.method,
        request.url.path[:200],
        request_id,
    )
    return json_response({"error": f"internal error (request id {request_id})"}, status=500)
