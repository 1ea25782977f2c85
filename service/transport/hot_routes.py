"""Routes tried first: the inference POSTs, recognised by how their path ends.

Starlette's router tries routes in order, one regular expression each, and nearly every
request is an inference call. Yet the adapters' catch-all routes (``/v1/models/{path}``,
``/v2/models/{path}``) must come after the feedback routes, which they would otherwise
swallow, so an inference request used to be tried against five to seven expressions.
``ending_route`` gives an adapter a POST route matching only paths that end in one of its
inference endings, with the same endpoint as its catch-all, and ``service.app`` lists these
first. No other route takes a path with those endings, so what answers a request is
unchanged; only the matching got shorter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import Route


class _EndingConvertor(Convertor[str]):
    """The rest of a path, when it ends in one of the given endings."""

    def __init__(self, endings: tuple[str, ...]) -> None:
        self.regex = ".*(?:" + "|".join(re.escape(ending) for ending in endings) + ")"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


def ending_route(prefix: str, endings: tuple[str, ...], endpoint: Callable[..., Any]) -> Route:
    """A POST route for ``prefix`` + ``{path}`` where ``path`` ends in one of ``endings``
    (``request.path_params["path"]``, as a ``{path:path}`` catch-all gives it)."""
    key = "ending_" + "_".join(re.sub(r"\W", "", ending) for ending in endings)
    register_url_convertor(key, _EndingConvertor(endings))
    return Route(f"{prefix}{{path:{key}}}", endpoint, methods=["POST"])
