"""The console: a small page at ``/`` (models, versions, live accuracy, drift, latency, and
an image upload that shows the top-k) and Swagger UI at ``/docs``.

Everything is served by the server itself: the page from ``console_assets/`` and Swagger
UI from the ``swagger-ui-bundle`` package (no CDN). The token rule applies as it does to
the rest of the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from service.evaluation.drift import FEATURES
from service.evaluation.feedback import Feedback
from service.inference.core import InferenceCore
from service.metrics import Metrics
from service.transport.http import json_response

ASSETS = Path(__file__).with_name("console_assets")


class ConsoleRest:
    """``/``, ``/console/summary``, ``/docs`` and Swagger UI's files under ``/docs/assets``."""

    def __init__(self, core: InferenceCore, feedback: Feedback, metrics: Metrics) -> None:
        self._core = core
        self._feedback = feedback
        self._metrics = metrics
        self._page = (ASSETS / "index.html").read_bytes()
        self._docs = (ASSETS / "docs.html").read_bytes()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.page, methods=["GET"]),
            Route("/console/summary", self.summary, methods=["GET"]),
            Route("/docs", self.docs, methods=["GET"]),
            Mount("/docs/assets", app=StaticFiles(directory=swagger_ui_path), name="swagger"),
        ]

    async def page(self, request: Request) -> Response:
        return HTMLResponse(self._page)

    async def docs(self, request: Request) -> Response:
        return HTMLResponse(self._docs)

    async def summary(self, request: Request) -> Response:
        models = [
            {
                "name": name,
                "versions": [
                    self._version(name, s.version, s.state.value) for s in self._core.statuses(name)
                ],
            }
            for name in self._core.model_names()
        ]
        return json_response({"models": models})

    def _version(self, model: str, version: int, state: str) -> dict[str, Any]:
        value = self._metrics.registry.get_sample_value
        labels = {"model": model, "version": str(version)}
        psi = {f: value("primer_drift_psi", {**labels, "feature": f}) for f in FEATURES}
        count = sum(
            value("primer_request_duration_seconds_count", {**labels, "protocol": p}) or 0
            for p in _protocols(self._metrics)
        )
        total = sum(
            value("primer_request_duration_seconds_sum", {**labels, "protocol": p}) or 0
            for p in _protocols(self._metrics)
        )
        return {
            "version": version,
            "state": state,
            "runtime": _runtime(self._metrics, model, version),
            "live_accuracy": self._feedback.accuracy(model, version),
            "labelled": int(value("primer_feedback_labelled_total", labels) or 0),
            "drift_psi": psi if psi["pixels"] is not None else None,
            "mean_latency_ms": total / count * 1e3 if count else None,
        }


def _runtime(metrics: Metrics, model: str, version: int) -> str | None:
    """The runtime serving a version (``primer_model_runtime``), None when none is."""
    for family in metrics.model_runtime.collect():
        for sample in family.samples:
            labels = sample.labels
            if (labels["model"], labels["version"]) == (model, str(version)) and sample.value:
                return labels["runtime"]
    return None


def _protocols(metrics: Metrics) -> set[str]:
    """The protocol labels the request-duration histogram has seen."""
    return {
        sample.labels["protocol"]
        for family in metrics.request_duration.collect()
        for sample in family.samples
        if "protocol" in sample.labels
    }
