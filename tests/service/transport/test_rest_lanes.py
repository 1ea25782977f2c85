"""The REST app's lanes take only inference paths, straight to the endpoint their route would
reach; what answers a request is what answered it before, over a real socket."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from starlette.routing import Match, Route

from service.transport.rest_app import Lane
from tests.conftest import ServerThread

FIRST_TAKEN = [
    ("POST", "/v1/models/mnist_dnn:predict"),
    ("POST", "/v1/models/mnist_dnn/versions/1:predict"),
    ("POST", "/v1/models/half_plus_two/labels/stable:classify"),
    ("POST", "/v1/models/half_plus_two:regress"),
    ("POST", "/v2/models/mnist_dnn/infer"),
    ("POST", "/v2/models/mnist_dnn/versions/1/infer"),
]
NOT_TAKEN = [
    ("POST", "/v1/models/mnist_dnn:feedback"),  # the feedback routes keep these
    ("POST", "/v1/models/mnist_dnn/versions/1:feedback"),
    ("POST", "/v2/models/mnist_dnn/feedback"),
    ("GET", "/v1/models/mnist_dnn"),
    ("GET", "/v1/models/mnist_dnn/metadata"),
    ("GET", "/v2/models/mnist_dnn/ready"),
    ("POST", "/v1/models/mnist_dnn:predictx"),
    ("POST", "/v2/models/mnist_dnn/inference"),
]


def _scope(method: str, path: str) -> dict:
    return {"type": "http", "method": method, "path": path, "root_path": ""}


def _taking_lanes(server: ServerThread, path: str) -> list[Lane]:
    return [lane for lane in server.server.rest_app.lanes if lane.takes(path)]


def _first_full_match(server: ServerThread, method: str, path: str) -> Route:
    for route in server.server.rest_app.routes:
        if route.matches(_scope(method, path))[0] is Match.FULL:
            return route
    raise AssertionError(f"no route takes {method} {path}")


@pytest.mark.parametrize(("method", "path"), FIRST_TAKEN)
def test_inference_paths_take_a_lane_to_their_routes_endpoint(server, method, path) -> None:
    """One lane takes the path, and the route that would take it has the same endpoint."""
    (lane,) = _taking_lanes(server, path)
    assert _first_full_match(server, method, path).endpoint == lane.endpoint


@pytest.mark.parametrize(("method", "path"), NOT_TAKEN)
def test_other_paths_go_to_their_routes(server, method, path) -> None:
    assert not _taking_lanes(server, path)
    _first_full_match(server, method, path)


def test_a_get_on_an_inference_path_is_answered_as_before(rest: httpx.Client) -> None:
    response = rest.get("/v1/models/mnist_dnn:predict")  # the catch-all's answer
    assert response.status_code == 404
    assert "GET /v1/models/mnist_dnn:predict is not an endpoint" in response.json()["error"]


def test_predict_and_feedback_are_served(rest: httpx.Client) -> None:
    digit = np.zeros((1, 28, 28), np.float32).tolist()
    answered = rest.post("/v1/models/mnist_dnn:predict", json={"instances": digit})
    assert answered.status_code == 200 and len(answered.json()["predictions"][0]) == 10
    request_id = answered.headers["x-request-id"]
    labelled = rest.post(
        "/v1/models/mnist_dnn:feedback", json={"request_id": request_id, "labels": [0]}
    )
    assert labelled.status_code == 200, labelled.text
    inferred = rest.post(
        "/v2/models/mnist_dnn/infer",
        json={
            "inputs": [
                {
                    "name": "image",
                    "shape": [1, 28, 28],
                    "datatype": "FP32",
                    "data": np.zeros(784).tolist(),
                }
            ]
        },
    )
    assert inferred.status_code == 200 and inferred.json()["outputs"][0]["shape"] == [1, 10]
