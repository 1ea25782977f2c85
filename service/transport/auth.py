"""Optional bearer-token authentication for the REST and gRPC servers.

Off unless ``settings.auth_token`` is set (``PRIMER_AUTH_TOKEN``); then every call must carry
``Authorization: Bearer <token>`` (an HTTP header, or gRPC metadata ``authorization``) and
is answered 401 / UNAUTHENTICATED otherwise. Tokens are compared in constant time
(``hmac.compare_digest``). Liveness and readiness stay open so orchestrator probes need no
secret: REST ``/v2/health/live`` and ``/v2/health/ready``, gRPC ``grpc.health.v1.Health``
and the v2 ``ServerLive``/``ServerReady`` RPCs; ``/metrics`` stays open unless
``metrics_require_auth`` is set, and ``/openapi.json`` (the API description) is open too.
When auth is off neither the check nor the interceptor is installed: no cost.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import grpc
from starlette.responses import Response
from starlette.types import Scope

from service.errors import UnauthenticatedError
from service.transport.http import error_response

SCHEME = b"bearer "
OPEN_REST_PATHS = frozenset({"/v2/health/live", "/v2/health/ready", "/openapi.json"})
OPEN_GRPC_METHODS = frozenset(
    {
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
        "/inference.GRPCInferenceService/ServerLive",
        "/inference.GRPCInferenceService/ServerReady",
    }
)


def bearer_matches(header: bytes | None, token: bytes) -> bool:
    """Whether an ``Authorization`` value is ``Bearer <token>`` (constant-time compare)."""
    if header is None or header[: len(SCHEME)].lower() != SCHEME:
        return False
    return hmac.compare_digest(header[len(SCHEME) :].strip(), token)


def _unauthenticated() -> UnauthenticatedError:
    return UnauthenticatedError(
        "missing or wrong credentials; expected the header 'Authorization: Bearer <token>'"
    )


class BearerAuth:
    """The REST side of bearer-token auth: which HTTP requests to refuse, and how.

    Args:
        token: the expected token.
        open_paths: paths served without a token.
    """

    def __init__(self, token: str, open_paths: Iterable[str]) -> None:
        self._token = token.encode()
        self._open = frozenset(open_paths)

    def refusal(self, scope: Scope) -> Response | None:
        """401 for a request outside the open paths without the right token, else None."""
        if scope["path"] in self._open:
            return None
        header = next((value for name, value in scope["headers"] if name == b"authorization"), None)
        if bearer_matches(header, self._token):
            return None
        response = error_response(_unauthenticated())
        response.headers["www-authenticate"] = "Bearer"
        return response


class BearerAuthInterceptor(grpc.aio.ServerInterceptor):
    """gRPC server interceptor answering UNAUTHENTICATED without the right bearer token.

    Args:
        token: the expected token.
        open_methods: full method names (``/package.Service/Method``) served without one.
    """

    def __init__(self, token: str, open_methods: Iterable[str] = OPEN_GRPC_METHODS) -> None:
        self._token = token.encode()
        self._open = frozenset(open_methods)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method in self._open:
            return handler
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                raw = value if isinstance(value, bytes) else value.encode()
                if bearer_matches(raw, self._token):
                    return handler
                break
        return _refusing(handler)


def _refusing(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same kind as ``handler`` that aborts with UNAUTHENTICATED."""
    error = _unauthenticated()

    async def abort(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(error.grpc_code, error.message)

    async def abort_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(error.grpc_code, error.message)
        yield  # pragma: no cover (an async generator, as stream handlers must be)

    kind = (handler.request_streaming, handler.response_streaming)
    build = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[kind]
    return build(
        abort_stream if handler.response_streaming else abort,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
