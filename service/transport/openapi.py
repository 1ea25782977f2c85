"""The REST API's OpenAPI 3 description, served at ``GET /openapi.json``.

The schema is written by hand in ``openapi.yaml`` beside this module (the API is defined by
TF Serving's and KServe v2's documents, not generated from handlers); the fuzzing tests run
schemathesis against it, so a response that breaks it fails the build.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson
import yaml
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SCHEMA_FILE = Path(__file__).with_name("openapi.yaml")
PATH = "/openapi.json"


@functools.cache
def schema_json() -> bytes:
    """The schema as JSON bytes (read once)."""
    return orjson.dumps(load_schema())


def load_schema() -> dict[str, Any]:
    """The schema as a dictionary."""
    with SCHEMA_FILE.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


async def serve_schema(request: Request) -> Response:
    return Response(schema_json(), media_type="application/json")


def openapi_route() -> Route:
    """``GET /openapi.json``."""
    return Route(PATH, serve_schema, methods=["GET"])
