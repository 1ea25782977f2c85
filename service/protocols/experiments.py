"""The rollout control endpoint (off unless ``rollout_control`` is set; behind the token).

* ``GET  /v1/experiments/<model>/rollout`` — the rollout's state;
* ``POST /v1/experiments/<model>/rollout:pause|resume|abort`` — act on it, answer the state.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.errors import InvalidInputError
from service.inference.core import InferenceCore
from service.transport.http import json_response

PREFIX = "/v1/experiments/"


class ExperimentsRest:
    """REST control of canary rollouts."""

    def __init__(self, core: InferenceCore) -> None:
        self._core = core

    def routes(self) -> list[Route]:
        return [
            Route(PREFIX + "{model}/rollout", self.state, methods=["GET"]),
            Route(PREFIX + "{model}/rollout:{action}", self.act, methods=["POST"]),
        ]

    async def state(self, request: Request) -> Response:
        return json_response(self._core.rollout(request.path_params["model"]))

    async def act(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in ("pause", "resume", "abort"):
            raise InvalidInputError(
                f"rollout action must be pause, resume or abort, got {action[:32]!r}"
            )
        return json_response(self._core.rollout(request.path_params["model"], action))
