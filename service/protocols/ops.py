"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.inference.core import InferenceCore
from service.metrics import CONTENT_TYPE, Metrics
from service.transport.http import json_response


class OpsRest:
    """``/v2/health/live``, ``/v2/health/ready`` (KServe v2 paths) and ``/metrics`` (and any
    other metrics path, e.g. TF Serving's ``/monitoring/prometheus/metrics``)."""

    def __init__(
        self, core: InferenceCore, metrics: Metrics, metrics_paths: Sequence[str] = ("/metrics",)
    ) -> None:
        self._core = core
        self._metrics = metrics
        self._metrics_paths = tuple(metrics_paths)
        self.draining = False

    def routes(self) -> list[Route]:
        return [
            Route("/v2/health/live", self.live, methods=["GET"]),
            Route("/v2/health/ready", self.ready, methods=["GET"]),
            *(Route(path, self.metrics, methods=["GET"]) for path in self._metrics_paths),
        ]

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self.is_ready()
        return json_response({"ready": ready}, status=200 if ready else 503)

    def is_ready(self) -> bool:
        return not self.draining and self._core.is_ready()

    async def metrics(self, request: Request) -> Response:
        return Response(self._metrics.exposition(), media_type=CONTENT_TYPE)
