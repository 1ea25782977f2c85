"""The hand-written OpenAPI document covers every REST route the server registers (the
protocols' catch-all dispatchers aside, whose paths it lists one by one), with its methods;
and an experiments answer matches its documented schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from schemathesis.checks import response_schema_conformance, status_code_conformance
from starlette.routing import Route

from service.transport.openapi import load_schema
from tests.conftest import ServerThread, make_settings

UI_PATHS = {"/", "/docs", "/console/summary"}
"""The console's page and its data, Swagger UI: for browsers, not part of the API."""


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> list[Route]:
    from service.app import Server

    base = tmp_path_factory.mktemp("empty-models")
    server = Server(make_settings(Path(base), rollout_control=True))  # built, never started
    try:
        yield [r for r in server.rest_app.routes if isinstance(r, Route)]
    finally:
        for executor in (server._run_executor, server._load_executor, server._preprocess_executor):
            executor.shutdown(wait=False)


def test_every_registered_route_is_documented_with_its_methods(routes: list[Route]) -> None:
    paths = load_schema()["paths"]
    missing = []
    for route in routes:
        if route.path in UI_PATHS or "{path:" in route.path:  # the catch-alls
            continue
        documented = {method.upper() for method in paths.get(route.path, {})} - {"PARAMETERS"}
        wanted = (route.methods or set()) - {"HEAD"}
        if not wanted <= documented:
            missing.append((route.path, sorted(wanted - documented)))
    assert missing == []
    assert {
        "/v1/experiments/{model}",
        "/v1/experiments/{model}/rollout",
        "/v1/experiments/{model}/rollout:{action}",
        "/v1/models/{model}:feedback",
        "/v2/models/{model}/feedback",
    } <= {route.path for route in routes}


def test_an_experiments_answer_matches_its_schema(server: ServerThread) -> None:
    schema = schemathesis.openapi.from_url(f"{server.rest_url}/openapi.json")
    operation = schema["/v1/experiments/{model}"]["GET"]
    case = operation.Case(path_parameters={"model": "half_plus_two"})
    answer = case.call_and_validate(checks=[status_code_conformance, response_schema_conformance])
    assert answer.status_code == 200
    assert answer.json()["split_by"] == "latest" and answer.json()["traffic"] == {"1": 1.0}
