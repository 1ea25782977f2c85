"""Ground-truth feedback routes: TF Serving style ``POST /v1/models/{m}:feedback`` and the
KServe v2 style ``POST /v2/models/{m}/feedback`` (both also under ``/versions/{v}``).

The body is ``{"request_id": "…", "label": "7"}`` (``"labels": [...]`` for a request of
several rows), or a list of such objects. A label is a class name from ``labels.txt`` or an
index. Items apply in order; the first refused one answers its 4xx (earlier ones stay).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.errors import InvalidInputError, ServingError
from service.evaluation.feedback import Feedback
from service.inference.core import InferenceCore
from service.transport.http import json_response, parse_json, read_body

MAX_FEEDBACK_BYTES = 8 * 1024 * 1024


class FeedbackRest:
    """The feedback routes over one ``Feedback`` store."""

    def __init__(self, core: InferenceCore, feedback: Feedback) -> None:
        self._core = core
        self._feedback = feedback

    def routes(self) -> list[Route]:
        """Registered before the protocol catch-all routes."""
        return [
            Route("/v1/models/{model}:feedback", self.post, methods=["POST"]),
            Route("/v1/models/{model}/versions/{version}:feedback", self.post, methods=["POST"]),
            Route("/v2/models/{model}/feedback", self.post, methods=["POST"]),
            Route("/v2/models/{model}/versions/{version}/feedback", self.post, methods=["POST"]),
        ]

    async def post(self, request: Request) -> Response:
        model = request.path_params["model"]
        self._core.model_view(model)  # 404 for a model the server does not serve
        body = parse_json(await read_body(request, MAX_FEEDBACK_BYTES))
        items = body if isinstance(body, list) else [body]
        results = []
        for number, item in enumerate(items):
            request_id, labels = _parse_item(item, number)
            classes = self._classes(model, self._feedback.version_of(model, request_id))
            correct = self._feedback.label(model, request_id, labels, classes)
            results.append({"request_id": request_id, "correct": correct})
        return json_response({"results": results})

    def _classes(self, model: str, version: int | None) -> list[str]:
        """The class labels of the version that answered (the latest when it is gone)."""
        try:
            view = self._core.model_view(model, version)
        except ServingError:
            view = self._core.model_view(model)
        if view.card is None or not view.card.labels:
            raise InvalidInputError(f"model {model!r} has no class labels to give feedback on")
        accuracy = view.card.provenance.get("test_accuracy")
        if isinstance(accuracy, int | float):
            self._feedback.set_test_accuracy(model, view.version, float(accuracy))
        return list(view.card.labels)


def _parse_item(item: Any, number: int) -> tuple[str, list[int | str]]:
    where = f"feedback item {number}"
    if not isinstance(item, dict) or not isinstance(item.get("request_id"), str):
        raise InvalidInputError(
            f'{where}: expected an object {{"request_id": "<x-request-id>", "label": "<class>"}}'
        )
    unknown = set(item) - {"request_id", "label", "labels"}
    if unknown or ("label" in item) == ("labels" in item):
        raise InvalidInputError(
            f"{where}: expected request_id and exactly one of label (one row) or labels "
            f"(one per row); got keys {sorted(item)}"
        )
    labels = [item["label"]] if "label" in item else item["labels"]
    if not isinstance(labels, list) or not all(isinstance(x, int | str) for x in labels):
        raise InvalidInputError(f"{where}: labels must be a list of class names or indices")
    return item["request_id"], labels
