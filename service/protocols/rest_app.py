"""The ASGI application: every REST adapter's routes behind one error handler."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from service.errors import ServingError
from service.protocols.http import (
    RequestIdMiddleware,
    handle_serving_error,
    handle_unexpected_error,
)


def build_rest_app(routes: list[BaseRoute]) -> Starlette:
    """A Starlette app over the adapters' routes, with request ids and typed errors."""
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers={ServingError: handle_serving_error,
                            Exception: handle_unexpected_error},
    )
