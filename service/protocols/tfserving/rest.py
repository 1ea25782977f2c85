"""TensorFlow Serving's REST API (``/v1/models/...``), plus ``:classify`` for images.

A thin adapter: it parses TF Serving's JSON forms into numpy arrays, calls the inference
core, and writes TF Serving's JSON responses. Validation, batching and metrics live in the
core; errors are the core's typed errors, rendered as ``{"error": "..."}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from google.protobuf import json_format
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contract.layout import check_model_name, parse_version
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
from service.protocols.tfserving.json import tensor_from_json, tensor_to_json
from service.protocols.tfserving.status import model_metadata_proto, model_status_proto
from service.transport.http import (
    json_response,
    parse_json,
    read_body,
    request_timeout,
    server_timing,
    unless_disconnected,
)

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
            "[/versions/<n>|/labels/<label>][/metadata|:predict|:classify]"
        )
    version = None if match["version"] is None else parse_version(match["version"])
    return ModelPath(check_model_name(match["name"]), version, match["label"], match["tail"] or "")


class TFServingRest:
    """Routes and handlers of TF Serving's REST API over the inference core."""

    def __init__(self, core: InferenceCore, settings: Settings) -> None:
        self._core = core
        self._settings = settings

    def routes(self) -> list[Route]:
        return [Route("/v1/models/{path:path}", self.dispatch, methods=["GET", "POST"])]

    async def dispatch(self, request: Request) -> Response:
        path = request.path_params["path"]
        if request.method == "POST" and path.endswith(":predict"):
            return await self.predict(request, path)
        if request.method == "POST" and path.endswith(":classify"):
            return await self.classify(request, path)
        target = parse_model_path(path)
        if request.method == "GET":
            if target.tail == "":
                return self.status(target)
            if target.tail == "/metadata":
                return self.metadata(target)
        raise ModelNotFoundError(
            f"{request.method} /v1/models/{target.name}{target.tail} is not an endpoint; GET "
            "status or /metadata, POST :predict or :classify"
        )

    # ----- status and metadata ----------------------------------------------------------
    def status(self, target: ModelPath) -> Response:
        proto = model_status_proto(self._core, target.name, target.version, target.label)
        return json_response(
            json_format.MessageToDict(
                proto, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
        )

    def metadata(self, target: ModelPath) -> Response:
        proto, signature_map = model_metadata_proto(
            self._core, target.name, target.version, target.label
        )
        spec = json_format.MessageToDict(proto.model_spec, preserving_proto_field_name=True)
        spec["signature_name"] = ""
        signature_defs = json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
        return json_response({"model_spec": spec, "metadata": {"signature_def": signature_defs}})

    # ----- predict ----------------------------------------------------------------------
    async def predict(self, request: Request, path: str) -> Response:
        with self._core.scope(PROTOCOL, _model_in(path)) as scope:
            target = parse_model_path(path)
            body = parse_json(await read_body(request, self._settings.max_body_bytes))
            if not isinstance(body, dict):
                raise InvalidInputError(
                    "request body must be a JSON object with 'instances' or 'inputs'"
                )
            inputs, row_format = parse_predict_body(body)
            signature = body.get("signature_name")
            if signature is not None and not isinstance(signature, str):
                raise InvalidInputError("'signature_name' must be a string")
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

    # ----- classify (images in, top-k labels out) ---------------------------------------
    async def classify(self, request: Request, path: str) -> Response:
        with self._core.scope(PROTOCOL, _model_in(path)) as scope:
            target = parse_model_path(path)
            k = request.query_params.get("k", str(_DEFAULT_TOP_K))
            if not k.isdigit():
                raise InvalidInputError(f"query parameter k must be a positive integer, got {k!r}")
            timeout_s = request_timeout(request)
            images, single = await self._classify_images(request)
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

    async def _classify_images(self, request: Request) -> tuple[list[bytes], bool]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        limit = self._settings.max_body_bytes
        if content_type == "multipart/form-data":
            form = await request.form(
                max_files=self._settings.max_rows_per_request,
                max_fields=self._settings.max_rows_per_request,
                max_part_size=limit,
            )
            files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
            if not files:
                raise InvalidInputError("multipart body has no file part; expected an image")
            return [await f.read() for f in files], len(files) == 1
        body = await read_body(request, limit)
        if content_type == "application/json":
            data = parse_json(body)
            instances = data.get("instances") if isinstance(data, dict) else None
            if not isinstance(instances, list) or not instances:
                raise InvalidInputError(
                    'a JSON :classify body needs {"instances": [{"b64": "..."}, ...]}'
                )
            array = tensor_from_json(instances, "instances")
            if array.dtype != object:
                raise InvalidInputError('instances must be {"b64": "..."} encoded images')
            return list(array.reshape(-1)), False
        return [body], True


def _scores_json(scores: list[ClassScore]) -> list[dict[str, Any]]:
    return [{"label": s.label, "index": s.index, "score": s.score} for s in scores]


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
