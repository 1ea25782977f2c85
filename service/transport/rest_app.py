"""The ASGI application: every REST adapter's routes behind one error handler."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from contract.errors import ContractError
from service.errors import ServingError
from service.transport.auth import BearerAuthMiddleware
from service.transport.http import (
    RequestIdMiddleware,
    handle_http_exception,
    handle_serving_error,
    handle_unexpected_error,
)


def build_rest_app(
    routes: list[BaseRoute], auth_token: str | None = None, open_paths: Iterable[str] = ()
) -> Starlette:
    """A Starlette app over the adapters' routes, with request ids and typed errors.

    Args:
        routes: every adapter's routes.
        auth_token: when set, requests outside ``open_paths`` need this bearer token.
        open_paths: paths served without the token.
    """
    middleware = [Middleware(RequestIdMiddleware)]
    if auth_token is not None:
        middleware.append(Middleware(BearerAuthMiddleware, token=auth_token, open_paths=open_paths))
    return Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={
            ServingError: handle_serving_error,
            ContractError: handle_serving_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected_error,
        },
    )
