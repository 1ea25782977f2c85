"""TensorFlow Serving's REST API (``/v1/models/...``), plus ``:classify`` for images.

A thin adapter: it parses TF Serving's JSON forms into numpy arrays, calls the inference
core, and writes TF Serving's JSON responses. ``:classify`` and ``:regress`` take TF
Serving's tf.Example JSON (``{"examples": [...]}``, see ``examples``); a ``:classify`` body
without ``examples`` is images (raw, multipart or ``{"instances": [{"b64": ...}]}``).
Validation, batching and metrics live in the core; errors are the core's typed errors,
rendered as ``{"error": "..."}``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tensorflow_serving.apis.classification_pb2 import ClassificationResult

from contract.layout import SIGNATURE, check_model_name, parse_version
from service.config import Settings
from service.errors import InvalidInputError, ModelNotFoundError
from service.inference.core import InferenceCore
from service.inference.request import (
    ClassScore,
    InferenceRequest,
    InferenceResult,
    RequestScope,
    Timing,
)
from service.inference.validate import UNNAMED_INPUT, bytes_array
from service.protocols.tfserving.classify_regress import ExampleCall
from service.protocols.tfserving.classify_regress import classify as classify_examples
from service.protocols.tfserving.classify_regress import regress as regress_examples
from service.protocols.tfserving.examples import input_from_json
from service.protocols.tfserving.fast_json import numeric_instances
from service.protocols.tfserving.json import tensor_from_json, tensor_to_json
from service.protocols.tfserving.status import model_metadata_json, model_status_json
from service.transport.http import (
    json_response,
    parse_json,
    read_body,
    request_timeout,
    server_timing,
    unless_disconnected,
)
from service.transport.rest_app import Lane

PROTOCOL = "rest_tfserving"
"""The ``protocol`` label of this adapter's requests."""
# /v1/models/{name}[/versions/{v} | /labels/{l}][/metadata | :predict | :classify]
_PATH = re.compile(
    r"^(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]*)|/labels/(?P<label>[^/:]*))?"
    r"(?P<tail>/metadata|:[A-Za-z]+)?$"
)
_DEFAULT_TOP_K = 5


def _model_in(path: str) -> str:
    """The model name a ``/v1/models/`` path starts with, before the path is validated."""
    return path.partition("/")[0].partition(":")[0]


@dataclass(frozen=True)
class ModelPath:
    """What a ``/v1/models/`` path names."""

    name: str
    version: int | None
    label: str | None
    tail: str
    """``""``, ``/metadata`` or ``:<verb>``."""


@functools.lru_cache(maxsize=1024)  # clients repeat a few paths; errors are not cached
def parse_model_path(path: str) -> ModelPath:
    """Parse ``{name}[/versions/{v} | /labels/{l}][/metadata | :verb]``.

    Raises:
        ModelNotFoundError: no such endpoint.
        ContractError: an invalid model name or version (404 through the error table).
    """
    match = _PATH.match(path)
    if not match:
        raise ModelNotFoundError(
            f"no such endpoint /v1/models/{path[:120]!r}; expected /v1/models/<name>"
            "[/versions/<n>|/labels/<label>][/metadata|:predict|:classify|:regress]"
        )
    version = None if match["version"] is None else parse_version(match["version"])
    return ModelPath(check_model_name(match["name"]), version, match["label"], match["tail"] or "")


INFERENCE_ENDINGS = (":predict", ":classify", ":regress")


