"""KServe v2 / Open Inference Protocol over REST (``/v2/...``), with Triton's extensions.

Endpoints: ``GET /v2`` (server metadata), ``GET /v2/models/{m}[/versions/{v}]`` (model
metadata), ``…/ready``, ``…/config`` (model configuration) and ``POST …/infer``.
``/v2/health/live`` and ``/v2/health/ready`` live in ``ops_rest``.

Inference takes JSON tensors and the binary tensor data extension: with an
``Inference-Header-Content-Length`` header the body is that many bytes of JSON followed by
the raw data of every input whose ``binary_data_size`` parameter is set, in input order.
Outputs are answered as binary data when the output's ``binary_data`` parameter (or the
request's ``binary_data_output`` parameter) is true. Errors are ``{"error": "..."}``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from contract.layout import check_model_name, parse_version
from service.config import Settings
from service.errors import InvalidInputError, ModelNotFoundError
from service.inference.core import InferenceCore
from service.inference.request import InferenceResult
from service.metrics import Metrics
from service.protocols.kserve_v2.fast_json import inference_doc, numeric_inputs
from service.protocols.kserve_v2.metadata import (
    core_request,
    model_config,
    model_metadata,
    model_ready,
    server_metadata,
    timeout_parameter,
)
from service.protocols.kserve_v2.stats import model_statistics
from service.protocols.kserve_v2.tensors import (
    array_from_json_data,
    array_to_json_data,
    array_to_raw,
    checked_shape,
    datatype_of,
    raw_to_array,
)
from service.transport.http import (
    JSON_OPTIONS,
    json_response,
    parse_json,
    read_body,
    request_timeout,
    server_timing,
    unless_disconnected,
)
from service.transport.rest_app import Lane

PROTOCOL = "rest_v2"
"""The ``protocol`` label of this adapter's requests."""
HEADER_LENGTH = "inference-header-content-length"
_PATH = re.compile(
    r"^(?P<name>[^/]+)(?:/versions/(?P<version>[^/]*))?"
    r"(?P<tail>/ready|/config|/stats|/infer)?$"
)
Encoded = tuple[bytes, list[bytes]]


@functools.lru_cache(maxsize=1024)  # clients repeat a few paths; errors are not cached
def _parse_path(path: str) -> tuple[str, int | None, str]:
    """(model name, version or None, endpoint tail) of a ``/v2/models/`` path."""
    match = _PATH.match(path)
    if not match:
        raise ModelNotFoundError(
            f"no such endpoint /v2/models/{path[:120]!r}; expected /v2/models/<name>"
            "[/versions/<n>][/ready|/config|/stats|/infer]"
        )
    version = None if match["version"] is None else parse_version(match["version"])
    return check_model_name(match["name"]), version, match["tail"] or ""


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{what} must be a JSON object")
    return value


def _flag(parameters: dict[str, Any], key: str, default: bool) -> bool:
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise InvalidInputError(f"parameter {key!r} must be true or false, got {value!r}")
    return value


def split_body(body: bytes, header_length: str | None) -> tuple[Any, memoryview]:
    """The JSON inference header and the binary data after it (a body without binary data
    has its numeric ``data`` read straight into arrays when it can: ``fast_json``)."""
    if header_length is None:
        doc = inference_doc(body)
        return (parse_json(body) if doc is None else doc), memoryview(b"")
    if not header_length.isdigit() or int(header_length) > len(body):
        raise InvalidInputError(
            f"Inference-Header-Content-Length is {header_length[:20]!r}; expected the byte "
            f"length of the JSON header, at most the body length {len(body)}"
        )
    length = int(header_length)
    return parse_json(body[:length]), memoryview(body)[length:]


def decode_rest_inputs(items: Any, binary: memoryview) -> dict[str, np.ndarray]:
    """The ``inputs`` of an inference request as named arrays."""
    if not isinstance(items, list) or not items:
        raise InvalidInputError("'inputs' must be a non-empty list of tensors")
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for index, item in enumerate(items):
        item = _object(item, f"inputs[{index}]")
        name, datatype = item.get("name"), item.get("datatype")
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise InvalidInputError(f"inputs[{index}] needs a string 'name' and 'datatype'")
        if name in inputs:
            raise InvalidInputError(f"input {name!r} is given more than once")
        shape = checked_shape(item.get("shape"), name)
        size = _object(item.get("parameters"), f"parameters of input {name!r}").get(
            "binary_data_size"
        )
        if size is None:
            if "data" not in item:
                raise InvalidInputError(f"input {name!r} has neither 'data' nor binary data")
            inputs[name] = array_from_json_data(item["data"], datatype, shape, name)
            continue
        if (
            isinstance(size, bool)
            or not isinstance(size, int)
            or size < 0
            or offset + size > len(binary)
        ):
            raise InvalidInputError(
                f"input {name!r} has binary_data_size {size!r}; {len(binary) - offset} bytes "
                "of binary data are left"
            )
        inputs[name] = raw_to_array(bytes(binary[offset : offset + size]), datatype, shape, name)
        offset += size
    if offset != len(binary):
        raise InvalidInputError(
            f"the body has {len(binary) - offset} bytes of binary data that no input claims"
        )
    return inputs


