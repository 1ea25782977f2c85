"""The experiments endpoints: how a model's traffic is shared, and rollout control.

* ``GET  /v1/experiments/<model>`` — the split (each version's share of the requests that
  name no version), sticky key, shadow and rollout state; always served (behind the token);
* ``GET  /v1/experiments/<model>/rollout`` — the rollout's state;
* ``POST /v1/experiments/<model>/rollout:pause|resume|abort`` — act on it, answer the state.

The last two are off unless ``rollout_control`` is set.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.errors import InvalidInputError
from service.inference.core import InferenceCore
from service.transport.http import json_response
from service.views import ExperimentView, RolloutView

PREFIX = "/v1/experiments/"


def rollout_json(model: str, view: RolloutView) -> dict[str, Any]:
    """A rollout's state as the endpoints and the console show it."""
    return {
        "model": model,
        "candidate": view.candidate,
        "baseline": view.baseline,
        "phase": view.phase,
        "candidate_percent": view.candidate_percent,
        "step": view.step,
        "steps": list(view.steps),
        "interval_s": view.interval_s,
        "reason": view.reason,
        "last_gate": view.last_gate,
        "retried_on_baseline": view.retried,
    }


def experiment_json(view: ExperimentView) -> dict[str, Any]:
    """A model's split, sticky key, shadow and rollout as JSON (version keys as strings)."""
    shadow = view.shadow_version
    return {
        "model": view.model,
        "split_by": view.source,
        "traffic": {str(version): share for version, share in view.shares.items()},
        "sticky_key": view.sticky_key,
        "shadow": None if shadow is None else {"version": shadow, "fraction": view.shadow_fraction},
        "rollout": None if view.rollout is None else rollout_json(view.model, view.rollout),
    }


class ExperimentsRest:
    """REST view of a model's experiments, and (with ``control``) control of rollouts."""

    def __init__(self, core: InferenceCore, control: bool) -> None:
        self._core = core
        self._control = control

    def routes(self) -> list[Route]:
        routes = [Route(PREFIX + "{model}", self.experiments, methods=["GET"])]
        if self._control:
            routes += [
                Route(PREFIX + "{model}/rollout", self.state, methods=["GET"]),
                Route(PREFIX + "{model}/rollout:{action}", self.act, methods=["POST"]),
            ]
        return routes

    async def experiments(self, request: Request) -> Response:
        return json_response(experiment_json(self._core.experiments(request.path_params["model"])))

    async def state(self, request: Request) -> Response:
        model = request.path_params["model"]
        return json_response(rollout_json(model, self._core.rollout(model)))

    async def act(self, request: Request) -> Response:
        model, action = request.path_params["model"], request.path_params["action"]
        if action not in ("pause", "resume", "abort"):
            raise InvalidInputError(
                f"rollout action must be pause, resume or abort, got {action[:32]!r}"
            )
        return json_response(rollout_json(model, self._core.rollout(model, action)))