class TFServingRest:
    """Routes and handlers of TF Serving's REST API over the inference core."""

    def __init__(self, core: InferenceCore, settings: Settings) -> None:
        self._core = core
        self._settings = settings

    def routes(self) -> list[Route]:
        return [Route("/v1/models/{path:path}", self.dispatch, methods=["GET", "POST"])]

    def inference_lanes(self) -> list[Lane]:
        """``:predict``, ``:classify`` and ``:regress``, reached before every route
        (``transport.rest_app``)."""
        return [Lane("/v1/models/", INFERENCE_ENDINGS, self.dispatch)]

    async def dispatch(self, request: Request) -> Response:
        path = request.path_params["path"]
        if request.method == "POST" and path.endswith(":predict"):
            return await self.predict(request, path)
        if request.method == "POST" and path.endswith(":classify"):
            return await self.classify(request, path)
        if request.method == "POST" and path.endswith(":regress"):
            return await self.regress(request, path)
        target = parse_model_path(path)
        if request.method == "GET":
            if target.tail == "":
                return self.status(target)
            if target.tail == "/metadata":
                return self.metadata(target)
        raise ModelNotFoundError(
            f"{request.method} /v1/models/{target.name}{target.tail} is not an endpoint; GET "
            "status or /metadata, POST :predict, :classify or :regress"
        )

    # ----- status and metadata ----------------------------------------------------------
    def status(self, target: ModelPath) -> Response:
        return json_response(
            model_status_json(self._core, target.name, target.version, target.label)
        )

    def metadata(self, target: ModelPath) -> Response:
        return json_response(
            model_metadata_json(self._core, target.name, target.version, target.label)
        )

    # ----- predict ----------------------------------------------------------------------
    async def predict(self, request: Request, path: str) -> Response:
        with self._core.scope(PROTOCOL, _model_in(path)) as scope:
            target = parse_model_path(path)
            inputs, row_format, signature = read_predict_body(
                await read_body(request, self._settings.max_body_bytes)
            )
            core_request = InferenceRequest(
                target.name,
                inputs,
                version=target.version,
                label=target.label,
                signature=signature,
                timeout_s=request_timeout(request),
                protocol=PROTOCOL,
                metadata=request.headers,
            )
            encode = encode_predictions if row_format else encode_outputs
            content, timing = await unless_disconnected(request, scope.infer(core_request, encode))
        return json_response(content, headers=_headers(scope, timing))

    # ----- classify and regress over tf.Example (TF Serving's JSON) ---------------------
    async def regress(self, request: Request, path: str) -> Response:
        with self._core.scope(PROTOCOL, _model_in(path)) as scope:
            target = parse_model_path(path)
            body = parse_json(await read_body(request, self._settings.max_body_bytes))
            if not isinstance(body, dict):
                raise InvalidInputError(
                    'a :regress body must be a JSON object {"examples": [...]} with optional '
                    '"context" and "signature_name"'
                )
            return await self._examples(request, scope, target, body, classifying=False)

    async def _examples(
        self,
        request: Request,
        scope: RequestScope,
        target: ModelPath,
        body: dict[str, Any],
        classifying: bool,
    ) -> Response:
        signature = body.get("signature_name")
        if signature is not None and not isinstance(signature, str):
            raise InvalidInputError("'signature_name' must be a string")
        request_input = input_from_json(body)
        call = ExampleCall(
            target.name,
            target.version,
            target.label,
            signature or SIGNATURE,
            request_timeout(request),
            PROTOCOL,
            dict(request.headers),
        )
        content: dict[str, Any]
        if classifying:
            found, _, timing = await unless_disconnected(
                request, classify_examples(self._core, scope, call, request_input)
            )
            content = {"results": classification_json(found)}
        else:
            values, _, timing = await unless_disconnected(
                request, regress_examples(self._core, scope, call, request_input)
            )
            content = {"results": np.array([r.value for r in values.regressions], np.float32)}
        return json_response(content, headers=_headers(scope, timing))

    # ----- classify: tf.Example features (TF Serving) or images in, top-k labels out ------
    async def classify(self, request: Request, path: str) -> Response:
        with self._core.scope(PROTOCOL, _model_in(path)) as scope:
            target = parse_model_path(path)
            body, is_json, data = await self._classify_body(request)
            if isinstance(data, dict) and ("examples" in data or "context" in data):
                return await self._examples(request, scope, target, data, classifying=True)
            k = request.query_params.get("k", str(_DEFAULT_TOP_K))
            if not k.isdigit():
                raise InvalidInputError(f"query parameter k must be a positive integer, got {k!r}")
            timeout_s = request_timeout(request)
            images, single = await self._classify_images(request, body, is_json, data)
            core_request = InferenceRequest(
                target.name,
                {UNNAMED_INPUT: bytes_array(images)},
                version=target.version,
                label=target.label,
                timeout_s=timeout_s,
                protocol=PROTOCOL,
                metadata=request.headers,
            )
            classes, result, timing = await unless_disconnected(
                request, scope.classify(core_request, int(k))
            )
        predictions: Any = (
            _scores_json(classes[0]) if single else [_scores_json(c) for c in classes]
        )
        return json_response(
            {"model": result.model, "version": result.version, "predictions": predictions},
            headers=_headers(scope, timing),
        )

    async def _classify_body(self, request: Request) -> tuple[bytes | None, bool, Any]:
        """The body of a ``:classify`` (None for a multipart upload), whether it is JSON (a
        JSON content type, or a body that opens a JSON object: no image does, and ``curl -d``
        sends TF Serving's JSON as a form), and its parsed JSON."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            return None, False, None
        body = await read_body(request, self._settings.max_body_bytes)
        if content_type == "application/json" or body.lstrip()[:1] == b"{":
            return body, True, parse_json(body)
        return body, False, None

    async def _classify_images(
        self, request: Request, body: bytes | None, is_json: bool, data: Any
    ) -> tuple[list[bytes], bool]:
        """Encoded images from a multipart upload (``body`` None), JSON ``instances``
        (``data``, the parsed JSON body) or a raw image body."""
        limit = self._settings.max_body_bytes
        if body is None:
            form = await request.form(
                max_files=self._settings.max_rows_per_request,
                max_fields=self._settings.max_rows_per_request,
                max_part_size=limit,
            )
            files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
            if not files:
                raise InvalidInputError("multipart body has no file part; expected an image")
            return [await f.read() for f in files], len(files) == 1
        if is_json:
            instances = data.get("instances") if isinstance(data, dict) else None
            if not isinstance(instances, list) or not instances:
                raise InvalidInputError(
                    'a JSON :classify body needs {"examples": [{feature: value, ...}, ...]} '
                    '(tf.Example features) or {"instances": [{"b64": "..."}, ...]} (images)'
                )
            array = tensor_from_json(instances, "instances")
            if array.dtype != object:
                raise InvalidInputError('instances must be {"b64": "..."} encoded images')
            return list(array.reshape(-1)), False
        return [body], True


def classification_json(result: ClassificationResult) -> list[list[list[Any]]]:
    """TF Serving's classify ``results``: per example, ``[label, score]`` per class (scores
    as float32, so they print as TF Serving prints them)."""
    return [
        [[item.label, np.float32(item.score)] for item in found.classes]
        for found in result.classifications
    ]


def _scores_json(scores: list[ClassScore]) -> list[dict[str, Any]]:
    return [{"label": s.label, "index": s.index, "score": s.score} for s in scores]


def read_predict_body(raw: bytes) -> tuple[dict[str, np.ndarray], bool, str | None]:
    """A ``:predict`` body → (named arrays, row format or not, ``signature_name``).

    The common numeric row body is read straight into an array (``fast_json``); every other
    body, and every error, goes through the strict JSON parser and ``parse_predict_body``.
    """
    fast = numeric_instances(raw)
    if fast is not None:
        array, signature = fast
        return {UNNAMED_INPUT: array}, True, signature
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise InvalidInputError("request body must be a JSON object with 'instances' or 'inputs'")
    inputs, row_format = parse_predict_body(body)
    signature = body.get("signature_name")
    if signature is not None and not isinstance(signature, str):
        raise InvalidInputError("'signature_name' must be a string")
    return inputs, row_format, signature


def parse_predict_body(body: dict[str, Any]) -> tuple[dict[str, np.ndarray], bool]:
    """TF Serving's request forms → named arrays, and whether the row format was used.

    Row format: ``{"instances": [row, ...]}`` where a row is a value (one input) or an
    object of named values. Columnar: ``{"inputs": value}`` or ``{"inputs": {name: value}}``.
    """
    if ("instances" in body) == ("inputs" in body):
        raise InvalidInputError(
            "request must have exactly one of 'instances' (row format) or 'inputs' "
            "(columnar format)"
        )
    unknown = set(body) - {"instances", "inputs", "signature_name"}
    if unknown:
        raise InvalidInputError(
            f"unknown request keys {sorted(unknown)}; expected "
            "'instances' or 'inputs', and optionally 'signature_name'"
        )
    if "instances" in body:
        instances = body["instances"]
        if not isinstance(instances, list) or not instances:
            raise InvalidInputError("'instances' must be a non-empty list of rows")
        if _is_named(instances[0]):
            return _rows_to_columns(instances), True
        return {UNNAMED_INPUT: tensor_from_json(instances, "instances")}, True
    inputs = body["inputs"]
    if _is_named(inputs):
        return {
            name: tensor_from_json(value, f"input {name!r}") for name, value in inputs.items()
        }, False
    return {UNNAMED_INPUT: tensor_from_json(inputs, "inputs")}, False


def _is_named(value: Any) -> bool:
    return isinstance(value, dict) and set(value) != {"b64"}


def _rows_to_columns(instances: list[Any]) -> dict[str, np.ndarray]:
    names = list(instances[0])
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for index, row in enumerate(instances):
        if not isinstance(row, dict) or set(row) != set(names):
            raise InvalidInputError(
                f"instance {index} does not name the same inputs as instance 0 ({names})"
            )
        for name in names:
            columns[name].append(row[name])
    return {name: tensor_from_json(values, f"input {name!r}") for name, values in columns.items()}


def encode_predictions(result: InferenceResult) -> dict[str, Any]:
    """Row-format response: ``predictions`` is a list with one entry per instance."""
    outputs = result.outputs
    if len(outputs) == 1:
        return {"predictions": tensor_to_json(next(iter(outputs.values())))}
    columns = {name: tensor_to_json(value) for name, value in outputs.items()}
    rows = len(next(iter(outputs.values())))
    return {
        "predictions": [{name: column[i] for name, column in columns.items()} for i in range(rows)]
    }


def encode_outputs(result: InferenceResult) -> dict[str, Any]:
    """Columnar response: ``outputs`` is the single tensor or an object of named tensors."""
    outputs = result.outputs
    if len(outputs) == 1:
        return {"outputs": tensor_to_json(next(iter(outputs.values())))}
    return {"outputs": {name: tensor_to_json(value) for name, value in outputs.items()}}


def _headers(scope: RequestScope, timing: Timing) -> dict[str, str]:
    """Server-Timing and the version that served (``X-Model-Version``)."""
    return {"server-timing": server_timing(timing), "x-model-version": scope.served_version}
