"""The one error mapping of the gRPC adapters, and the per-call helpers they share.

Every servicer method is wrapped by ``serving_errors``: it reads the call's metadata once
(``call_metadata`` hands it to the method), takes the caller's ``x-request-id`` from it (or
makes one) for the call's log lines; a ``ServingError`` becomes
``context.abort(exc.grpc_code, exc.message)`` (the error table in ``service.errors``), and
so does a contract error, mapped into it;
anything else becomes INTERNAL with a log line carrying the request id, never a traceback.
``send_timing`` puts the stage timings and the id in the trailing metadata.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TypeVar

import grpc

from contract.errors import ContractError
from service.errors import ServingError, serving_error
from service.inference.request import Timing
from service.logging_setup import REQUEST_ID
from service.transport.http import server_timing
from service.transport.request_ids import new_request_id

logger = logging.getLogger(__name__)

Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer")
Method = Callable[[Servicer, Request, grpc.aio.ServicerContext], Awaitable[Response]]
REQUEST_ID_KEY = "x-request-id"


_CALL_METADATA: ContextVar[dict[str, str] | None] = ContextVar("primer_call_metadata", default=None)
"""The metadata of the call this task serves, read once by ``serving_errors``."""


def _text_metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {
        key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)
    }


def request_id(metadata: dict[str, str]) -> str:
    """The caller's ``x-request-id`` metadata (ASCII, at most 128 characters used), or a
    fresh id."""
    value = metadata.get(REQUEST_ID_KEY)
    if value is not None and value.isascii():
        return value[:128]
    return new_request_id()


def send_timing(context: grpc.aio.ServicerContext, timing: Timing) -> None:
    """Trailing metadata with the stage timings (as HTTP's ``Server-Timing``) and the id."""
    context.set_trailing_metadata(
        (("server-timing", server_timing(timing)), (REQUEST_ID_KEY, REQUEST_ID.get()))
    )


def deadline_s(context: grpc.aio.ServicerContext, *others: float | None) -> float | None:
    """Seconds left for this call: the gRPC deadline and any other limits, whichever is first.

    A deadline already passed yields a tiny positive number so the core answers
    DEADLINE_EXCEEDED rather than falling back to its default timeout.
    """
    candidates = [t for t in (context.time_remaining(), *others) if t is not None]
    if not candidates:
        return None
    return max(min(candidates), 1e-6)


def call_metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    """The call's text metadata (lower-case keys), e.g. for a traffic split's sticky key."""
    metadata = _CALL_METADATA.get()
    return _text_metadata(context) if metadata is None else metadata


def serving_errors(
    method: Method[Servicer, Request, Response],
) -> Method[Servicer, Request, Response]:
    """Map the typed errors of one servicer method to gRPC status codes."""

    @functools.wraps(method)
    async def wrapper(
        self: Servicer, request: Request, context: grpc.aio.ServicerContext
    ) -> Response:
        metadata = _text_metadata(context)
        _CALL_METADATA.set(metadata)  # this call's task only, as REQUEST_ID
        rid = request_id(metadata)
        REQUEST_ID.set(rid)  # this call's task only: log records and the access log
        try:
            return await method(self, request, context)
        except (ServingError, ContractError) as raised:
            exc = raised if isinstance(raised, ServingError) else serving_error(raised)
            message = exc.message
            if exc.grpc_code is grpc.StatusCode.INTERNAL:
                logger.error(
                    "internal error in %s (request id %s): %s", method.__qualname__, rid, message
                )
                message = f"{message} (request id {rid})"
            await context.abort(exc.grpc_code, message)
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception:
            logger.exception("internal error in %s (request id %s)", method.__qualname__, rid)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {rid})")
        raise AssertionError("context.abort returned")  # pragma: no cover

    return wrapper