def requested_outputs(items: Any, default_binary: bool) -> dict[str, bool]:
    """Requested output name → whether it is answered as binary data."""
    if items is None:
        return {}
    if not isinstance(items, list):
        raise InvalidInputError("'outputs' must be a list of {\"name\": ...} objects")
    wanted: dict[str, bool] = {}
    for index, item in enumerate(items):
        item = _object(item, f"outputs[{index}]")
        if not isinstance(item.get("name"), str):
            raise InvalidInputError(f"outputs[{index}] needs a string 'name'")
        parameters = _object(item.get("parameters"), f"parameters of outputs[{index}]")
        wanted[item["name"]] = _flag(parameters, "binary_data", default_binary)
    return wanted


def encoder(
    request_id: Any, binary: dict[str, bool], default_binary: bool
) -> Callable[[InferenceResult], Encoded]:
    """The core's encoder: the JSON header and the binary output data."""

    def encode(result: InferenceResult) -> Encoded:
        outputs, blobs = [], []
        for name, array in result.outputs.items():
            entry: dict[str, Any] = {
                "name": name,
                "datatype": datatype_of(array.dtype),
                "shape": list(array.shape),
            }
            if binary.get(name, default_binary):
                raw = array_to_raw(array)
                entry["parameters"] = {"binary_data_size": len(raw)}
                blobs.append(raw)
            else:
                entry["data"] = array_to_json_data(array)
            outputs.append(entry)
        doc: dict[str, Any] = {
            "model_name": result.model,
            "model_version": str(result.version),
            "outputs": outputs,
        }
        if request_id is not None:
            doc["id"] = request_id
        return orjson.dumps(doc, option=JSON_OPTIONS), blobs

    return encode


class V2Rest:
    """Routes and handlers of the v2 REST API over the inference core.

    Args:
        core: the inference core.
        settings: body size limit, row limit and batching (for the model configuration).
        metrics: the metric catalogue (read by the statistics endpoint).
    """

    def __init__(self, core: InferenceCore, settings: Settings, metrics: Metrics) -> None:
        self._core = core
        self._settings = settings
        self._metrics = metrics

    def routes(self) -> list[Route]:
        return [
            Route("/v2", self.server_metadata, methods=["GET"]),
            Route("/v2/models/{path:path}", self.dispatch, methods=["GET", "POST"]),
        ]

    def inference_lanes(self) -> list[Lane]:
        """``…/infer``, reached before every route (``transport.rest_app``)."""
        return [Lane("/v2/models/", ("/infer",), self.dispatch)]

    async def server_metadata(self, request: Request) -> Response:
        return json_response(server_metadata())

    async def dispatch(self, request: Request) -> Response:
        path = request.path_params["path"]
        if request.method == "POST" and path.endswith("/infer"):
            return await self.infer(request, path)
        name, version, tail = _parse_path(path)
        if request.method == "GET" and tail == "":
            return json_response(model_metadata(self._core, name, version))
        if request.method == "GET" and tail == "/ready":
            ready = model_ready(self._core, name, version)
            return json_response({"name": name, "ready": ready}, status=200 if ready else 503)
        if request.method == "GET" and tail == "/config":
            return json_response(model_config(self._core, self._settings, name, version))
        if request.method == "GET" and tail == "/stats":
            return json_response(model_statistics(self._core, self._metrics, name, version))
        raise ModelNotFoundError(
            f"{request.method} /v2/models/{name}{tail} is not an endpoint; GET metadata, "
            "/ready, /config or /stats, POST /infer"
        )

    async def infer(self, request: Request, path: str) -> Response:
        with self._core.scope(PROTOCOL, path.split("/", 1)[0]) as scope:
            name, version, _ = _parse_path(path)
            body = await read_body(request, self._settings.max_body_bytes)
            header_length = request.headers.get(HEADER_LENGTH)
            read = numeric_inputs(body) if header_length is None else None
            inputs: dict[str, np.ndarray] | None = None
            if read is None:
                doc, binary = split_body(body, header_length)
            else:
                (doc, inputs), binary = read, memoryview(b"")
            doc = _object(doc, "the inference request")
            parameters = _object(doc.get("parameters"), "'parameters'")
            default_binary = _flag(parameters, "binary_data_output", False)
            outputs = requested_outputs(doc.get("outputs"), default_binary)
            timeouts = [t for t in (timeout_parameter(parameters), request_timeout(request)) if t]
            if inputs is None:
                inputs = decode_rest_inputs(doc.get("inputs"), binary)
            core_req = core_request(
                name,
                version,
                inputs,
                list(outputs),
                min(timeouts, default=None),
                PROTOCOL,
            )
            core_req.metadata = request.headers
            (header, blobs), timing = await unless_disconnected(
                request, scope.infer(core_req, encoder(doc.get("id"), outputs, default_binary))
            )
        headers = {"server-timing": server_timing(timing), "x-model-version": scope.served_version}
        if not blobs:
            return Response(header, media_type="application/json", headers=headers)
        headers[HEADER_LENGTH] = str(len(header))
        return Response(
            b"".join([header, *blobs]), media_type="application/octet-stream", headers=headers
        )
